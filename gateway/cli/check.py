"""``python -m gateway check FILE``: every problem in a config, each with its path.

Errors (the config would be refused) and warnings (it runs, but a postback
is probably wrong: network macros left from their docs, deprecated tokens,
``|raw``, a traffic-source postback without ``{externalid}``) are printed one
per line, then, for a valid file, which answer rule judges each postback
rule (``judged: PATH (NAME) -> HOST: RULE (why)``); the exit code is 0 when
there are no errors, 1 otherwise.  ``--json`` prints
one object instead: ``{"file", "valid", "errors", "warnings"}``, each problem
``{"path", "message"}``.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from gateway.config import read
from gateway.enrich.factory import describe

__all__ = ("run",)


def run(args: argparse.Namespace) -> int:
    config, problems = read(args.file)
    errors = [p for p in problems if p.level == "error"]
    if getattr(args, "json", False):
        report = {
            "file": str(args.file),
            "valid": config is not None,
            "errors": [{"path": p.path, "message": p.message} for p in errors],
            "warnings": [
                {"path": p.path, "message": p.message} for p in problems if p.level != "error"
            ],
        }
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
        return 0 if config is not None else 1
    for problem in sorted(problems, key=lambda p: p.level != "error"):
        print(problem, file=sys.stdout)
    warnings = len(problems) - len(errors)
    if config is None:
        print(f"{args.file}: invalid ({len(errors)} error(s), {warnings} warning(s))")
        return 1
    for path, rule in config.judged:  # which answer rule judges each postback
        print(f"judged: {path} ({rule.name}) -> {rule.host}: {rule.answer_why}")
    for note in describe(config.spec.enrich):  # the visit data it would run on
        print(f"enrich: {note}")
    print(
        f"{args.file}: ok ({len(config.sources)} traffic source(s), "
        f"{len(config.campaigns)} campaign(s), {warnings} warning(s))"
    )
    return 0
