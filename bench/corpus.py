"""Real postback URLs, in gateway-token form, with value sets to render them with.

The templates follow the networks' documented postbacks (see
shared/reference/traffic-sources.md; account ids are made up).  Values are
drawn deterministically so that about a fifth of them need percent-encoding:
click ids with ``=`` or ``/`` (base64), descriptions with spaces, names with
non-ASCII letters, the rest plain ids and numbers, as traffic really looks.

Expected URLs are computed here once, with ``urllib.parse.quote`` and no
``_fastrender`` code, so every benchmark can check its own output.
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
import urllib.parse
from collections.abc import Mapping
from typing import Final

__all__ = (
    "CASES",
    "TOKEN",
    "Case",
    "all_rows",
    "encoded_share",
    "expected_urls",
    "expected_value",
)

ROWS_PER_CASE: Final = 8
SAFE: Final = "-._~"
#: A corpus token: ``{name}`` with a canonical name (``var:NAME`` included).
TOKEN: Final = re.compile(r"\{([a-z][a-z0-9_.]*(?::[A-Za-z0-9_.\-]+)?)\}")

# (network, template) -- account ids, goals and keys are invented.
_TEMPLATES: Final[tuple[tuple[str, str], ...]] = (
    (
        "ExoClick",
        "https://s.magsrv.com/tag.php?goal=4f1c9a3b2e7d6c5a8b9f0e1d2c3b4a59"
        "&tag={externalid}&value={payout}",
    ),
    (
        "PropellerAds",
        "https://ad.propellerads.com/conversion.php?aid=3456789&pid=&tid=123456"
        "&visitor_id={externalid}&payout={payout}",
    ),
    (
        "TrafficStars",
        "https://tsyndicate.com/api/v1/cpa/action?clickid={externalid}"
        "&value={payout}&key=Zk3Qm9xW2pLr8TbN",
    ),
    (
        "TrafficJunky",
        "https://ads.trafficjunky.net/ct?a=1000123&member_id=2000456&cb={random}"
        "&cti={transaction.id}&ctv={payout}&ctd={conversion.type}&aclid={externalid}",
    ),
    (
        "Zeropark",
        "https://postback.zeroredirect1.com/zppostback/"
        "5e0c1a2b-3c4d-11ee-9f8a-0a1b2c3d4e5f?cid={externalid}&payout={payout}",
    ),
    ("MGID", "https://a.mgid.com/postback?c={externalid}&e={conversion.status}123456&r={payout}"),
    (
        "Outbrain",
        "https://tr.outbrain.com/unifiedPixel?ob_click_id={externalid}&name=purchase"
        "&orderValue={payout}&currency={currency}&orderId={transaction.id}",
    ),
    (
        "Taboola",
        "https://trc.taboola.com/actions-handler/log/3/s2s-action?click-id={externalid}"
        "&name={conversion.type}&revenue={payout}&currency={currency}&orderid={transaction.id}",
    ),
    ("RichAds", "https://xml.auxml.com/log?action=conversion&key={externalid}&price={payout}"),
    ("EvaDav", "https://evadav.com/phpb?click_id={externalid}&payout={payout}"),
    ("RollerAds", "https://eu.rollerads.com/conversion/{externalid}/aid/123456/9f8e7d6c5b4a"),
    (
        "Clickadu",
        "https://sconvtrk.com/conversion/8a7b6c5d4e3f/?visitor_id={externalid}&aid=654321",
    ),
    (
        "MediaGo",
        "https://sync.mediago.io/api/bidder/postback?trackingid={externalid}"
        "&adid={var:adid}&conversiontype=1&conversionprice={payout}&includeintotalconversion=1",
    ),
    ("LeadBolt", "https://ad.leadbolt.net/conv/?track_id={var:track_id}&clk_id={externalid}"),
)

# Per token: (values that need no encoding, values that do).
_POOLS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "externalid": (
        (
            "8d5e1f0a9b3c4d2e",
            "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
            "CjwKCAiA-Yv_BhB3",
            "1700000000.123456",
            "ZP_7f3e2d1c",
        ),
        ("GiD1xQm+/k2=", "eyJ0eXAiOiJKV1Qi=="),
    ),
    "transaction.id": (("ord-100234", "TX-99-ab12", "7f3e2d1c0b9a"), ("ord 77/2", "#A-19")),
    "conversion.type": (("purchase", "lead", "install"), ("sign up", "Premium: annual")),
    "conversion.status": (("approved", "sale", "1"), ("on hold",)),
    "currency": (("USD", "EUR", "BRL"), ()),
    "var:adid": (("ad_4412", "77812"), ("ad 4412|b",)),
    "var:track_id": (("trk-1", "9981"), ("trk:São Paulo",)),
    "random": (("4127730", "88231002"), ()),
}
_PAYOUTS: Final = (1.25, 0.35, 12.0, 0.004, 3, 250, 0.1)


@dataclasses.dataclass(frozen=True)
class Case:
    """One network's postback template with rows of values and the URLs they must give."""

    network: str
    template: str
    rows: tuple[dict[str, object], ...]
    expected: tuple[str, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(TOKEN.findall(self.template))


def expected_value(value: object) -> str:
    """The oracle: a value's text (plain ``str`` of numbers here), RFC 3986 encoded."""
    return urllib.parse.quote("" if value is None else str(value), safe=SAFE)


def expected_urls(template: str, rows: tuple[dict[str, object], ...]) -> tuple[str, ...]:
    return tuple(
        TOKEN.sub(lambda m, row=row: expected_value(row.get(m[1])), template)  # type: ignore[misc]
        for row in rows
    )


def _build() -> tuple[Case, ...]:
    rng = random.Random(20261123)
    total = encoded = 0
    cases = []
    for network, template in _TEMPLATES:
        rows = []
        for _ in range(ROWS_PER_CASE):
            row: dict[str, object] = {}
            # Interned keys, as in a dict built from literals in the gateway's code.
            for key in map(sys.intern, TOKEN.findall(template)):
                if key in row:
                    continue
                total += 1
                if key == "payout":
                    row[key] = rng.choice(_PAYOUTS)
                    continue
                plain, needs_encoding = _POOLS[key]
                # Keep the running share of values that need encoding near 20%.
                if needs_encoding and encoded < 0.2 * total:
                    encoded += 1
                    row[key] = rng.choice(needs_encoding)
                else:
                    row[key] = rng.choice(plain)
            rows.append(row)
        frozen_rows = tuple(rows)
        cases.append(Case(network, template, frozen_rows, expected_urls(template, frozen_rows)))
    return tuple(cases)


#: The corpus: every network's template with its rows and expected URLs.
CASES: Final[tuple[Case, ...]] = _build()


def all_rows() -> int:
    """How many URLs one pass over the corpus renders."""
    return sum(len(case.rows) for case in CASES)


def encoded_share() -> float:
    """The share of values in the corpus whose text needs percent-encoding."""
    values = [value for case in CASES for row in case.rows for value in row.values()]
    needing = sum(expected_value(value) != str(value) for value in values)
    return needing / len(values)
