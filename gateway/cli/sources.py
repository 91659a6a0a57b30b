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
    widest = max((len(p.click_macros.get("externalid", "")) for p in presets), default=0)
    for column in ("name", "network", "click id macro", "params", "answer", "click age"):
        if column == "click id macro":  # never folded: a split macro cannot be copied
            table.add_column(column, min_width=widest, no_wrap=True)
        else:
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
    console = _console_for(table)
    console.print(table)
    console.print(
        "* secret: redacted wherever a postback URL is shown. "
        "Details: python -m gateway sources show NAME"
    )
    return 0


#: ``--config`` without ``--base-url``: a local gateway, as ``serve`` starts one.
_LOCAL_BASE = "http://127.0.0.1:8080"


def _config_campaign_url(args: argparse.Namespace, preset: catalog.Preset) -> str | int:
    """The click URL built from the config's campaign and its real source, or an
    exit code (the reason printed) when the campaign cannot be used."""
    import difflib  # noqa: PLC0415 - only this path needs them

    from gateway.config import read  # noqa: PLC0415 - keeps the catalog commands light

    config, problems = read(args.config)
    if config is None:
        for problem in problems:
            if problem.level == "error":
                print(f"{args.config}: {problem}", file=sys.stderr)
        return 2
    campaign = config.campaigns.get(args.campaign)
    if campaign is None:
        close = difflib.get_close_matches(args.campaign, list(config.campaigns), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"error: {args.config} has no campaign {args.campaign!r}{hint}", file=sys.stderr)
        return 2
    source = campaign.source.spec
    if source.preset is not None and source.preset != preset.name:
        print(
            f"error: campaign {campaign.id!r} is for traffic source {source.name!r}, which "
            f"uses preset {source.preset!r}, not {preset.name!r}",
            file=sys.stderr,
        )
        return 2
    return catalog.campaign_url(
        preset,
        args.base_url or _LOCAL_BASE,
        campaign.id,
        click_id_param=source.click_id_param,
        variables=source.variables,
    )


def _console_for(table: Table) -> Console:
    """A console at least as wide as the table's narrowest form: on a narrow
    terminal the lines wrap there instead of rich cropping a cell (a macro)."""
    console = Console(markup=False, highlight=False)
    needed = Console(width=10_000).measure(table).minimum  # uncapped by the terminal
    if needed > console.width:
        console = Console(markup=False, highlight=False, width=needed)
    return console


def _macro_width(preset: catalog.Preset) -> int:
    """The longest macro: the value column is never narrower, so none is split."""
    return max((len(m) for m in preset.click_macros.values()), default=0)


def _show(args: argparse.Namespace) -> int:
    preset = catalog.get(args.name)
    config = getattr(args, "config", None)
    if config is not None and args.campaign is None:
        print("sources show: --config needs --campaign ID", file=sys.stderr)
        return 2
    if config is None and (args.campaign is None) != (args.base_url is None):
        print("sources show: --campaign and --base-url go together", file=sys.stderr)
        return 2
    data = preset_json(preset)
    if config is not None:
        url = _config_campaign_url(args, preset)
        if isinstance(url, int):
            return url
        data["campaign_url"] = url
    elif args.campaign is not None:
        data["campaign_url"] = catalog.campaign_url(preset, args.base_url, args.campaign)
    if args.json:
        _print_json(data)
        return 0
    table = Table(title=f"{preset.title} ({preset.name})", show_header=False)
    table.add_column("field", style="bold", overflow="fold")
    table.add_column("value", overflow="fold", min_width=_macro_width(preset))
    for p in preset.params:
        secret = " (secret)" if p.secret else ""
        table.add_row(f"param <{p.name}>", f"{p.description}{secret}")
    for name, macro in preset.click_macros.items():
        table.add_row(f"click {name}", macro)
    table.add_row("success", preset.success)
    table.add_row("click age", _age(preset.max_click_age))
    for label, text in (("currency", preset.currency), ("notes", preset.notes)):
        if text:
            table.add_row(label, text)
    table.add_row("sources", "\n".join(preset.docs))
    _console_for(table).print(table)
    # URLs outside the table, each on a line of its own: copied whole, never folded.
    print(f"postback ({preset.method}):")
    print(preset.postback)
    if "campaign_url" in data:
        print("campaign URL (paste into the network's panel):")
        print(data["campaign_url"])
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
