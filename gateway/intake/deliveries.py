"""Deliveries of one group commit: each fired rule rendered once for all its conversions."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from msgspec.structs import replace as _copy

from gateway.config import Config
from gateway.constants import MAX_RENDERED_BYTES
from gateway.dispatch.retry import rule_retry
from gateway.rules import CompiledRule
from gateway.store.base import Click, Conversion, Delivery, NewDelivery

__all__ = ("Fired", "render_deliveries")

log = logging.getLogger(__name__)

#: One rule that fired in a group: the rule, a token context per conversion, and
#: each conversion with its click (None: unattributed, matched by externalid).
Fired = tuple[CompiledRule, list[dict[str, str]], list[tuple[Conversion, Click | None]]]


def render_deliveries(config: Config, fired: Iterable[Fired], now: float) -> list[NewDelivery]:
    """Each fired rule rendered for all its conversions at once (``render_many``); a
    value one conversion cannot render, or a postback rendered longer than
    ``MAX_RENDERED_BYTES``, drops that delivery only, with a log line."""
    settings = config.delivery
    out: list[NewDelivery] = []
    for rule, contexts, owners in fired:
        try:
            rendered: list[tuple[str, str, str | None] | None] = list(rule.render(contexts))
        except (ValueError, TypeError):  # one bad value must not sink the batch
            rendered = []
            for context in contexts:
                try:
                    rendered.extend(rule.render([context]))
                except (ValueError, TypeError) as exc:
                    log.warning("rule %s: cannot render: %s", rule.name, exc)
                    rendered.append(None)
        # The rule's values, set once; each delivery is a copy with its own few
        # (msgspec's replace costs far less than building one from every field).
        max_attempts, schedule = rule_retry(rule.max_attempts, rule.schedule, settings)
        template = Delivery(
            delivery_id=0,
            status="queued",
            attempts=0,
            next_at=now + rule.delay,
            conversion_id="",
            traffic_source=rule.traffic_source,
            campaign_id="",
            rule=rule.name,
            method=rule.method,
            url="",
            display_url="",
            body=None,
            host=rule.host,
            click_time=None,
            not_before=now + rule.delay,
            max_attempts=max_attempts,
            created_at=now,
            schedule=schedule,
            expires_at=None,
            answer_rule=rule.answer_rule,
        )
        age = rule.max_click_age
        guard = rule.held if rule.hold else None
        for item, (record, click), context in zip(rendered, owners, contexts, strict=True):
            if item is None:
                continue
            url, display, body = item
            if len(url) > MAX_RENDERED_BYTES or (
                body is not None and len(body) > MAX_RENDERED_BYTES
            ):
                log.warning(
                    "rule %s: rendered postback over %d bytes: refused, not stored",
                    rule.name,
                    MAX_RENDERED_BYTES,
                )
                continue
            reason = guard(context) if guard is not None else None
            if click is None:
                out.append(
                    _copy(
                        template,
                        conversion_id=record.conversion_id,
                        campaign_id=context.get("campaign.id", ""),
                        url=url,
                        display_url=display,
                        body=body,
                        held=reason,
                    )
                )
                continue
            click_time = click.created_at
            out.append(
                _copy(  # a Delivery already, so the store only numbers it
                    template,
                    conversion_id=record.conversion_id,
                    campaign_id=click.campaign_id,
                    url=url,
                    display_url=display,
                    body=body,
                    click_time=click_time,
                    expires_at=click_time + age if age else None,
                    held=reason,
                )
            )
    return out
