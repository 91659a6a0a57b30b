"""The token catalog: one table shared by the compiled core and its twin.

Canonical names follow ClickFlare's token table; Binom's names are aliases.
Keeping the data in plain Python means both implementations resolve a
template identically by construction, not by keeping two copies in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = (
    "ARG_TOKENS",
    "CANONICAL",
    "DEPRECATED",
    "DIALECTS",
    "MODIFIERS",
    "RANDOM_TOKEN",
    "lookup",
    "names_for",
)

# Canonical names with their aliases.  Order is documentation order.
_TABLE: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("click.id", ("clickid",)),
    ("externalid", ("external_id",)),
    *((f"var{i}", (f"t{i}",)) for i in range(1, 21)),
    ("campaign.id", ("campaign",)),
    ("campaign.name", ("campaign_name",)),
    ("campaign.key", ("campaign_key",)),
    ("trafficsource.id", ("trafficsource",)),
    ("trafficsource.name", ("trafficsource_name",)),
    ("lander.id", ("lander",)),
    ("offer.id", ("offer",)),
    ("path.name", ("path_name",)),
    ("rule.name", ("rule_name",)),
    ("transaction.id", ("txid",)),
    ("payout", ()),
    ("conversion.cost", ("campaign.cpa",)),
    ("conversion.status", ("status",)),
    ("conversion.type", ("type",)),
    ("conversion.time", ("conversion_time",)),
    ("currency", ()),
    *((f"event{i}", ()) for i in range(1, 11)),
    ("user.id", ("user_id",)),
    ("click.cost", ("clickcost",)),
    ("click.time", ("time",)),
    ("click.htime", ("htime",)),
    ("ip", ()),
    ("user_agent", ()),
    ("referrerdomain", ()),
    ("referer", ()),
    ("domain", ()),
    ("country", ("country_code",)),
    ("countryname", ()),
    ("region", ()),
    ("city", ()),
    ("language", ()),
    ("os", ("os_name",)),
    ("osversion", ("os_version",)),
    ("browser", ("browser_name",)),
    ("browserversion", ("browser_version",)),
    ("device", ()),
    ("brand", ("device_brand",)),
    ("model", ("device_model",)),
    ("device_name", ()),
    ("resolution", ()),
    ("isp", ()),
    ("asn", ()),
    ("carrier", ()),
    ("connection.type", ()),
    ("random", ()),
)

#: Every canonical token name, in documentation order.
CANONICAL: Final[tuple[str, ...]] = tuple(name for name, _ in _TABLE)

#: Tokens that take an argument, ``{var:NAME}``; the value key is ``var:NAME``.
ARG_TOKENS: Final[Mapping[str, str]] = MappingProxyType({"var": "var", "tname": "var"})

#: Names that still compile but that ``gateway check`` warns about.
DEPRECATED: Final[Mapping[str, str]] = MappingProxyType({"campaign.cpa": "conversion.cost"})

#: The cache-buster token: drawn afresh for each render unless a value is given.
RANDOM_TOKEN: Final = "random"

#: Modifier names; ``raw`` must come last, ``map`` needs an argument.
MODIFIERS: Final[tuple[str, ...]] = ("lower", "map", "md5", "raw", "sha1", "sha256", "upper")


def _build(overrides: Mapping[str, str]) -> Mapping[str, str]:
    names: dict[str, str] = {}
    for canonical, aliases in _TABLE:
        names[canonical] = canonical
        for alias in aliases:
            names[alias] = canonical
    names.update(overrides)
    return MappingProxyType(names)


#: Lower-cased name -> canonical key, per dialect.  Binom differs in one
#: place: its ``{country}`` is the country *name* (``{country_code}`` is the
#: code, which the shared alias already covers).
DIALECTS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "clickflare": _build({}),
        "binom": _build({"country": "countryname"}),
    }
)


def lookup(name: str, dialect: str) -> str | None:
    """The canonical key of a plain (argument-less) token name, or ``None``."""
    return DIALECTS[dialect].get(name.lower())


def names_for(dialect: str) -> tuple[str, ...]:
    """Every spelling a dialect accepts, for did-you-mean suggestions."""
    return (*DIALECTS[dialect], "var:NAME", "tName:NAME")
