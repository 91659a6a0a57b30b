"""``python -m gateway render``: try a template from the shell."""

from __future__ import annotations

import argparse
import sys

from _fastrender import TemplateError, compile_template
from _fastrender._catalog import ARG_TOKENS, lookup

__all__ = ("parse_assignments", "run")


def parse_assignments(items: list[str], dialect: str) -> dict[str, object]:
    """``NAME=VALUE`` pairs keyed by canonical token name (aliases accepted)."""
    values: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE")
        base, colon, arg = name.partition(":")
        if colon and base.lower() in ARG_TOKENS and arg:
            values[f"var:{arg}"] = value
            continue
        key = lookup(name, dialect)
        if key is None:
            raise ValueError(f"--set {item!r}: unknown token {{{name}}}")
        values[key] = value
    return values


def run(args: argparse.Namespace) -> int:
    try:
        plan = compile_template(args.template, dialect=args.dialect)
        values = parse_assignments(args.values, args.dialect)
        print(plan.render(values))
    except TemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
