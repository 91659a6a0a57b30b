"""Visit values a caller passes: an upstream tracker's ``country=US&os=Android``.

Which names count as visit values, and how a passed value and a detected one
are combined, is decided here only.  Precedence: a passed value wins over the
detected one, because a caller that passes it saw the visitor (an upstream
tracker calling ``/api/clicks`` from its own server, or a traffic source's
macro that the operator chose to map), while the gateway may only see that
caller.  A passed two-letter ``{country}`` also fills ``{countryname}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from _fastrender._catalog import DIALECTS
from gateway.enrich.countries import COUNTRY_NAMES

__all__ = ("PASSED_NAMES", "PASSED_TOKENS", "VISIT_TOKENS", "merge_passed", "visit_token")

#: The canonical tokens a visit fills (detected or passed).
VISIT_TOKENS: Final = (
    "country",
    "countryname",
    "region",
    "city",
    "os",
    "osversion",
    "browser",
    "browserversion",
    "device",
    "brand",
    "model",
    "device_name",
    "resolution",
    "isp",
    "asn",
    "carrier",
    "connection.type",
)
#: What an upstream tracker may pass besides: its routing names and user id.
PASSED_TOKENS: Final = (*VISIT_TOKENS, "user.id", "path.name", "rule.name")


def _names() -> Mapping[str, str]:
    names = {
        alias: canonical
        for alias, canonical in DIALECTS["clickflare"].items()
        if canonical in PASSED_TOKENS
    }
    # Spellings trackers use in query strings, where a dot is awkward.
    names.update(
        {
            "connection_type": "connection.type",
            "conn": "connection.type",
            "country_name": "countryname",
            "state": "region",
        }
    )
    return MappingProxyType(names)


#: Parameter name -> canonical token, read on every click without configuration.
PASSED_NAMES: Final[Mapping[str, str]] = _names()


def visit_token(name: str) -> str | None:
    """The canonical token a config's ``visit_params`` key names, or None."""
    return PASSED_NAMES.get(name.lower())


def merge_passed(detected: Mapping[str, str], passed: Mapping[str, str]) -> dict[str, str]:
    """Detected tokens under passed ones (``passed`` keyed by canonical name)."""
    out = {**detected, **passed}
    code = passed.get("country")
    if code is not None and "countryname" not in passed:
        name = COUNTRY_NAMES.get(code.upper()) if len(code) == 2 else None
        if name is not None:
            out["countryname"] = name
        else:
            out.pop("countryname", None)  # the detected name would contradict it
    return out
