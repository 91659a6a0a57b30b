"""Load the shipped presets (``presets.toml``) and expand them for a config.

A preset's postback is a gateway template in which account parameters are
written ``<name>`` (e.g. ``<goal>``); ``expand`` fills them from the config
before the template is compiled, so a missing parameter is a config error
naming it, never a broken URL at send time.

The data is reviewed like code: every fact carries its source in ``docs``,
and ``tests/test_sources_catalog.py`` checks that each postback compiles,
that its ``<params>`` are declared, and that its quoted answers get the
verdict stated next to them (``gateway.sources.answers``).
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Literal
from urllib.parse import quote

import msgspec

from gateway.verdict import Outcome

__all__ = (
    "Example",
    "MissingParams",
    "Param",
    "Preset",
    "UnknownPreset",
    "campaign_url",
    "describe_rule",
    "expand",
    "get",
    "names",
    "placeholders",
    "secret_query_names",
)

PARAM_RE = re.compile(r"<([a-z][a-z0-9_]*)>")
_PARAM_RE = PARAM_RE


class Param(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    secret: bool = False
    description: str = ""


class Example(msgspec.Struct, frozen=True, kw_only=True):
    """A real answer quoted from the network's docs, with the verdict it must get."""

    status: int
    body: str = ""
    outcome: Outcome
    source: str = ""


class Preset(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    title: str
    postback: str
    method: Literal["GET", "POST"] = "GET"
    #: other hosts the same network answers postbacks on (judged by this preset too)
    hosts: list[str] = []
    params: list[Param] = []
    #: gateway click parameter -> the network's macro, e.g. externalid -> {conversions_tracking}
    click_macros: dict[str, str] = {}
    #: the answer rule, in words (``sources show``); ``rule`` is its machine form.
    #: Left empty in the data, it is written from ``rule`` when the catalog loads.
    success: str = ""
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
    presets = [
        p if p.success else msgspec.structs.replace(p, success=describe_rule(p.rule))
        for p in presets
    ]
    return {preset.name: preset for preset in presets}


def describe_rule(rule: Mapping[str, str]) -> str:
    """An answer rule (``answers.compile_answer_rule``'s input) in words, for people."""
    parts = ["2xx"]
    if rule.get("body_error_prefix"):
        parts.append(f"whose body does not start with {rule['body_error_prefix']!r}")
    if rule.get("body_error_contains"):
        parts.append(f"whose body does not contain {rule['body_error_contains']!r}")
    if rule.get("json_field"):
        values = " or ".join(repr(v.strip()) for v in rule.get("json_error", "").split(","))
        parts.append(f"whose JSON field {rule['json_field']!r} is not {values}")
    return " ".join(parts) + "; 408, 429, 5xx retry; any other status rejected"


def placeholders(template: str) -> list[str]:
    """The account parameters (``<name>``) a postback uses, in order, once each."""
    return list(dict.fromkeys(_PARAM_RE.findall(template)))


def campaign_url(
    preset: Preset,
    base_url: str,
    campaign: str,
    *,
    click_id_param: str = "externalid",
    variables: Sequence[str] | None = None,
) -> str:
    """The click URL to paste into the network's panel.

    Query names are the gateway's: the click id goes in ``click_id_param``
    (a traffic source's own name for it), ``var:zoneid`` arrives as
    ``zoneid``; with ``variables`` (the source's), only the macros the source
    keeps are asked for.  The network's macros stay as they are, unencoded,
    because the network must find and substitute them.
    """
    pairs = []
    for name, macro in preset.click_macros.items():
        if name == "externalid":
            pairs.append(f"{click_id_param}={macro}")
            continue
        plain = name.removeprefix("var:")
        if variables is None or plain in variables:
            pairs.append(f"{plain}={macro}")
    url = f"{base_url.rstrip('/')}/click/{quote(campaign, safe='')}"
    return f"{url}?{'&'.join(pairs)}" if pairs else url


def secret_query_names(preset: Preset) -> list[str]:
    """Query parameters of the preset's postback that carry a secret ``<param>``
    (``goal`` for ExoClick): redacted on any rule sent to the network's host."""
    secret = {p.name for p in preset.params if p.secret}
    _, _, query = preset.postback.partition("?")
    found = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if any(m in secret for m in PARAM_RE.findall(value)):
            found.append(name)
    return found


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
