"""Fix-and-replay and backfill: deliveries rendered from the *current* config.

A plain replay (``/api/deliveries/replay``) sends the URL rendered at intake
again, which is right for a network that was down and wrong after a template
was fixed.  ``rerender`` renders the chosen deliveries again from their
conversion, click and the rule of the same name in the config now in force;
``backfill`` fires a rule added later for conversions received before it.
Both have a dry run that writes and sends nothing, and a backfill run twice
sends once (``DeliveryLog.add_missing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.config import Config
from gateway.intake.deliveries import render_deliveries
from gateway.rules import CompiledRule
from gateway.store.base import (
    Click,
    Conversion,
    ConversionFilter,
    Delivery,
    DeliveryFilter,
    NewDelivery,
    Rewrite,
    Store,
)
from gateway.tokens import conversion_context

__all__ = ("BACKFILL_MAX", "backfill", "rerender")

#: Conversions one backfill call reads at most (the answer says when more are left).
BACKFILL_MAX = 10_000
#: Items an answer lists (counts cover them all).
_SHOWN = 200


def _rules(
    config: Config, conv: Conversion, click: Click | None, campaign_id: str
) -> list[CompiledRule]:
    """The rules the conversion fires under the config now in force."""
    campaign = config.campaigns.get(click.campaign_id if click is not None else campaign_id)
    if campaign is None and click is None:
        campaign = config.campaigns.get(conv.tokens.get("campaign.id", ""))
    if campaign is not None:
        return campaign.rules
    source = config.sources.get(conv.tokens.get("trafficsource.name", ""))
    return source.rules if source is not None else []


def _named(rules: list[CompiledRule], name: str) -> CompiledRule | None:
    return next((r for r in rules if r.name == name), None)


async def _origin(store: Store, conversion_id: str) -> tuple[Conversion, Click | None] | None:
    conv = await store.get_conversion(conversion_id)
    if conv is None:
        return None
    click = await store.get_click(conv.click_id) if conv.click_id else None
    return conv, click


async def rerender(
    config: Config, store: Store, chosen: Sequence[Delivery], *, dry_run: bool, now: float
) -> tuple[dict[str, Any], list[Delivery]]:
    """Render ``chosen`` again; unless ``dry_run``, store and queue them.  Returns the
    answer (old and new display URL per delivery) and the deliveries now queued."""
    items: list[dict[str, Any]] = []
    rewrites: list[Rewrite] = []
    for d in chosen:
        item: dict[str, Any] = {
            "delivery_id": d.delivery_id,
            "rule": d.rule,
            "status": d.status,
            "old_url": d.display_url,
        }
        items.append(item)
        if d.status == "queued":
            item["skipped"] = "queued: it is about to be sent as it is"
            continue
        origin = await _origin(store, d.conversion_id)
        if origin is None:
            item["skipped"] = "its conversion is no longer in the store"
            continue
        conv, click = origin
        rule = _named(_rules(config, conv, click, d.campaign_id), d.rule)
        if rule is None:
            item["skipped"] = f"no rule named {d.rule!r} in the config now in force"
            continue
        context = conversion_context(conv.tokens, click.tokens if click else None, {})
        try:
            [(url, display, body)] = rule.render([context])
        except (ValueError, TypeError) as exc:
            item["skipped"] = f"cannot render: {exc}"
            continue
        held = rule.held(context)
        item.update(new_url=display, changed=url != d.url, held=held)
        rewrites.append(
            Rewrite(
                delivery_id=d.delivery_id,
                url=url,
                display_url=display,
                body=body,
                host=rule.host,
                method=rule.method,
                answer_rule=rule.answer_rule,
                held=held,
            )
        )
    queued: list[Delivery] = []
    if not dry_run and rewrites:
        written = await store.rewrite(rewrites, now=now)
        queued = [d for d in written if d.status == "queued"]
    answer = {
        "dry_run": dry_run,
        "selected": len(items),
        "rerendered": len(rewrites),
        "queued": 0 if dry_run else len(queued),
        "deliveries": items[:_SHOWN],
    }
    return answer, queued


async def backfill(
    config: Config,
    store: Store,
    rule_name: str,
    *,
    since: float,
    until: float,
    campaign_id: str | None,
    traffic_source: str | None,
    dry_run: bool,
    now: float,
    limit: int = BACKFILL_MAX,
) -> tuple[dict[str, Any], list[Delivery]]:
    """Fire ``rule_name`` for the conversions received in [since, until) that it
    matches and that have no delivery of it yet."""
    convs = await store.find_conversions_by(
        ConversionFilter(since=since, until=until), limit=limit + 1
    )
    more = len(convs) > limit
    news: list[NewDelivery] = []
    already = not_matching = 0
    for conv in convs[:limit]:
        click = await store.get_click(conv.click_id) if conv.click_id else None
        campaign = click.campaign_id if click else conv.tokens.get("campaign.id", "")
        source = click.traffic_source if click else conv.tokens.get("trafficsource.name", "")
        if (campaign_id is not None and campaign != campaign_id) or (
            traffic_source is not None and source != traffic_source
        ):
            continue
        rule = _named(_rules(config, conv, click, campaign), rule_name)
        context = conversion_context(conv.tokens, click.tokens if click else None, {})
        event = conv.tokens.get("conversion.type")
        if rule is None or not rule.matches(conv.status, event, context, conv.conversion_id):
            not_matching += 1
            continue
        news.extend(render_deliveries(config, [(rule, [context], [(conv, click)])], now))
    written: list[Delivery] = []
    fresh: Sequence[NewDelivery]
    if dry_run:
        fresh = await _not_sent(store, news)
    else:
        written = await store.add_missing(news)
        fresh = written
    already = len(news) - len(fresh)
    answer: dict[str, Any] = {
        "dry_run": dry_run,
        "rule": rule_name,
        "conversions": min(len(convs), limit),
        "more": more,
        "not_matching": not_matching,
        "already_sent": already,
        ("would_send" if dry_run else "created"): len(fresh),
        "held": sum(1 for d in fresh if d.held is not None),
        "deliveries": [
            {"conversion_id": d.conversion_id, "url": d.display_url, "held": d.held}
            for d in fresh[:_SHOWN]
        ],
    }
    return answer, [d for d in written if d.status == "queued"]


async def _not_sent(store: Store, news: list[NewDelivery]) -> list[NewDelivery]:
    """Those of ``news`` with no delivery of their rule yet (the dry run's view)."""
    out = []
    for d in news:
        wanted = DeliveryFilter(conversion_id=d.conversion_id, rule=d.rule)
        if not await store.list_deliveries(wanted, after_id=None, limit=1):
            out.append(d)
    return out
