"""One ``bench run``: start the processes, send the load, drain, check, measure the ceiling.

Order matters for honest numbers: the sink and the gateway run while the
load runs (delivery competes with intake, as in production); the ceiling
runs afterwards, alone, with the same requests and concurrency.  Every phase
is bounded: the load by count or duration, the drain by ``drain_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import expect
from bench.configgen import render_config
from bench.load import LoadResult, Outcome, Request, run_load
from bench.procs import Child, cpu_seconds, spawn_gateway, spawn_server
from bench.report import Summary, latency_fields, ms, percentile
from bench.sink import Records
from bench.tlsfiles import TlsFiles, make_tls_files

__all__ = ("RunOptions", "machine", "run")


class RunOptions(msgspec.Struct, kw_only=True):
    url: str | None = None  # a gateway already running (with a config from `bench config`)
    sources: int = 4
    clicks: int = 500
    clicks_via: str = "get"  # get: GET /click/{campaign}; api: POST /api/clicks, 100 a request
    count: int | None = None
    duration: float | None = None
    rate: float | None = None
    concurrency: int = 32
    dup_share: float = 0.1
    update_share: float = 0.2
    sink_port: int = 0
    sink_latency: float = 0.0
    sink_fail_rate: float = 0.0
    sink_disconnect_rate: float = 0.0
    sink_drop_rate: float = 0.0  # test only: the sink lies
    sink_alter_rate: float = 0.0  # test only: the sink lies
    drain_timeout: float = 30.0
    ceiling: bool = True
    rounds: int = 3  # gateway and ceilings in turn, this many times
    tls: bool = False  # postbacks over HTTPS to the sink's TLS port (a throw-away CA)
    seed: int = 1
    workdir: str | None = None


class ListSource:
    """Requests from a list, in order (clicks, and the ceiling's replay)."""

    def __init__(self, requests: list[Request]) -> None:
        self.requests, self.index, self.outcomes = requests, 0, []  # type: ignore[var-annotated]

    async def next_request(self) -> Request | None:
        if self.index >= len(self.requests):
            return None
        self.index += 1
        return self.requests[self.index - 1]

    def answered(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def machine() -> str:
    """Which machine the absolute numbers come from."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def _sink_args(o: RunOptions, tls: TlsFiles | None) -> list[str]:
    extra = ["--cert", tls.cert, "--key", tls.key] if tls is not None else []
    return [
        *extra,
        "--latency",
        str(o.sink_latency),
        "--fail-rate",
        str(o.sink_fail_rate),
        "--disconnect-rate",
        str(o.sink_disconnect_rate),
        "--drop-rate",
        str(o.sink_drop_rate),
        "--alter-rate",
        str(o.sink_alter_rate),
        "--seed",
        str(o.seed),
    ]


@contextlib.contextmanager
def _workdir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            yield Path(tmp)


async def _get_json(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as answer:
        answer.raise_for_status()
        return await answer.read()


async def _drain(
    sink: Child,
    expected: int,
    timeout: float,
    progress: Progress,
    task: object,
    *,
    settle: float = 0.5,
) -> float:
    """Wait until the sink holds ``expected`` records (or the timeout); return seconds waited."""
    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while True:
            count = msgspec.json.decode(await _get_json(session, sink.url + "/_count"))
            progress.update(task, completed=count, total=expected)  # type: ignore[arg-type]
            waited = time.perf_counter() - start
            if count >= expected or waited >= timeout:
                break
            await asyncio.sleep(0.02)
        # a short settle, so a late duplicate is caught too
        await asyncio.sleep(settle)
        return waited


async def _records(sink: Child) -> Records:
    async with aiohttp.ClientSession() as session:
        return msgspec.json.decode(await _get_json(session, sink.url + "/_records"), type=Records)


async def _watch(
    sink: Child,
    progress: Progress,
    task: object,
    stop: asyncio.Event,
    model: expect.ConversionSource,
) -> None:
    """Live postback count while the load runs."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError):
                count = msgspec.json.decode(await _get_json(session, sink.url + "/_count"))
                total = model.expecting
                progress.update(task, completed=count, total=total)  # type: ignore[arg-type]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


async def _phase(
    progress: Progress,
    name: str,
    total: int | None,
    base_url: str,
    source: object,
    o: RunOptions,
    **kwargs: object,
) -> LoadResult:
    task = progress.add_task(name, total=total, note="")
    done = 0

    def tick(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        if done % 50 == 0:
            progress.update(task, completed=done)

    result = await run_load(
        base_url,
        source,
        concurrency=o.concurrency,  # type: ignore[arg-type]
        on_answer=tick,
        **kwargs,
    )  # type: ignore[arg-type]
    progress.update(task, completed=done, total=done, note=f"{result.rps:,.0f}/s")
    return result


async def run(o: RunOptions, console: Console) -> tuple[Summary, str]:
    """The whole run; returns the summary and the gateway's log tail (for failures)."""
    rng = random.Random(o.seed)
    with _workdir(o.workdir) as work, _progress(console) as progress:
        tls = make_tls_files(work / "tls") if o.tls else None
        sink = spawn_server("sink", "bench.sink", _sink_args(o, tls), port=o.sink_port)
        out_base = sink.tls_url if tls is not None and sink.tls_url else sink.url
        gateway: Child | None = None
        ceilings: dict[str, Child] = {}
        log_path = work / "gateway.log"
        try:
            sources = expect.make_sources(o.sources, out_base)
            config = render_config(sources, ca_file=tls.ca if tls else None)
            (work / "bench.toml").write_text(config, "utf-8")
            if o.url is None:
                gateway = spawn_gateway(
                    str(work / "bench.toml"), str(work / "gateway.sqlite"), str(log_path)
                )
                base_url = gateway.url
            else:
                base_url = o.url.rstrip("/")
            if o.ceiling:  # started now, idle until their rounds: every round sees the same box
                relay_args = ["--relay", f"{out_base}/_relay"]
                if tls is not None:
                    relay_args += ["--ca-file", tls.ca]
                ceilings["relay"] = spawn_server("relay", "bench.ceiling", relay_args)
                ceilings["bare"] = spawn_server("ceiling", "bench.ceiling", [])
            n_clicks = min(o.clicks, o.count) if o.count else o.clicks
            clicks = expect.make_clicks(sources, n_clicks, rng)
            click_requests = (
                expect.api_click_requests(clicks)
                if o.clicks_via == "api"
                else expect.click_requests(clicks)
            )
            click_source = ListSource(click_requests)
            click_result = await _phase(
                progress,
                "clicks",
                len(click_requests),
                base_url,
                click_source,
                o,
                count=len(click_requests),
                duration=60.0,
            )
            for outcome in click_source.outcomes:
                expect.register(outcome)
            registered = [c for c in clicks if c.click_id]
            if not registered:
                raise RuntimeError(f"no click registered; answers: {click_result.statuses}")
            conversions = expect.ConversionSource(
                registered, budget=o.count, dup=o.dup_share, update=o.update_share, seed=o.seed
            )
            watch_task = progress.add_task("postbacks", total=None, note="")
            pid = gateway.proc.pid if gateway is not None else None
            rounds = await _rounds(
                o, progress, base_url, conversions, ceilings, sink, watch_task, pid
            )
            ingest = rounds.ingest
            expected = conversions.expected()
            drain_s = await _drain(sink, len(expected), o.drain_timeout, progress, watch_task)
            records = await _records(sink)
            verdict = expect.compare(expected, records.records)
        finally:
            if gateway is not None:
                gateway.stop()
            for child in ceilings.values():
                child.stop()
            sink.stop()
    log_tail = log_path.read_text("utf-8", "replace")[-3000:] if log_path.exists() else ""
    summary = _summarise(
        o,
        base_url,
        click_result,
        len(registered),
        ingest,
        rounds.ceiling.get("bare"),
        verdict,
        records,
        drain_s,
        rounds.started,
    )
    summary.scheme = "https" if tls else "http"
    summary.rounds = len(rounds.gateway_cpu_us)
    summary.gateway_cpu_us = _median(rounds.gateway_cpu_us)
    summary.gateway_cpu_us_rounds = [round(v, 1) for v in rounds.gateway_cpu_us]
    summary.relay_ratio = _median(rounds.ratios.get("relay", []), 3)
    summary.relay_ratios = [round(v, 3) for v in rounds.ratios.get("relay", [])]
    summary.bare_ratio = _median(rounds.ratios.get("bare", []), 3)
    relay = rounds.ceiling.get("relay")
    summary.relay_rps = round(relay.rps, 1) if relay else None
    kinds = conversions.kinds()
    summary.duplicates_sent, summary.updates_sent = kinds["duplicate"], kinds["update"]
    return summary, log_tail


def _median(values: list[float], digits: int = 1) -> float | None:
    return round(statistics.median(values), digits) if values else None


class _Rounds(msgspec.Struct):
    ingest: LoadResult
    ceiling: dict[str, LoadResult]
    ratios: dict[str, list[float]]  # per round: gateway rps / that ceiling's rps
    gateway_cpu_us: list[float]  # per round: gateway CPU (all threads) per conversion
    started: float


def _merge(results: list[LoadResult]) -> LoadResult:
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for r in results:
        statuses.update(r.statuses)
        errors.update(r.errors)
    return LoadResult(
        sent=sum(r.sent for r in results),
        elapsed=sum(r.elapsed for r in results) or 1e-9,
        latencies=[v for r in results for v in r.latencies],
        lags=[v for r in results for v in r.lags],
        statuses=dict(statuses),
        errors=dict(errors),
    )


#: Conversions per second assumed when preparing a timed round's chains ahead.
_PREPARE_RATE = 12_000


async def _rounds(
    o: RunOptions,
    progress: Progress,
    base_url: str,
    conversions: expect.ConversionSource,
    ceilings: dict[str, Child],
    sink: Child,
    watch_task: object,
    pid: int | None,
) -> _Rounds:
    """Gateway and ceilings in turn, ``o.rounds`` times: each round's gateway phase
    (its postbacks drained, its CPU read from /proc) then each ceiling on the same
    requests.  A neighbour's burst then lands on one round, not on one side."""
    n_rounds = max(1, o.rounds if ceilings else 1)
    per_count = None if o.count is None else max(1, o.count // n_rounds)
    per_duration = None if o.duration is None else o.duration / n_rounds
    mine: list[LoadResult] = []
    theirs: dict[str, list[LoadResult]] = {name: [] for name in ceilings}
    ratios: dict[str, list[float]] = {name: [] for name in ceilings}
    cpu_us: list[float] = []
    started = time.time()
    for r in range(n_rounds):
        count = per_count
        if count is not None and r == n_rounds - 1 and o.count is not None:
            count = o.count - per_count * (n_rounds - 1)  # type: ignore[operator]
        if count is not None:
            conversions.prepare(count)
        else:
            wanted = (o.rate or _PREPARE_RATE) * (per_duration or 0.0) * 1.2
            conversions.prepare(int(wanted) - len(conversions.prepared))
        first_chain = len(conversions.chains)
        cpu_before = cpu_seconds(pid) if pid else float("nan")
        result = await _phase(
            progress,
            f"round {r + 1}",
            count,
            base_url,
            conversions,
            o,
            count=count,
            duration=per_duration,
            rate=o.rate,
        )
        await _drain(
            sink, len(conversions.expected()), o.drain_timeout, progress, watch_task, settle=0.0
        )
        if pid and result.sent:
            cpu_us.append((cpu_seconds(pid) - cpu_before) / result.sent * 1e6)
        mine.append(result)
        if not ceilings or not result.sent:
            continue
        sent = [c.request(i) for c in conversions.chains[first_chain:] for i in range(len(c.steps))]
        replay = (sent * (result.sent // max(1, len(sent)) + 1))[: result.sent]
        for name, child in ceilings.items():
            ceiling = await _phase(
                progress,
                f"  {name}",
                len(replay),
                child.url,
                ListSource(replay),
                o,
                count=len(replay),
                duration=60.0,
            )
            theirs[name].append(ceiling)
            if ceiling.rps:
                ratios[name].append(result.rps / ceiling.rps)
    return _Rounds(
        ingest=_merge(mine),
        ceiling={name: _merge(v) for name, v in theirs.items() if v},
        ratios=ratios,
        gateway_cpu_us=cpu_us,
        started=started,
    )


def _summarise(
    o: RunOptions,
    base_url: str,
    clicks: LoadResult,
    registered: int,
    ingest: LoadResult,
    ceiling: LoadResult | None,
    verdict: expect.Verdict,
    records: Records,
    drain_s: float,
    load_started: float,
) -> Summary:
    ok_2xx = sum(n for status, n in ingest.statuses.items() if 200 <= status < 300)
    delivered = verdict.expected - len(verdict.lost)
    span = (verdict.last_arrival or load_started) - load_started
    ceiling_rps = round(ceiling.rps, 1) if ceiling else None
    return Summary(
        machine=machine(),
        target="spawned gateway" if o.url is None else base_url,
        sources=o.sources,
        concurrency=o.concurrency,
        rate=o.rate,
        clicks=registered,
        click_rps=round(registered / clicks.elapsed, 1),
        conversions_sent=ingest.sent,
        conversions_2xx=ok_2xx,
        duplicates_sent=0,
        updates_sent=0,
        ingest_errors=ingest.sent - ok_2xx,
        ingest_rps=round(ingest.rps, 1),
        **latency_fields("ingest", ingest.latencies),  # type: ignore[arg-type]
        send_lag_p99_ms=ms(percentile(ingest.lags, 99)),
        ceiling_rps=ceiling_rps,
        ceiling_p99_ms=latency_fields("c", ceiling.latencies)["c_p99_ms"] if ceiling else None,
        ingest_ratio=round(ingest.rps / ceiling.rps, 3) if ceiling and ceiling.rps else None,
        postbacks_expected=verdict.expected,
        postbacks_received=verdict.received,
        postbacks_per_s=round(delivered / span, 1) if span > 0 else 0.0,
        **latency_fields("e2e", verdict.e2e),  # type: ignore[arg-type]
        retries=records.refused + records.disconnected,
        lost=len(verdict.lost),
        duplicated=sum(verdict.duplicated.values()),
        wrong=len(verdict.wrong),
        drain_s=round(drain_s, 2),
        sink_fail_rate=o.sink_fail_rate,
        sink_latency_ms=ms(o.sink_latency),
        examples={
            k: v[:3]
            for k, v in (
                ("lost", verdict.lost),
                ("wrong", verdict.wrong),
                ("duplicated", list(verdict.duplicated)),
            )
            if v
        },
    )
