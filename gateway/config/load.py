"""Reading a config file: TOML in, a compiled config (or every problem) out.

``read`` never stops at the first problem: each section, and each postback
rule in it, is decoded on its own, so ``gateway check`` can list every
mistake at once.  ``load`` is the strict form ``serve`` uses: any error
raises :class:`ConfigError`, and warnings go to the log.
"""

from __future__ import annotations

import logging
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from gateway.config.compile import Config, compile_config
from gateway.config.decode import decode_struct
from gateway.config.lint import Problem
from gateway.config.schema import (
    INVALID_RULE,
    BatchSettings,
    CampaignSpec,
    ConfigSpec,
    LimitSettings,
    NetworkSpec,
    StoreSettings,
    TrafficSourceSpec,
)
from gateway.dispatch.settings import DeliverySettings
from gateway.rules import PayoutTransform, RuleSpec

__all__ = ("ConfigError", "default_config_path", "load", "read", "validate")

log = logging.getLogger(__name__)

#: The array-of-tables sections, each item decoded on its own.
_SECTIONS: tuple[tuple[str, type[Any]], ...] = (
    ("traffic_sources", TrafficSourceSpec),
    ("campaigns", CampaignSpec),
    ("networks", NetworkSpec),
)

#: Sub-tables decoded on their own, so a mistake in one hides nothing in another.
_TABLES: Mapping[str, Any] = {
    "batch": BatchSettings,
    "limits": LimitSettings,
    "delivery": DeliverySettings,
    "store": StoreSettings,
}
_RULE_TABLES: Mapping[str, Any] = {"payout": PayoutTransform}


class ConfigError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems if p.level == "error"))


def default_config_path() -> Path:
    """The example config: examples/gateway.toml beside the package (a checkout or
    an editable install), else the copy a wheel installs in
    ``<prefix>/share/postback-gateway/``; the first if neither exists (so the
    error names it)."""
    candidates = (
        Path(__file__).resolve().parents[2] / "examples" / "gateway.toml",
        Path(sys.prefix) / "share" / "postback-gateway" / "gateway.toml",
    )
    return next((path for path in candidates if path.is_file()), candidates[0])


def _decode_item(raw: Any, kind: Any, path: str, problems: list[Problem]) -> Any:
    """A source or campaign, with each of its postback rules decoded on its own,
    so one bad rule does not hide the problems of the others."""
    if not isinstance(raw, dict) or not isinstance(raw.get("postbacks"), list):
        return decode_struct(raw, kind, path, problems)
    rules = [
        decode_struct(item, RuleSpec, f"{path}.postbacks[{j}]", problems, _RULE_TABLES)
        or INVALID_RULE
        for j, item in enumerate(raw["postbacks"])
    ]
    rest = {k: v for k, v in raw.items() if k != "postbacks"}
    item = decode_struct(rest, kind, path, problems)
    return None if item is None else msgspec.structs.replace(item, postbacks=rules)


def _decode_spec(raw: Mapping[str, Any], problems: list[Problem]) -> ConfigSpec:
    """The document as a spec; what fails to decode is a problem and left out."""
    sections = {k: raw[k] for k, _ in _SECTIONS if k in raw}
    top = {k: v for k, v in raw.items() if k not in sections}
    spec = decode_struct(top, ConfigSpec, "", problems, _TABLES) or ConfigSpec()
    lists: dict[str, list[Any]] = {}
    for key, kind in _SECTIONS:
        items = sections.get(key, [])
        if not isinstance(items, list):
            problems.append(Problem(key, f"must be an array of tables ([[{key}]])"))
            items = []
        decoded = (
            _decode_item(item, kind, f"{key}[{i}]", problems) for i, item in enumerate(items)
        )
        lists[key] = [x for x in decoded if x is not None]
    return msgspec.structs.replace(spec, **lists)


def validate(
    raw: Mapping[str, Any], path: str | None = None
) -> tuple[Config | None, list[Problem]]:
    """Every problem in a decoded TOML document, and the config if there are no errors."""
    problems: list[Problem] = []
    spec = _decode_spec(raw, problems)
    return compile_config(spec, path, problems), problems


def read(path: str | Path) -> tuple[Config | None, list[Problem]]:
    """Parse and validate a file; TOML syntax errors are problems too."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem("", f"cannot read {path}: {exc}")]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem("", f"TOML syntax: {exc}")]
    return validate(raw, str(path))


def load(path: str | Path) -> Config:
    """The config ``serve`` runs on; raises ConfigError listing every error."""
    config, problems = read(path)
    if config is None:
        raise ConfigError(problems)
    for problem in problems:
        log.warning("config %s", problem)
    return config
