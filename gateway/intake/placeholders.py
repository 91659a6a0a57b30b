"""Flagging clicks and conversions that carry a network's unreplaced macro.

The visitor is never lost: a click with ``externalid={conversions_tracking}``
is still recorded and redirected, and a conversion still accepted.  What the
guard stops is the postback: a delivery that would carry the placeholder is
stored ``held`` (``CompiledRule.held``, decided when deliveries are rendered).
Here the inputs are only looked at, so ``/metrics`` counts them per source as
they arrive and ``/api/clicks`` can say so in its answer.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import Campaign, Config
from gateway.intake.params import ConversionInput

__all__ = ("click_flaw", "conversion_flaw")


def click_flaw(campaign: Campaign, tokens: Mapping[str, str]) -> str | None:
    """Why the click's postbacks would be held (the first rule's reason), or None."""
    for rule in campaign.rules:
        flaw = rule.flaw(tokens)
        if flaw is not None:
            return flaw
    return None


def conversion_flaw(config: Config, conv: ConversionInput) -> tuple[str, str] | None:
    """(source, reason) for an upstream tracker's conversion (no click of ours) whose
    own values would be held by its campaign's or source's rules, else None."""
    if conv.click_id is not None or not conv.data:
        return None
    campaign = config.campaigns.get(conv.campaign) if conv.campaign else None
    source = (
        campaign.source if campaign is not None else config.sources.get(conv.traffic_source or "")
    )
    if source is None:
        return None
    rules = campaign.rules if campaign is not None else source.rules
    values = {**conv.tokens, **conv.data}
    for rule in rules:
        flaw = rule.flaw(values)
        if flaw is not None:
            return source.name, flaw
    return None
