"""``python -m gateway test-postback``: send one rule's postback, print what came back."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from gateway.config import default_config_path, read
from gateway.refusal import BadInput
from gateway.testpostback import TestRequest, make_plan, send

__all__ = ("run",)


def _text(result: Mapping[str, Any]) -> str:
    where = f"campaign {result['campaign']}" if result["campaign"] else f"source {result['source']}"
    if result["status_code"] is not None:
        answer = f"HTTP {result['status_code']} in {result['latency_ms']:.1f} ms"
    else:
        answer = f"no answer after {result['latency_ms']:.1f} ms: {result['error']}"
    lines = [
        f"rule     {result['rule']} ({where}; answer rule: {result['answer_rule_why']})",
        f"request  {result['method']} {result['url']}",
    ]
    if result["final_url"]:
        lines.append(f"ended at {result['final_url']}")
    lines.append(f"answer   {answer}")
    if result["body_excerpt"]:
        excerpt = " ".join(result["body_excerpt"].split())
        lines.append(f"body     {excerpt[:200]}")
    lines.append(f"outcome  {result['outcome']}: {result['reason']}")
    if not result["would_fire"]:
        lines.append(
            "note     this rule would not fire for these values (status, event or required tokens)"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``test-postback``: exit 0 delivered, 1 rejected or retry, 2 bad config or input."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    path = Path(args.config) if args.config else default_config_path()
    config, problems = read(path)
    if config is None:
        for problem in problems:
            if problem.level == "error":
                print(f"{path}: {problem}", file=sys.stderr)
        return 2
    values: dict[str, str] = {}
    for item in args.values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"error: --set {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        values[name] = value
    rule: int | str | None = getattr(args, "rule", None)
    if isinstance(rule, str) and rule.isdigit():
        rule = int(rule)
    request = TestRequest(source=args.source, campaign=args.campaign, rule=rule, values=values)
    try:
        plan = make_plan(config, request)
    except BadInput as exc:
        print(f"error: {exc.field}: {exc.error}", file=sys.stderr)
        return 2
    result = asyncio.run(send(config, plan))
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        print(_text(result))
    return 0 if result["outcome"] == "delivered" else 1
