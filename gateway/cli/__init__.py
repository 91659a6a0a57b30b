"""``python -m gateway``: one argparse front, each command a function elsewhere.

The parser is the contract's command line (spec/gateway.md); each handler
lives in the module that owns the work and is imported only when its command
runs, so ``render`` and ``check`` start fast and never pull in aiohttp.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gateway import constants

__all__ = ("build_parser", "main")

# command -> "module:function"; each takes the parsed namespace, returns an exit code.
_HANDLERS = {
    "serve": "gateway.cli.serve:run",
    "check": "gateway.cli.check:run",
    "render": "gateway.cli.render:run",
    "sources": "gateway.cli.sources:run",
    "test-postback": "gateway.cli.test_postback:run",
    "visit": "gateway.cli.visit:run",
    "geo": "gateway.cli.geo:run",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML config (default: the shipped example)")
    serve.add_argument("--host", default=constants.DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=constants.DEFAULT_PORT)
    serve.add_argument(
        "--db",
        help="the store: a SQLite path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        f" (default: ${constants.DB_ENV}, else [store] url, else ./{constants.DEFAULT_DB})",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving one port, supervised (more than 1 needs PostgreSQL)",
    )
    # a worker of ``--workers N``: SO_REUSEPORT, its share of the per-host limits
    serve.add_argument("--worker-process", action="store_true", help=argparse.SUPPRESS)

    check = commands.add_parser("check", help="validate a config; exit 1 if invalid")
    check.add_argument("file")

    render = commands.add_parser("render", help="render one postback template")
    render.add_argument("template")
    render.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a token value, e.g. --set externalid=abc or --set tName:zoneid=42",
    )
    render.add_argument("--dialect", default="clickflare", choices=("clickflare", "binom"))

    sources = commands.add_parser("sources", help="the traffic-source catalog")
    sources.add_argument("--json", action="store_true")
    sources_commands = sources.add_subparsers(dest="sources_command", metavar="SUBCOMMAND")
    show = sources_commands.add_parser("show", help="one preset in full")
    show.add_argument("name")
    # SUPPRESS: `sources --json show X` and `sources show X --json` both work.
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    show.add_argument("--campaign", help="campaign id, to print the click URL")
    show.add_argument("--base-url", help="the gateway's public base URL")
    classify = sources_commands.add_parser(
        "classify", help="judge an answer as the dispatcher does"
    )
    classify.add_argument("name")
    classify.add_argument("--status", type=int, required=True)
    classify.add_argument("--body", default="")
    classify.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    test = commands.add_parser("test-postback", help="render a rule, send it once, show the answer")
    test.add_argument("--config")
    test.add_argument("--source", help="traffic source name")
    test.add_argument("--campaign", help="campaign id")
    test.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a token value, e.g. --set externalid=abc --set payout=2.5 (defaults: a fake "
        "externalid test-..., payout 1.00, status approved)",
    )
    test.add_argument("--rule", help="the rule's index or name (default: the first that fires)")
    test.add_argument("--json", action="store_true")
    _visit_commands(commands)
    return parser


def _visit_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``visit`` and ``geo`` (issue 17: visit data)."""
    visit = commands.add_parser("visit", help="every visit token a click would record")
    visit.add_argument("--ip", required=True, help="the visitor's address (or the TCP peer)")
    visit.add_argument("--ua", default="", help="the User-Agent")
    visit.add_argument(
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header, e.g. --header 'Accept-Language: de'",
    )
    visit.add_argument("--config", help="TOML config ([server] trusted_proxies, [enrich])")
    visit.add_argument("--json", action="store_true")
    geo = commands.add_parser("geo", help="the IP data for the geo tokens")
    geo_commands = geo.add_subparsers(dest="geo_command", required=True, metavar="SUBCOMMAND")
    for name, text in (("install", "fetch and install the data"), ("show", "what is installed")):
        sub = geo_commands.add_parser(name, help=text)
        sub.add_argument("--dir", help="the geo folder (default: $GATEWAY_GEO_DIR or ~/.cache/…)")
        sub.add_argument("--json", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, _, function = _HANDLERS[args.command].partition(":")
    handler = getattr(importlib.import_module(module_name), function)
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
