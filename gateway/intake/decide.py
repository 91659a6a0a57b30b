"""The pure heart of a group commit: accepted, duplicate, update, conflict, unattributed.

Given the group's inputs and what the store already holds (looked up inside
the same transaction), ``build_batch`` decides each conversion and renders
every rule that fires.  It does no I/O, so any store backend can call it
between its lookups and its writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from gateway import clickid
from gateway.config import Config
from gateway.intake.deliveries import Fired, render_deliveries
from gateway.intake.guard import source_secret_ok
from gateway.intake.params import ClickInput, ConversionInput
from gateway.refusal import error_body
from gateway.rules import CompiledRule
from gateway.store.base import Click, Conversion, NewDelivery
from gateway.tokens import campaign_tokens, conversion_context

__all__ = ("ALLOWED", "Outcome", "Result", "build_batch", "dedup_key", "transition")

#: (old, new) status changes the contract allows.
ALLOWED = frozenset({("pending", "approved"), ("pending", "rejected"), ("approved", "rejected")})

#: What happened to one conversion; the HTTP layer maps each to its status code.
Outcome = Literal["accepted", "duplicate", "unattributed", "conflict", "forbidden"]


class Result:
    """One conversion's decision and the JSON body its answer carries."""

    __slots__ = ("body", "outcome")

    def __init__(self, outcome: Outcome, body: dict[str, Any]) -> None:
        self.outcome = outcome
        self.body = body


def dedup_key(conv: ConversionInput) -> str:
    who = conv.click_id if conv.click_id is not None else "ext:" + conv.data.get("externalid", "")
    if conv.txid is not None:
        return f"{who}\x1ft\x1f{conv.txid}"
    return f"{who}\x1fe\x1f{conv.event or ''}"


def transition(old: str, new: str) -> str:
    """``duplicate`` (same status), ``update`` (an allowed change) or ``conflict``."""
    if old == new:
        return "duplicate"
    return "update" if (old, new) in ALLOWED else "conflict"


def build_batch(
    config: Config,
    clicks: Sequence[ClickInput],
    conversions: Sequence[ConversionInput],
    stored_clicks: Mapping[str, Click],
    stored: Mapping[str, Conversion],
    now: float,
) -> tuple[list[Conversion], list[NewDelivery], list[Result], dict[str, int]]:
    """Decide and render one group commit.  Returns rows to write, one result per
    conversion (in order) and per-source counters for metrics."""
    batch_clicks = {c.click.click_id: c.click for c in clicks}
    state: dict[str, Conversion] = dict(stored)
    rows: dict[str, Conversion] = {}
    results: list[Result] = []
    fired: dict[int, Fired] = {}
    counts: dict[str, int] = {}
    window = config.attribution_window
    new_ids = clickid.new_click_ids(now, len(conversions))  # one urandom call per batch
    born_of: dict[str, float | None] = {}  # a click's conversions often share a batch
    for conv in conversions:
        click: Click | None = None
        if conv.click_id is not None:
            born = born_of.get(conv.click_id, 0.0)
            if born == 0.0:
                born = born_of[conv.click_id] = clickid.created_at(conv.click_id)
            if born is not None and now - born <= window:
                click = batch_clicks.get(conv.click_id) or stored_clicks.get(conv.click_id)
        if click is not None and not source_secret_ok(
            config.sources.get(click.traffic_source), conv
        ):
            results.append(Result("forbidden", error_body("wrong secret", "secret")))
            continue
        key = dedup_key(conv)
        old = state.get(key)
        if old is not None:
            change = transition(old.status, conv.status)
            if change == "conflict":
                results.append(
                    Result(
                        "conflict",
                        {
                            "error": f"status change {old.status} -> {conv.status} is not allowed",
                            "field": "status",
                            "status": "conflict",
                            "conversion_id": old.conversion_id,
                            "current": old.status,
                        },
                    )
                )
                continue
            if change == "duplicate":
                results.append(
                    Result(
                        "duplicate",
                        {"status": "duplicate", "conversion_id": old.conversion_id, "postbacks": 0},
                    )
                )
                label = f"duplicate:{click.traffic_source if click is not None else 'none'}"
                counts[label] = counts.get(label, 0) + 1
                continue
            record = Conversion(
                conversion_id=old.conversion_id,
                click_id=old.click_id,
                dedup_key=key,
                status=conv.status,
                created_at=old.created_at,
                tokens={**old.tokens, **conv.tokens, **conv.data},
            )
            outcome: Outcome = "accepted"
        else:
            record = Conversion(
                conversion_id=new_ids.pop(),
                click_id=conv.click_id,
                dedup_key=key,
                status=conv.status,
                created_at=now,
                tokens={**conv.tokens, **conv.data},
            )
            outcome = "accepted" if (click is not None or conv.data) else "unattributed"
        state[key] = record
        rows[key] = record
        rules: list[CompiledRule] = []
        upstream: dict[str, str] | None = None  # an upstream tracker's campaign, no click
        if click is not None:
            campaign = config.campaigns.get(click.campaign_id)
            rules = campaign.rules if campaign is not None else []
        elif conv.data:
            campaign = config.campaigns.get(conv.campaign) if conv.campaign else None
            if campaign is not None:
                rules = campaign.rules
                upstream = campaign_tokens(campaign)
            elif conv.traffic_source and conv.traffic_source in config.sources:
                source = config.sources[conv.traffic_source]
                rules = source.rules
                upstream = {"trafficsource.id": source.id, "trafficsource.name": source.name}
            if upstream is not None:  # kept with it: a replay or backfill finds its rules
                record.tokens = {**upstream, **record.tokens}
        fired_here = 0
        if rules:
            context = conversion_context(
                record.tokens, click.tokens if click is not None else upstream, conv.tokens
            )
            for rule in rules:
                if rule.matches(conv.status, conv.event, context, record.conversion_id):
                    slot = fired.get(id(rule))
                    if slot is None:  # not setdefault: that builds the tuple for every match
                        slot = fired[id(rule)] = (rule, [], [])
                    slot[1].append(context)
                    slot[2].append((record, click))
                    fired_here += 1
        body: dict[str, Any] = {
            "status": outcome,
            "conversion_id": record.conversion_id,
            "postbacks": fired_here,
        }
        if conv.ignored:  # said, not silently dropped: a network's name may need mapping
            body["ignored"] = conv.ignored
        results.append(Result(outcome, body))
        label = (
            f"{outcome}:"
            f"{click.traffic_source if click is not None else (conv.traffic_source or 'none')}"
        )
        counts[label] = counts.get(label, 0) + 1
    deliveries = render_deliveries(config, fired.values(), now)
    _note_held(deliveries, results, counts)
    return list(rows.values()), deliveries, results, counts


def _note_held(
    deliveries: Sequence[NewDelivery], results: Sequence[Result], counts: dict[str, int]
) -> None:
    """Held deliveries (a network's placeholder, no click id) named in their
    conversion's answer and counted per source, so the sender hears it at once."""
    held: dict[str, list[str]] = {}
    for d in deliveries:
        if d.held is not None:
            held.setdefault(d.conversion_id, []).append(d.held)
            label = f"held:{d.traffic_source}"
            counts[label] = counts.get(label, 0) + 1
    if not held:
        return
    for result in results:
        reasons = held.get(result.body.get("conversion_id", ""))
        if reasons:
            result.body["held"] = len(reasons)
            result.body["held_reason"] = reasons[0]
