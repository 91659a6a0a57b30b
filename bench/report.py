"""Turn a run's raw measurements into the summary: a table for people, JSON for machines.

Percentiles use the nearest-rank method on the sorted sample (no
interpolation), so ``max`` and ``p100`` agree and tiny samples stay honest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

__all__ = ("Summary", "percentile", "print_summary")


def percentile(sample: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``sample`` (seconds in, seconds out); 0 when empty."""
    if not sample:
        return 0.0
    ordered = sorted(sample)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Summary(msgspec.Struct, kw_only=True):
    """Everything the run reports; ``--json`` prints it as one object."""

    machine: str
    target: str
    sources: int
    concurrency: int
    rate: float | None
    clicks: int
    click_rps: float
    conversions_sent: int
    conversions_2xx: int
    duplicates_sent: int  # exact repeats answered 2xx: must fire nothing
    updates_sent: int  # pending -> approved answered 2xx: must fire once more
    ingest_errors: int
    ingest_rps: float
    ingest_p50_ms: float
    ingest_p90_ms: float
    ingest_p99_ms: float
    ingest_max_ms: float
    send_lag_p99_ms: float  # fixed rate: the load generator's own lateness (0 at max rate)
    ceiling_rps: float | None
    ceiling_p99_ms: float | None
    ingest_ratio: float | None
    postbacks_expected: int
    postbacks_received: int
    postbacks_per_s: float
    e2e_p50_ms: float
    e2e_p90_ms: float
    e2e_p99_ms: float
    e2e_max_ms: float
    retries: int  # attempts the sink refused or dropped (each one retried)
    lost: int
    duplicated: int
    wrong: int
    drain_s: float
    sink_fail_rate: float
    sink_latency_ms: float
    examples: dict[str, list[str]] = {}
    scheme: str = "http"  # how postbacks went out (--tls: https)
    rounds: int = 1
    #: The gateway's CPU (user + system, all threads, /proc) per conversion, round medians.
    gateway_cpu_us: float | None = None
    gateway_cpu_us_rounds: list[float] = []
    #: The relay ceiling (aiohttp in, one aiohttp GET out per conversion, nothing stored).
    relay_rps: float | None = None
    relay_ratio: float | None = None  # median of the per-round gateway / relay ratios
    relay_ratios: list[float] = []
    bare_ratio: float | None = None  # median of the per-round gateway / bare-ceiling ratios

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.wrong == 0 and self.duplicated == 0

    def to_json(self) -> str:
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["ok"] = self.ok
        return msgspec.json.encode(data).decode()


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def latency_fields(prefix: str, sample: Sequence[float]) -> dict[str, float]:
    """``{prefix}_p50_ms`` ... ``{prefix}_max_ms`` from seconds."""
    out = {f"{prefix}_p{p}_ms": ms(percentile(sample, p)) for p in (50, 90, 99)}
    out[f"{prefix}_max_ms"] = ms(max(sample, default=0.0))
    return out


def print_summary(summary: Summary, console: Console) -> None:
    """The human table: ingest, ceiling and ratio, delivery, correctness."""
    table = Table(title=f"bench run: {summary.target} on {summary.machine}", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("note")
    rate = f"{summary.rate:g}/s" if summary.rate else "max"
    table.add_row("clicks registered", f"{summary.clicks}", f"{summary.click_rps:,.0f}/s")
    table.add_row(
        "conversions sent",
        f"{summary.conversions_sent}",
        f"rate {rate}, concurrency {summary.concurrency}, {summary.ingest_errors} errors",
    )
    table.add_row(
        "  of which dedup checks",
        f"{summary.duplicates_sent + summary.updates_sent}",
        f"{summary.duplicates_sent} duplicates, {summary.updates_sent} status changes",
    )
    table.add_row(
        "ingest",
        f"{summary.ingest_rps:,.0f}/s",
        f"p50 {summary.ingest_p50_ms} ms, p90 {summary.ingest_p90_ms} ms, "
        f"p99 {summary.ingest_p99_ms} ms, max {summary.ingest_max_ms} ms",
    )
    if summary.rate:
        table.add_row(
            "  generator lag",
            f"p99 {summary.send_lag_p99_ms} ms",
            "how late requests left the tester (counted in latency)",
        )
    if summary.ceiling_rps is not None and summary.ingest_ratio is not None:
        table.add_row(
            "ceiling (bare aiohttp+uvloop)",
            f"{summary.ceiling_rps:,.0f}/s",
            f"p99 {summary.ceiling_p99_ms} ms",
        )
        note = "vs. best" if not summary.rate else "share of the ceiling used at a fixed rate"
        if summary.bare_ratio is not None:
            note = f"median of {summary.rounds} per-round ratios"
        table.add_row(
            "ingest / ceiling",
            f"{summary.bare_ratio if summary.bare_ratio is not None else summary.ingest_ratio:.2f}",
            note,
        )
    if summary.relay_rps is not None and summary.relay_ratio is not None:
        table.add_row(
            f"relay ({summary.scheme} out)",
            f"{summary.relay_rps:,.0f}/s",
            "aiohttp in, one aiohttp GET to the sink out, nothing stored",
        )
        rounds = ", ".join(f"{v:.2f}" for v in summary.relay_ratios)
        table.add_row("ingest / relay", f"{summary.relay_ratio:.2f}", f"rounds: {rounds}")
    if summary.gateway_cpu_us is not None:
        rounds = ", ".join(f"{v:.0f}" for v in summary.gateway_cpu_us_rounds)
        table.add_row(
            "gateway CPU / conversion",
            f"{summary.gateway_cpu_us:.0f} us",
            f"all threads, /proc, intake and delivery; rounds: {rounds}",
        )
    table.add_row(
        "postbacks",
        f"{summary.postbacks_received}/{summary.postbacks_expected}",
        f"{summary.postbacks_per_s:,.0f}/s, drain {summary.drain_s:.1f} s",
    )
    table.add_row(
        "end to end",
        f"p50 {summary.e2e_p50_ms} ms",
        f"p90 {summary.e2e_p90_ms} ms, p99 {summary.e2e_p99_ms} ms, max {summary.e2e_max_ms} ms",
    )
    table.add_row(
        "retries (sink refused)",
        f"{summary.retries}",
        f"fail rate {summary.sink_fail_rate:g}, latency {summary.sink_latency_ms:g} ms",
    )
    style = "green" if summary.ok else "bold red"
    for name in ("lost", "duplicated", "wrong"):
        value = getattr(summary, name)
        table.add_row(name, f"[{style if value else 'green'}]{value}[/]", "")
    console.print(table)
    for kind, urls in summary.examples.items():
        for url in urls:
            console.print(f"[red]{kind}[/]: {url}", soft_wrap=True)
