"""``python -m bench``: argparse in front of functions that do the work.

``run`` load-tests a gateway end to end (bench/runner.py), ``config`` prints
the config a ``run --url`` target must serve, ``render`` runs the render
micro-benchmarks (bench/render.py).  Progress and the table go to the
terminal; with ``--json`` the last line of stdout is one JSON object.
Exit status: 0 all postbacks correct, 1 something lost, duplicated or wrong,
2 the run could not be made.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from gateway import __version__

__all__ = ("build_parser", "main")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version", action="version", version=f"postback-gateway bench {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="load-test a gateway and check every postback")
    run.add_argument("--url", help="a running gateway (default: start one with a generated config)")
    run.add_argument("--sources", type=int, default=4, help="traffic sources and campaigns")
    run.add_argument("--clicks", type=int, default=500, help="clicks registered before conversions")
    run.add_argument(
        "--clicks-via",
        choices=("get", "api"),
        default="get",
        help="GET /click/{campaign} (one each) or POST /api/clicks (100 a request)",
    )
    stop = run.add_mutually_exclusive_group()
    stop.add_argument("--count", type=int, help="conversions to send")
    stop.add_argument("--duration", type=float, help="seconds to send conversions for")
    run.add_argument(
        "--rate", type=float, help="conversions per second (default: as fast as possible)"
    )
    run.add_argument("--concurrency", type=int, default=32)
    run.add_argument("--dup-share", type=float, default=0.1, help="conversions sent twice")
    run.add_argument(
        "--update-share", type=float, default=0.2, help="conversions sent pending, then approved"
    )
    run.add_argument("--sink-port", type=int, default=0, help="fixed sink port (for --url)")
    run.add_argument("--sink-latency", type=float, default=0.0, help="seconds per answer")
    run.add_argument("--sink-fail-rate", type=float, default=0.0, help="share answered 500/429")
    run.add_argument(
        "--sink-disconnect-rate",
        type=float,
        default=0.0,
        help="share of connections dropped unanswered",
    )
    run.add_argument("--sink-drop-rate", type=float, default=0.0, help=argparse.SUPPRESS)
    run.add_argument("--sink-alter-rate", type=float, default=0.0, help=argparse.SUPPRESS)
    run.add_argument("--drain-timeout", type=float, default=30.0)
    run.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip the bare aiohttp+uvloop ceiling run",
    )
    run.add_argument(
        "--rounds", type=int, default=3, help="gateway and ceilings in turn, this many times"
    )
    run.add_argument(
        "--tls", action="store_true", help="postbacks over HTTPS (the sink's throw-away CA)"
    )
    run.add_argument("--seed", type=int, default=1)
    run.add_argument(
        "--db",
        help="the gateway's store, as serve --db (default: a fresh SQLite file in the workdir)",
    )
    run.add_argument("--workers", type=int, default=1, help="serve --workers (PostgreSQL for >1)")
    run.add_argument("--workdir", help="keep the config, database and gateway log here")
    run.add_argument("--json", action="store_true", help="last line: one JSON object")

    config = commands.add_parser("config", help="print the generated gateway config")
    config.add_argument("--sources", type=int, default=4)
    config.add_argument("--sink-port", type=int, required=True)

    # `render` hands its whole argv to bench/render.py (see main): listed here for --help.
    commands.add_parser("render", help="render micro-benchmarks (bench/render.py)", add_help=False)
    commands.add_parser("enrich", help="visit enrichment's cost (bench/enrich.py)", add_help=False)
    return parser


def _run(args: argparse.Namespace) -> int:
    from bench.report import print_summary  # noqa: PLC0415 - `render` and `config` stay light
    from bench.runner import RunOptions, run  # noqa: PLC0415

    if args.count is None and args.duration is None:
        args.count = 2000
    fields = {k: v for k, v in vars(args).items() if k in RunOptions.__struct_fields__}
    options = RunOptions(**fields)
    console = Console(stderr=True)
    try:
        summary, log_tail = _loop_run(run(options, console))
    except (RuntimeError, OSError) as exc:
        console.print(f"[bold red]bench run failed:[/] {exc}")
        return 2
    print_summary(summary, Console(soft_wrap=True, width=120))
    if not summary.ok and log_tail:
        console.print("[dim]gateway log (tail):[/]\n" + log_tail, markup=False, highlight=False)
    if args.json:
        print(summary.to_json(), flush=True)
    if not summary.ok:
        return 1
    return 0 if summary.conversions_2xx else 2


def _loop_run(coro: Any) -> Any:
    """The tester on uvloop where installed, like the servers it measures."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _config(args: argparse.Namespace) -> int:
    from bench.configgen import render_config  # noqa: PLC0415
    from bench.expect import make_sources  # noqa: PLC0415

    print(render_config(make_sources(args.sources, f"http://127.0.0.1:{args.sink_port}")))
    return 0


def _render(argv: Sequence[str]) -> int:
    module = importlib.import_module("bench.render")  # imported only when asked: it is heavier
    return int(module.main(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["render"]:
        return _render(argv[1:])
    if argv[:1] == ["enrich"]:  # its own argv, like render
        return int(importlib.import_module("bench.enrich").main(argv[1:]))
    args = build_parser().parse_args(argv)
    handler = {"run": _run, "config": _config}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
