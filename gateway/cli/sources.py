"""``python -m gateway sources``: browse the catalog and judge an answer.

``sources`` lists the presets, ``sources show NAME`` prints one in full (and,
with ``--campaign`` and ``--base-url``, the click URL to paste into the
network's panel), ``sources classify NAME`` prints the verdict the
dispatcher would give an answer.  ``--json`` output is the contract
(spec/gateway.md); the tables are for people.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from gateway.sources import answers, catalog

__all__ = ("preset_json", "run")


def preset_json(preset: catalog.Preset) -> dict[str, Any]:
    """One preset as ``sources show --json`` prints it."""
    return {
        "name": preset.name,
        "title": preset.title,
        "postback": preset.postback,
        "method": preset.method,
        "params": [
            {"name": p.name, "secret": p.secret, "description": p.description}
            for p in preset.params
        ],
        "click_macros": dict(preset.click_macros),
        "success": preset.success,
        "rule": dict(preset.rule),
        "max_click_age": preset.max_click_age,
        "currency": preset.currency,
        "notes": preset.notes,
        "docs": list(preset.docs),
        "examples": [msgspec.to_builtins(e) for e in preset.examples],
    }


def _print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds} s"


def _list(args: argparse.Namespace) -> int:
    presets = [catalog.get(name) for name in catalog.names()]
    if args.json:
        _print_json([preset_json(p) for p in presets])
        return 0
    table = Table(title=f"Traffic-source presets ({len(presets)})")
    for column in ("name", "network", "click id macro", "params", "answer", "click age"):
        table.add_column(column, overflow="fold")
    for p in presets:
        params = ", ".join(f"{x.name}*" if x.secret else x.name for x in p.params)
        answer = "status + body" if p.rule else "status"
        table.add_row(
            p.name,
            p.title,
            p.click_macros.get("externalid", ""),
            params or "-",
            answer,
            _age(p.max_click_age),
        )
    console = Console(markup=False, highlight=False)
    console.print(table)
    console.print(
        "* secret: redacted wherever a postback URL is shown. "
        "Details: python -m gateway sources show NAME"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    preset = catalog.get(args.name)
    if (args.campaign is None) != (args.base_url is None):
        print("sources show: --campaign and --base-url go together", file=sys.stderr)
        return 2
    data = preset_json(preset)
    if args.campaign is not None:
        data["campaign_url"] = catalog.campaign_url(preset, args.base_url, args.campaign)
    if args.json:
        _print_json(data)
        return 0
    table = Table(title=f"{preset.title} ({preset.name})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("postback", f"{preset.method} {preset.postback}")
    for p in preset.params:
        secret = " (secret)" if p.secret else ""
        table.add_row(f"param <{p.name}>", f"{p.description}{secret}")
    for name, macro in preset.click_macros.items():
        table.add_row(f"click {name}", macro)
    if "campaign_url" in data:
        table.add_row("campaign URL", data["campaign_url"])
    table.add_row("success", preset.success)
    table.add_row("click age", _age(preset.max_click_age))
    for label, text in (("currency", preset.currency), ("notes", preset.notes)):
        if text:
            table.add_row(label, text)
    table.add_row("sources", "\n".join(preset.docs))
    Console(markup=False, highlight=False).print(table)
    return 0


def _classify(args: argparse.Namespace) -> int:
    verdict = answers.classify(args.name, args.status, args.body)
    if args.json:
        _print_json({"outcome": verdict.outcome, "reason": verdict.reason})
    else:
        print(f"{verdict.outcome}: {verdict.reason}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point for ``gateway.cli``; 1 for an unknown preset, 2 for bad usage."""
    command = getattr(args, "sources_command", None)
    try:
        if command == "show":
            return _show(args)
        if command == "classify":
            return _classify(args)
        return _list(args)
    except catalog.UnknownPreset as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
