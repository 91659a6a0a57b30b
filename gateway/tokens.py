"""The token context: every value a postback template reads, built in one place.

A postback's tokens come from three places: the click (campaign, traffic
source, the visit's request, the source's click macros), the conversion
(payout, status, transaction id, the network's extra values) and, for a test
send, defaults that make any template render.  Each has one builder here, and
``conversion_context`` layers them the same way for delivery and for tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import msgspec

from gateway import clickid
from gateway.refusal import Reject

if TYPE_CHECKING:  # annotations only: config's checks read FILLED_BY from here
    from gateway.config import Campaign, Source

__all__ = (
    "FILLED_BY",
    "TEST_CURRENCY",
    "TEST_PAYOUT",
    "TEST_STATUS",
    "VAR_KEYS",
    "Visit",
    "bad_text",
    "campaign_tokens",
    "click_tokens",
    "conversion_context",
    "test_values",
)

#: What a test send fills in when the caller gives no value.
TEST_PAYOUT = "1.00"
TEST_STATUS = "approved"
TEST_CURRENCY = "USD"
#: The numbered variables a click or conversion may carry as they are.
VAR_KEYS = tuple(f"var{i}" for i in range(1, 21))

_VISIT = "the visitor's request to /click"
#: What fills each token at delivery (the builders below); ``{var:NAME}`` is
#: filled by the click URL's NAME when NAME is one of the source's
#: ``variables``.  A template token missing here renders empty for every
#: conversion: ``gateway check`` warns, docs/templates.md lists the table.
FILLED_BY: Mapping[str, str] = {
    "click.id": "the click (a new id per click)",
    "click.time": "the click",
    "click.cost": "the click URL's cost=",
    "campaign.id": "the campaign",
    "campaign.name": "the campaign's name",
    "campaign.key": "the campaign's key",
    "trafficsource.id": "the traffic source",
    "trafficsource.name": "the traffic source",
    "externalid": "the click URL's click_id_param, or a conversion's externalid=",
    **dict.fromkeys(VAR_KEYS, "the click URL: the source's variables, in order, or varN="),
    "ip": _VISIT,
    "user_agent": _VISIT,
    "referer": _VISIT,
    "referrerdomain": _VISIT,
    "language": _VISIT,
    "payout": "the conversion's payout= (sum=, amount=)",
    "conversion.status": "the conversion's status= (approved when absent)",
    "transaction.id": "the conversion's txid= (transaction_id=, tid=)",
    "conversion.type": "the conversion's event= (et=)",
    "currency": "the conversion's currency=",
    "random": "drawn afresh for each render",
}


def bad_text(value: str, limit: int) -> bool:
    """Too long to keep, or not text (a lone surrogate cannot be stored or sent)."""
    if len(value) > limit:
        return True
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


class Visit(msgspec.Struct, kw_only=True, gc=False):
    """What the visitor's own request says about the visit (empty: not known)."""

    ip: str = ""
    user_agent: str = ""
    referer: str = ""
    language: str = ""


def click_tokens(
    campaign: Campaign,
    params: Mapping[str, str],
    *,
    click_id: str,
    now: float,
    visit: Visit,
    limit: int,
) -> dict[str, str] | Reject:
    """Every token a click carries, keyed by canonical name (values bounded)."""
    source = campaign.source
    spec = source.spec
    tokens = {
        "click.id": click_id,
        "click.time": str(int(now)),
        "campaign.id": campaign.id,
        "trafficsource.id": source.id,
        "trafficsource.name": source.name,
    }
    if campaign.spec.name:
        tokens["campaign.name"] = campaign.spec.name
    if campaign.spec.key:
        tokens["campaign.key"] = campaign.spec.key
    referer = _text(visit.referer)
    for key, value in (
        ("ip", visit.ip),
        ("user_agent", visit.user_agent),
        ("referer", referer),
        ("language", visit.language),
    ):
        if value:
            # headers arrive with undecodable bytes as surrogates: stored as U+FFFD,
            # since a value the store cannot encode would sink the whole group commit
            tokens[key] = _text(value[:limit])
    if referer:
        try:  # a visitor's Referer is theirs to mangle: the click is kept either way
            host = urlsplit(referer[:limit]).hostname if "://" in referer else None
        except ValueError:
            host = None
        if host:
            tokens["referrerdomain"] = host
    for name, value in params.items():
        if not isinstance(value, str) or bad_text(value, limit):
            return Reject(400, f"value too long (max {limit}) or not valid text", str(name)[:64])
    externalid = params.get(spec.click_id_param)
    if externalid:
        tokens["externalid"] = externalid
    for i, name in enumerate(spec.variables[:20], start=1):
        given = params.get(name)
        if given:
            tokens[f"var{i}"] = given
            tokens[f"var:{name}"] = given
    for key in VAR_KEYS:
        given = params.get(key)
        if given and key not in tokens:
            tokens[key] = given
    cost = params.get("cost")
    if cost:
        tokens["click.cost"] = cost
    return tokens


def campaign_tokens(campaign: Campaign) -> dict[str, str]:
    """The campaign's and its source's tokens, for a conversion with no click of
    ours (an upstream tracker's, naming ``campaign=``)."""
    source = campaign.source
    tokens = {
        "campaign.id": campaign.id,
        "trafficsource.id": source.id,
        "trafficsource.name": source.name,
    }
    if campaign.spec.name:
        tokens["campaign.name"] = campaign.spec.name
    if campaign.spec.key:
        tokens["campaign.key"] = campaign.spec.key
    return tokens


def conversion_context(
    stored: Mapping[str, str], click: Mapping[str, str] | None, given: Mapping[str, str]
) -> dict[str, str]:
    """A postback's tokens: the conversion as stored, under the click's, under what
    this request gave (its status, payout, transaction id win)."""
    if click is None:
        return {**stored, **given}
    return {**stored, **click, **given}


def test_values(
    source: Source, campaign: Campaign | None, given: Mapping[str, str], now: float
) -> dict[str, str]:
    """The tokens of a test send: a fake click and conversion under ``given``, so any
    template renders and the network sees an obviously test conversion."""
    values: dict[str, str] = {
        "click.id": clickid.new_click_id(now),
        "click.time": str(int(now)),
        "externalid": f"test-{secrets.token_hex(6)}",
        "payout": TEST_PAYOUT,
        "conversion.status": TEST_STATUS,
        "transaction.id": f"test-{secrets.token_hex(4)}",
        "currency": TEST_CURRENCY,
        "trafficsource.id": source.id,
        "trafficsource.name": source.name,
    }
    if campaign is not None:
        values["campaign.id"] = campaign.id
        if campaign.spec.name:
            values["campaign.name"] = campaign.spec.name
        if campaign.spec.key:
            values["campaign.key"] = campaign.spec.key
    values.update(given)
    return values


def _text(value: str) -> str:
    """``value`` as valid UTF-8 text (a header's undecodable bytes become U+FFFD)."""
    if value.isascii():
        return value
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        raw = value.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")
