"""Affiliate-network presets: the parameter names a network's postbacks use.

A network posting ``sub1=...&payout_amount=...`` (Everflow) or
``aff_sub=...`` (TUNE) would otherwise have its click id and payout ignored;
``[[networks]] preset = "everflow"`` maps them to the gateway's names, and a
network's own ``params`` adds or overrides names.  The data lives in
``networks.toml``, each name with where it comes from.
"""

from __future__ import annotations

import difflib
import functools
import tomllib
from importlib import resources

import msgspec

__all__ = ("NetworkPreset", "UnknownNetworkPreset", "get", "names")


class NetworkPreset(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    title: str
    #: the network's parameter name -> the gateway parameter it carries
    params: dict[str, str] = {}
    notes: str = ""
    docs: list[str] = []


class UnknownNetworkPreset(ValueError):
    def __init__(self, name: str) -> None:
        close = difflib.get_close_matches(name.lower(), names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown network preset {name!r}{hint} (known: {', '.join(names())})")


@functools.cache
def _presets() -> dict[str, NetworkPreset]:
    text = resources.files(__package__).joinpath("networks.toml").read_text("utf-8")
    found = msgspec.convert(tomllib.loads(text).get("network", []), list[NetworkPreset])
    return {p.name: p for p in found}


def names() -> list[str]:
    return sorted(_presets())


def get(name: str) -> NetworkPreset:
    try:
        return _presets()[name.lower()]
    except KeyError:
        raise UnknownNetworkPreset(name) from None
