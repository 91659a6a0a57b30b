"""The token context: every value a postback template reads, built in one place.

A postback's tokens come from three places: the click (campaign, traffic
source, the visit: its request, what enrichers derive from it and what the
caller passed, see ``gateway.enrich``; the source's click macros), the conversion
(payout, status, transaction id, the network's extra values) and, for a test
send, defaults that make any template render.  Each has one builder here, and
``conversion_context`` layers them the same way for delivery and for tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from msgspec.structs import replace

from gateway import clickid
from gateway.enrich.base import EMPTY, Enricher, Visit
from gateway.enrich.passed import merge_passed
from gateway.htime import seal_htime
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
    "visit_tokens",
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
    **dict.fromkeys(
        (
            "lander.id",
            "offer.id",
        ),
        "the campaign's lander/offer, or the click's lander=/offer=",
    ),
    **dict.fromkeys(
        (
            "path.name",
            "rule.name",
            "user.id",
        ),
        "an upstream tracker's path_name=/rule_name=/user_id= on the click",
    ),
    **dict.fromkeys(("conversion.cost",), "the conversion's cost="),
    **dict.fromkeys(("conversion.time",), "the conversion (when the gateway received it)"),
    **dict.fromkeys(
        (
            "event1",
            "event2",
            "event3",
            "event4",
            "event5",
            "event6",
            "event7",
            "event8",
            "event9",
            "event10",
        ),
        "the conversion's event1= … event10=",
    ),
    **dict.fromkeys(("click.htime",), "the click time, sealed with [server] secret"),
    **dict.fromkeys(("domain",), "the Host of the visitor's request to /click"),
    **dict.fromkeys(
        (
            "country",
            "countryname",
            "region",
            "city",
            "isp",
            "asn",
        ),
        "the IP data (geo install) for the client address, or a value passed on the click",
    ),
    **dict.fromkeys(
        (
            "os",
            "osversion",
            "browser",
            "browserversion",
            "device",
            "brand",
            "model",
            "device_name",
        ),
        "the visitor's User-Agent (ua-parser), or a value passed on the click",
    ),
    **dict.fromkeys(
        (
            "resolution",
            "carrier",
            "connection.type",
        ),
        "a value passed on the click only (docs/visit.md says why)",
    ),
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


#: Click parameters naming the campaign's lander and offer (first found wins).
_LANDER_NAMES = ("lander", "lander_id", "lander.id")
_OFFER_NAMES = ("offer", "offer_id", "offer.id")


def visit_tokens(
    visit: Visit,
    enricher: Enricher | None,
    limit: int,
    passed: Mapping[str, str] = EMPTY,
) -> dict[str, str]:
    """A visit's tokens: what its request says, what the enricher derives from it,
    and under ``passed`` (canonical names) what the caller says.  ``/click``,
    ``/api/clicks`` and ``python -m gateway visit`` all build them here."""
    if not (visit.user_agent.isascii() and visit.ip.isascii()):
        # a header's undecodable bytes arrive as surrogates: the enrichers see text
        visit = replace(visit, user_agent=_text(visit.user_agent), ip=_text(visit.ip))
    detected = enricher.tokens(visit) if enricher is not None else EMPTY
    tokens = merge_passed(detected, passed) if passed else dict(detected)
    referer = _text(visit.referer)
    for key, value in (
        ("ip", visit.ip),
        ("user_agent", visit.user_agent),
        ("referer", referer),
        ("language", visit.language),
        ("domain", visit.domain),
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
    return tokens


def click_tokens(
    campaign: Campaign,
    params: Mapping[str, str],
    *,
    click_id: str,
    now: float,
    visit: Visit,
    limit: int,
    enricher: Enricher | None = None,
    secret: str | None = None,
) -> dict[str, str] | Reject:
    """Every token a click carries, keyed by canonical name (values bounded)."""
    source = campaign.source
    spec = source.spec
    passed: dict[str, str] = {}
    visit_names = source.visit_params
    for name, value in params.items():
        if not isinstance(value, str) or bad_text(value, limit):
            return Reject(400, f"value too long (max {limit}) or not valid text", str(name)[:64])
        token = visit_names.get(name)
        if token is not None and value:
            passed[token] = value
    tokens = visit_tokens(visit, enricher, limit, passed)
    tokens["click.id"] = click_id
    tokens["click.time"] = str(int(now))
    tokens["campaign.id"] = campaign.id
    tokens["trafficsource.id"] = source.id
    tokens["trafficsource.name"] = source.name
    if campaign.spec.name:
        tokens["campaign.name"] = campaign.spec.name
    if campaign.spec.key:
        tokens["campaign.key"] = campaign.spec.key
    if secret:
        tokens["click.htime"] = seal_htime(secret, click_id, now)
    for key, names, default in (
        ("lander.id", _LANDER_NAMES, campaign.spec.lander_id),
        ("offer.id", _OFFER_NAMES, campaign.spec.offer_id),
    ):
        chosen = next((v for n in names if (v := params.get(n))), default)
        if chosen:
            tokens[key] = chosen
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
