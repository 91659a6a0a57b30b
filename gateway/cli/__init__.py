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

from gateway import __version__, constants
from gateway.logs import LEVELS

__all__ = ("build_parser", "main", "port_number")

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


#: The parser's description, for people (the module docstring is for developers).
_DESCRIPTION = "A server-to-server postback gateway: clicks in, conversions in, postbacks out."
_EPILOG = "Run 'python -m gateway COMMAND --help' for a command's options."


def port_number(text: str) -> int:
    """A TCP port, 1-65535 (0 would pick a random one: never what an operator means)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (1-65535)")
    return value


def _version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"postback-gateway {__version__}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway", description=_DESCRIPTION, epilog=_EPILOG
    )
    _version(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description or help)
        _version(sub)
        return sub

    serve = command("serve", "run the gateway")
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config (default: the shipped example, which runs in dry-run mode)",
    )
    serve.add_argument(
        "--host", default=constants.DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=port_number,
        default=constants.DEFAULT_PORT,
        help="port to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--db",
        metavar="URL",
        help="the store: a SQLite path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        f" (default: ${constants.DB_ENV}, else [store] url, else ./{constants.DEFAULT_DB})",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving one port, supervised; more than 1 needs PostgreSQL "
        "(default: %(default)s)",
    )
    # a worker of ``--workers N``: SO_REUSEPORT, its share of the per-host limits
    serve.add_argument("--worker-process", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="least severe messages logged (default: %(default)s)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object a line (default: %(default)s)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request (default: off; it costs throughput)",
    )

    check = command(
        "check",
        "validate a config; exit 1 if invalid",
        "Validate a config: every problem at once, each with its path; exit 1 if invalid.",
    )
    check.add_argument("file", metavar="FILE", help="the TOML config to check")
    check.add_argument("--json", action="store_true", help="print the problems as one JSON object")

    render = command("render", "render one postback template")
    render.add_argument(
        "template", metavar="TEMPLATE", help="e.g. 'https://x.example/?c={externalid}'"
    )
    render.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a token value, e.g. --set externalid=abc or --set tName:zoneid=42",
    )
    render.add_argument(
        "--dialect",
        default="clickflare",
        choices=("clickflare", "binom"),
        help="token dialect (default: %(default)s)",
    )

    sources = command("sources", "the traffic-source catalog")
    sources.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sources_commands = sources.add_subparsers(dest="sources_command", metavar="SUBCOMMAND")
    show = sources_commands.add_parser(
        "show", help="one preset in full", description="One traffic-source preset in full."
    )
    show.add_argument("name", metavar="NAME", help="a preset name (python -m gateway sources)")
    # SUPPRESS: `sources --json show X` and `sources show X --json` both work.
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    show.add_argument("--campaign", metavar="ID", help="campaign id, to print its click URL")
    show.add_argument(
        "--base-url",
        metavar="URL",
        help="the gateway's public base URL, e.g. https://gw.example.com",
    )
    show.add_argument(
        "--config",
        metavar="FILE",
        help="build the click URL from this config's campaign and its traffic source",
    )
    classify = sources_commands.add_parser(
        "classify",
        help="judge an answer as the dispatcher does",
        description="Judge a network's answer as the dispatcher does.",
    )
    classify.add_argument("name", metavar="NAME", help="a preset name")
    classify.add_argument(
        "--status", type=int, required=True, metavar="CODE", help="the HTTP status"
    )
    classify.add_argument("--body", default="", metavar="TEXT", help="the answer's body")
    classify.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )

    test = command("test-postback", "render a rule, send it once, show the answer")
    test.add_argument("--config", metavar="FILE", help="TOML config (default: the shipped example)")
    test.add_argument("--source", metavar="NAME", help="traffic source name")
    test.add_argument("--campaign", metavar="ID", help="campaign id")
    test.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a token value, e.g. --set externalid=abc --set payout=2.5 (defaults: a fake "
        "externalid test-..., payout 1.00, status approved)",
    )
    test.add_argument(
        "--rule", metavar="N|NAME", help="the rule's index or name (default: the first that fires)"
    )
    test.add_argument("--json", action="store_true", help="print the result as JSON")
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
