"""Load the shipped presets (``presets.toml``) and expand them for a config.

A preset's postback is a gateway template in which account parameters are
written ``<name>`` (e.g. ``<goal>``); ``expand`` fills them from the config
before the template is compiled, so a missing parameter is a config error
naming it, never a broken URL at send time.

TODO(sources): the full catalog (30+ networks), body answer rules, CLI.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Mapping
from importlib import resources

import msgspec

__all__ = (
    "Example",
    "MissingParams",
    "Param",
    "Preset",
    "UnknownPreset",
    "expand",
    "get",
    "names",
)

_PARAM_RE = re.compile(r"<([a-z][a-z0-9_]*)>")


class Param(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    secret: bool = False
    description: str = ""


class Example(msgspec.Struct, frozen=True, kw_only=True):
    """A real answer quoted from the network's docs, with the verdict it must get."""

    status: int
    body: str = ""
    outcome: str
    source: str = ""


class Preset(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    title: str
    postback: str
    method: str = "GET"
    params: list[Param] = []
    #: gateway click parameter -> the network's macro, e.g. externalid -> {conversions_tracking}
    click_macros: dict[str, str] = {}
    #: the answer rule, in words (``sources show``); ``rule`` is its machine form
    success: str = "any 2xx"
    rule: dict[str, str] = {}
    max_click_age: int | None = None
    currency: str = ""
    notes: str = ""
    docs: list[str] = []
    #: real answers and their expected verdicts: the rule's own regression test
    examples: list[Example] = []


class UnknownPreset(ValueError):
    def __init__(self, name: str) -> None:
        close = difflib.get_close_matches(name.lower(), names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown traffic-source preset {name!r}{hint}")
        self.name = name


class MissingParams(ValueError):
    def __init__(self, preset: str, missing: list[str]) -> None:
        super().__init__(f"preset {preset!r} needs parameter(s): {', '.join(missing)}")
        self.missing = missing


@functools.cache
def _catalog() -> dict[str, Preset]:
    text = resources.files(__package__).joinpath("presets.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    presets = msgspec.convert(raw.get("preset", []), list[Preset])
    return {preset.name: preset for preset in presets}


def names() -> list[str]:
    return sorted(_catalog())


def get(name: str) -> Preset:
    try:
        return _catalog()[name.lower()]
    except KeyError:
        raise UnknownPreset(name) from None


def expand(preset: Preset, params: Mapping[str, str]) -> str:
    """The preset's postback template with its account parameters filled in."""
    missing = [p.name for p in preset.params if not params.get(p.name)]
    if missing:
        raise MissingParams(preset.name, missing)
    return _PARAM_RE.sub(lambda m: params.get(m[1], m[0]), preset.postback)
