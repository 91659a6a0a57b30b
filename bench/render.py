"""Render micro-benchmarks: ``_fastrender`` against what users would write instead.

Every contender renders the whole corpus (bench/corpus.py) once per call and
returns the URLs, so one list comparison checks its output.  The pytest-benchmark
suite (bench/test_render.py) times the same contenders; ``main`` is a quick
timeit run for ``python -m bench render`` that prints ns per URL and the ratio
to the ``str.format_map`` + ``urllib.parse.quote`` baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import string
import sys
import timeit
import urllib.parse
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Final

from bench.corpus import CASES, SAFE, TOKEN, all_rows

__all__ = (
    "BASELINE",
    "CONTENDERS",
    "Contender",
    "Result",
    "expected",
    "main",
    "measure",
)

logger = logging.getLogger(__name__)

#: A prepared contender: renders the whole corpus, returns its URLs in corpus order.
Runner = Callable[[], list[str]]

#: The name of the contender the ratios are taken against.
BASELINE: Final = "format_map + quote"

# Targets from the issue (2-core machine): render >= 25x the baseline,
# render_many <= 200 ns per URL.
TARGET_RATIO: Final = 25.0
TARGET_MANY_NS: Final = 200.0


def expected() -> list[str]:
    """The corpus URLs, in order, as the corpus oracle computed them."""
    return [url for case in CASES for url in case.expected]


# ----------------------------------------------------------------------------- _fastrender


def _per_case(calls: Sequence[tuple[Callable[[Any], str], Sequence[Any]]]) -> Runner:
    """Map each case's row through its prepared callable: the same loop for everyone."""

    def run() -> list[str]:
        out: list[str] = []
        for call, rows in calls:
            out += map(call, rows)
        return out

    return run


def fastrender_render(module: ModuleType | None) -> Runner:
    assert module is not None
    return _per_case(
        [(module.compile_template(case.template).render, list(case.rows)) for case in CASES]
    )


def fastrender_render_many(module: ModuleType | None) -> Runner:
    assert module is not None
    batches = [
        (module.compile_template(case.template).render_many, list(case.rows)) for case in CASES
    ]

    def run() -> list[str]:
        out: list[str] = []
        for render_many, rows in batches:
            out += render_many(rows)
        return out

    return run


# ----------------------------------------------------------------------------- baselines


quote: Final = urllib.parse.quote


def _quote(value: object) -> str:
    return quote(str(value), safe=SAFE)


class QuotingDict(dict[str, object]):
    """Quotes on lookup, so ``format_map`` only encodes the values it uses."""

    __slots__ = ()

    def __getitem__(self, key: str) -> str:
        return quote(str(dict.__getitem__(self, key)), safe=SAFE)

    def __missing__(self, key: str) -> str:
        return ""


def _field(key: str) -> str:
    # str.format reads "." as attribute access and ":" as a format spec.
    return key.replace(".", "_").replace(":", "_")


def _format_template(template: str) -> str:
    return TOKEN.sub(lambda m: "{" + _field(m[1]) + "}", template)


def format_map_lazy(_module: ModuleType | None = None) -> Runner:
    return _per_case(
        [
            (
                _format_template(case.template).format_map,
                [QuotingDict({_field(k): v for k, v in row.items()}) for row in case.rows],
            )
            for case in CASES
        ]
    )


def format_map_eager(_module: ModuleType | None = None) -> Runner:
    def eager(format_map: Callable[[dict[str, str]], str]) -> Callable[[Any], str]:
        def call(row: Any) -> str:
            return format_map({key: _quote(value) for key, value in row.items()})

        return call

    return _per_case(
        [
            (
                eager(_format_template(case.template).format_map),
                [{_field(k): v for k, v in row.items()} for row in case.rows],
            )
            for case in CASES
        ]
    )


def re_sub_quote(_module: ModuleType | None = None) -> Runner:
    def substitute(template: str) -> Callable[[Any], str]:
        sub = TOKEN.sub

        def call(row: Any) -> str:
            return sub(lambda m: _quote(row.get(m[1], "")), template)

        return call

    return _per_case([(substitute(case.template), list(case.rows)) for case in CASES])


class _DottedTemplate(string.Template):
    braceidpattern = r"[a-z][a-z0-9_.]*(?::[A-Za-z0-9_.\-]+)?"


def string_template(_module: ModuleType | None = None) -> Runner:
    return _per_case(
        [
            (
                _DottedTemplate(TOKEN.sub(lambda m: "${" + m[1] + "}", case.template)).substitute,
                [QuotingDict(row) for row in case.rows],
            )
            for case in CASES
        ]
    )


def str_replace(_module: ModuleType | None = None) -> Runner:
    def replacer(template: str) -> Callable[[Any], str]:
        def call(row: Any) -> str:
            text = template
            for key, value in row.items():
                text = text.replace("{" + key + "}", _quote(value))
            return text

        return call

    return _per_case([(replacer(case.template), list(case.rows)) for case in CASES])


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class Contender:
    """A named way to render the corpus; ``twin`` says which _fastrender module it needs."""

    name: str
    prepare: Callable[[ModuleType | None], Runner]
    twin: str | None = None  # "c", "py" or None for a baseline


CONTENDERS: Final[tuple[Contender, ...]] = (
    Contender("fastrender c render", fastrender_render, "c"),
    Contender("fastrender c render_many", fastrender_render_many, "c"),
    Contender("fastrender py render", fastrender_render, "py"),
    Contender("fastrender py render_many", fastrender_render_many, "py"),
    Contender(BASELINE, format_map_lazy),
    Contender("format_map, eager quote", format_map_eager),
    Contender("re.sub + quote", re_sub_quote),
    Contender("string.Template + quote", string_template),
    Contender("str.replace loop + quote", str_replace),
)


@dataclasses.dataclass(frozen=True)
class Result:
    name: str
    ns_per_url: float
    vs_baseline: float  # baseline time / this time: higher is faster


def _module(twin: str) -> ModuleType | None:
    try:
        if twin == "c":
            from _fastrender import _plan_c  # noqa: PLC0415 - optional: absent when not built

            return _plan_c
        from _fastrender import _plan_py  # noqa: PLC0415 - imported next to its twin

        return _plan_py
    except ImportError:
        return None


def measure(
    names: Sequence[str] | None = None, *, seconds: float = 0.2, repeat: int = 5
) -> list[Result]:
    """Check every contender's output, then time it: best of ``repeat`` runs of ~``seconds``."""
    want = expected()
    urls = all_rows()
    timings: dict[str, float] = {}
    for contender in CONTENDERS:
        if names and contender.name not in names and contender.name != BASELINE:
            continue
        module = _module(contender.twin) if contender.twin else None
        if contender.twin and module is None:
            logger.warning(
                "%s: _fastrender.%s not importable, skipped", contender.name, contender.twin
            )
            continue
        run = contender.prepare(module)
        got = run()
        if got != want:
            raise AssertionError(
                f"{contender.name}: wrong output, e.g. {_first_difference(got, want)}"
            )
        timer = timeit.Timer(run)
        number, _ = timer.autorange()
        number = max(1, int(number * seconds / 0.2))
        best = min(timer.repeat(repeat=repeat, number=number)) / number
        timings[contender.name] = best / urls * 1e9
    base = timings[BASELINE]
    return [Result(name, ns, base / ns) for name, ns in timings.items()]


def _first_difference(got: list[str], want: list[str]) -> str:
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"URL {index}: {a!r} != {b!r}"
    return f"{len(got)} URLs, expected {len(want)}"


def _print_table(results: list[Result]) -> None:
    from rich.console import Console  # noqa: PLC0415 - only the human output needs rich
    from rich.table import Table  # noqa: PLC0415 - only the human output needs rich

    table = Table(title=f"Render: {len(CASES)} postback templates, {all_rows()} URLs per pass")
    table.add_column("contender")
    table.add_column("ns/URL", justify="right")
    table.add_column("vs format_map", justify="right")
    for result in sorted(results, key=lambda r: r.ns_per_url):
        table.add_row(result.name, f"{result.ns_per_url:,.0f}", f"{result.vs_baseline:.1f}x")
    Console().print(table)


def check_targets(results: list[Result]) -> list[str]:
    """The issue's targets that these results miss (empty when all are met)."""
    by_name = {result.name: result for result in results}
    missed = []
    render = by_name.get("fastrender c render")
    if render is not None and render.vs_baseline < TARGET_RATIO:
        missed.append(f"c render is {render.vs_baseline:.1f}x the baseline, target {TARGET_RATIO}x")
    many = by_name.get("fastrender c render_many")
    if many is not None and many.ns_per_url > TARGET_MANY_NS:
        missed.append(f"c render_many takes {many.ns_per_url:.0f} ns/URL, target {TARGET_MANY_NS}")
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench render``: time the contenders and print a table (or JSON lines)."""
    parser = argparse.ArgumentParser(prog="python -m bench render", description=__doc__)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--seconds", type=float, default=0.2, help="time per repeat (default 0.2)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats, best kept (default 5)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="a contender to run (repeatable)"
    )
    parser.add_argument(
        "--check-targets", action="store_true", help="exit 1 if the issue's targets are missed"
    )
    args = parser.parse_args(argv)
    try:
        results = measure(args.only, seconds=args.seconds, repeat=args.repeat)
    except AssertionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        for result in results:
            print(json.dumps({"benchmark": "render", **dataclasses.asdict(result)}))
    else:
        _print_table(results)
    missed = check_targets(results) if args.check_targets else []
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
