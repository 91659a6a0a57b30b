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
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import expect
from bench.configgen import render_config
from bench.load import LoadResult, Outcome, Request, run_load
from bench.procs import Child, spawn_gateway, spawn_server
from bench.report import Summary, latency_fields, ms, percentile
from bench.sink import Records

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


def _sink_args(o: RunOptions) -> list[str]:
    return [
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
    sink: Child, expected: int, timeout: float, progress: Progress, task: object
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
            await asyncio.sleep(0.1)
        # a short settle, so a late duplicate is caught too
        await asyncio.sleep(0.5)
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
        sink = spawn_server("sink", "bench.sink", _sink_args(o), port=o.sink_port)
        gateway: Child | None = None
        log_path = work / "gateway.log"
        try:
            sources = expect.make_sources(o.sources, sink.url)
            (work / "bench.toml").write_text(render_config(sources), "utf-8")
            if o.url is None:
                gateway = spawn_gateway(
                    str(work / "bench.toml"), str(work / "gateway.sqlite"), str(log_path)
                )
                base_url = gateway.url
            else:
                base_url = o.url.rstrip("/")
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
            stop = asyncio.Event()
            watcher = asyncio.create_task(_watch(sink, progress, watch_task, stop, conversions))
            load_started = time.time()
            try:
                ingest = await _phase(
                    progress,
                    "conversions",
                    o.count,
                    base_url,
                    conversions,
                    o,
                    count=o.count,
                    duration=o.duration,
                    rate=o.rate,
                )
            finally:
                stop.set()
                await watcher
            expected = conversions.expected()
            drain_s = await _drain(sink, len(expected), o.drain_timeout, progress, watch_task)
            records = await _records(sink)
            verdict = expect.compare(expected, records.records)
        finally:
            if gateway is not None:
                gateway.stop()
            sink.stop()
        ceiling: LoadResult | None = None
        if o.ceiling:
            replay = [
                r for c in conversions.chains for r in (c.request(i) for i in range(len(c.steps)))
            ][: max(ingest.sent, 1)]
            with spawn_server("ceiling", "bench.ceiling", []) as server:
                ceiling = await _phase(
                    progress,
                    "ceiling",
                    len(replay),
                    server.url,
                    ListSource(replay),
                    o,
                    count=len(replay),
                    duration=60.0,
                )
    log_tail = log_path.read_text("utf-8", "replace")[-3000:] if log_path.exists() else ""
    summary = _summarise(
        o,
        base_url,
        click_result,
        len(registered),
        ingest,
        ceiling,
        verdict,
        records,
        drain_s,
        load_started,
    )
    kinds = conversions.kinds()
    summary.duplicates_sent, summary.updates_sent = kinds["duplicate"], kinds["update"]
    return summary, log_tail


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
