"""What a conversion request says: parameter aliases, status words, bounded values.

Parsing returns either a small input record or a ``Reject`` (status, error,
field), so the hot path never uses exceptions for control flow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.config import Config, Network
from gateway.intake.names import ROLES
from gateway.refusal import Reject
from gateway.store.base import Click, ConversionStatus
from gateway.tokens import bad_text

__all__ = (
    "STATUS_WORDS",
    "ClickInput",
    "ConversionInput",
    "normalise_status",
    "parse_conversion",
)


STATUS_WORDS: Mapping[str, ConversionStatus] = {
    **dict.fromkeys(
        (
            "approved",
            "approve",
            "confirmed",
            "confirm",
            "sale",
            "success",
            "ok",
            "paid",
            "completed",
            "complete",
            "accepted",
            "1",
        ),
        "approved",
    ),
    **dict.fromkeys(("pending", "lead", "hold", "on_hold", "waiting", "new", "2"), "pending"),
    **dict.fromkeys(
        (
            "rejected",
            "reject",
            "declined",
            "decline",
            "cancelled",
            "canceled",
            "trash",
            "fail",
            "failed",
            "chargeback",
            "refund",
            "refunded",
            "reversed",
            "d",
            "f",
            "3",
        ),
        "rejected",
    ),
}
_MAX_PAYOUT = Decimal("1e12")
#: The one payout syntax (docs/security.md): ASCII digits, an optional sign and
#: fraction, an optional short exponent; no spaces, underscores or other digits.
_PAYOUT_SYNTAX = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?", re.ASCII
)
#: Digits after the point a payout may carry (so it renders in a bounded length).
PAYOUT_DECIMALS = 12


class ConversionInput:
    __slots__ = (
        "campaign",
        "click_id",
        "data",
        "event",
        "future",
        "ignored",
        "network",
        "secret",
        "status",
        "tokens",
        "traffic_source",
        "txid",
    )
    campaign: str | None
    click_id: str | None
    data: dict[str, str]
    event: str | None
    #: parameters sent that the gateway does not read (named in the answer)
    ignored: list[str]
    network: Network | None
    secret: Any  # as sent: only a str can match
    status: ConversionStatus
    tokens: dict[str, str]
    traffic_source: str | None
    txid: str | None

    def __init__(self) -> None:
        self.future: Any = None


class ClickInput:
    __slots__ = ("click", "future")

    def __init__(self, click: Click) -> None:
        self.click = click
        self.future: Any = None


def normalise_status(word: str, network: Network | None) -> ConversionStatus | None:
    key = word.strip().lower()
    if network is not None:
        found = network.statuses.get(key)
        if found is not None:
            return found
    return STATUS_WORDS.get(key)


def parse_conversion(
    params: Mapping[str, Any] | Sequence[tuple[str, Any]], config: Config
) -> ConversionInput | Reject:
    """One conversion from query/form/JSON parameters (aliases accepted), in one pass.

    ``params`` is a mapping (a multidict: every item is seen) or its items as
    (name, value) pairs, in order."""
    limit = config.limits.max_value_length
    found: dict[str, tuple[int, Any]] = {}
    data: dict[str, str] = {}
    ignored: list[str] = []
    items = getattr(params, "items", None)
    pairs: Iterable[tuple[str, Any]] = params if items is None else items()  # type: ignore[assignment]
    # The network first: its own parameter names (``[[networks]] params``) apply.
    named = _network_name(params, items is None)
    network = (
        config.networks.get(named if isinstance(named, str) else str(named))
        if isinstance(named, str | int | float)
        else None
    )
    if named is not None and network is None:
        return Reject(400, "unknown network", "network")
    if network is None and config.spec.require_network:
        return Reject(400, "network is required", "network")
    roles = network.roles if network is not None else ROLES
    for name, value in pairs:
        if value.__class__ is not str:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                return Reject(400, "values must be strings or numbers", str(name)[:64])
            try:
                value = repr(value) if isinstance(value, float) else str(value)
            except ValueError:  # an int too long to print
                return Reject(400, "number too long", str(name)[:64])
            if len(value) > limit:
                return Reject(400, f"value too long (max {limit})", str(name)[:64])
        elif len(value) > limit or (not value.isascii() and bad_text(value, limit)):
            return Reject(400, f"value too long (max {limit}) or not valid text", str(name)[:64])
        role = roles.get(name)
        if role is None:
            if value and name.startswith("var:") and len(name) <= 68:
                data[name] = value
            elif len(ignored) < _MAX_IGNORED:
                ignored.append(str(name)[:64])
            continue
        kind, rank = role
        if value == "" and kind != "network":
            continue
        if rank < 0:  # var1..var20: kept as given
            data[kind] = value
            continue
        held = found.get(kind)
        if held is None or rank < held[0]:
            found[kind] = (rank, value)
    get = found.get
    conv = ConversionInput()
    conv.network = network
    conv.ignored = ignored
    conv.secret = item[1] if (item := get("secret")) is not None else None
    conv.click_id = item[1] if (item := get("click_id")) is not None else None
    conv.txid = item[1] if (item := get("txid")) is not None else None
    conv.event = item[1] if (item := get("event")) is not None else None
    item = get("status")
    if item is None:
        conv.status = "approved"
    else:
        status = normalise_status(item[1], network)
        if status is None:
            return Reject(400, f"unknown status {item[1][:64]!r}", "status")
        conv.status = status
    tokens: dict[str, str] = {"conversion.status": conv.status}
    item = get("payout")
    if item is not None:
        payout = item[1]
        if len(payout) > 40 or not _PAYOUT_SYNTAX.fullmatch(payout):
            return Reject(400, "payout must be a plain decimal number (e.g. 1.25)", "payout")
        try:
            number = Decimal(payout)
        except InvalidOperation:
            return Reject(400, "payout must be a number", "payout")
        if abs(number) >= _MAX_PAYOUT:
            return Reject(400, "payout must be a finite number below 1e12", "payout")
        exponent = number.normalize().as_tuple().exponent  # an int: the number is finite
        if number and isinstance(exponent, int) and exponent < -PAYOUT_DECIMALS:
            return Reject(400, f"payout has more than {PAYOUT_DECIMALS} decimal places", "payout")
        if number < 0 and (network is None or not network.corrections):
            return Reject(
                400,
                "negative payout: only a network marked corrections = true may send one",
                "payout",
            )
        tokens["payout"] = payout
    if conv.txid is not None:
        tokens["transaction.id"] = conv.txid
    if conv.event is not None:
        tokens["conversion.type"] = conv.event
    if (item := get("currency")) is not None:
        tokens["currency"] = item[1]
    if (item := get("externalid")) is not None:
        data["externalid"] = item[1]
    conv.data = data
    conv.tokens = tokens
    conv.campaign = item[1] if (item := get("campaign")) is not None else None
    conv.traffic_source = item[1] if (item := get("traffic_source")) is not None else None
    if conv.campaign is not None and conv.campaign not in config.campaigns:
        return Reject(400, f"unknown campaign {conv.campaign[:64]!r}", "campaign")
    if conv.traffic_source is not None and conv.traffic_source not in config.sources:
        return Reject(400, f"unknown traffic source {conv.traffic_source[:64]!r}", "traffic_source")
    if conv.click_id is None and not data:
        error = "a click id (cid, clickid, click_id or subid) is required"
        if ignored:  # say what was sent instead: a network's own names need mapping
            error += (
                f"; ignored {', '.join(ignored)} (map a network's own names in"
                " [[networks]] params, or name its preset)"
            )
        return Reject(400, error, "cid")
    return conv


#: Ignored parameter names an answer lists at most.
_MAX_IGNORED = 20


def _network_name(params: Any, is_pairs: bool) -> Any:
    """The ``network`` parameter's value (None: not given), before the main pass."""
    if not is_pairs:
        return params.get("network")
    for name, value in params:
        if name == "network":
            return value
    return None
