"""Fan-out throughput: the dispatcher vs. a bare aiohttp client loop.

Each sends N GETs with the same concurrency to the same minimal sink (another
process, a bare protocol that only answers), in one run: the bare client loop,
the dispatcher on aiohttp's client, and the dispatcher on its default, the
lean transport.  The ratios show what the dispatcher's bookkeeping (queues,
the durable attempt log, metrics) costs over the raw client, and what the
client itself costs.
``python -m bench.fanout [-n 10000] [-c 32] [--rounds 7] [--json] [--tls]``;
with ``--tls`` every client sends HTTPS to a TLS sink whose throw-away CA it
trusts (``ca_file``), as real postbacks are HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.tlsfiles import TlsFiles, client_context, make_tls_files
from gateway.clock import SystemClock
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.metrics import Metrics
from gateway.store.base import NewDelivery
from gateway.store.sqlite import SQLiteStore

__all__ = ("main", "run_bare", "run_dispatcher")

log = logging.getLogger(__name__)


# -- the sink (its own process) ------------------------------------------------


#: The one answer: "OK", kept alive.
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK"


class _Sink(asyncio.Protocol):
    """Answers every request with 200 OK and does nothing else.

    The clients are what is measured, so the sink must never be the bound:
    aiohttp's server spends about as much CPU per request as the lean
    dispatcher does, and on a two-core machine it capped the dispatcher's
    rounds.  Requests are read just far enough to answer each one (a head,
    and a ``Content-Length`` body if any); every answer of one read goes out
    in one write.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._skip = 0  # body bytes of the current request still to come

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        buf = self._buf + data if self._buf else data
        answers = 0
        start = 0
        while not self._skip:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            head = buf[start:end].lower()
            start = end + 4
            answers += 1
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                length = int(head[at + 17 :].split(b"\r\n", 1)[0])
                taken = min(length, len(buf) - start)
                start += taken
                self._skip = length - taken
        self._buf = buf[start:]
        if len(self._buf) > 65536:  # no head in sight: not a client worth answering
            assert self._transport is not None
            self._transport.close()
            return
        if answers:
            assert self._transport is not None
            self._transport.write(_ANSWER * answers)


async def _serve_sink(cert: str | None, key: str | None) -> None:
    context = None
    if cert and key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Sink, "127.0.0.1", 0, backlog=1024, ssl=context)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    try:
        await loop.run_in_executor(None, sys.stdin.read)  # until EOF
    finally:
        server.close()


def _start_sink(tls: TlsFiles | None) -> tuple[subprocess.Popen[str], int]:
    extra = ["--sink-cert", tls.cert, "--sink-key", tls.key] if tls else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", "--serve-sink", *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        raise RuntimeError("the sink did not start")
    return proc, int(line)


# -- the two clients -----------------------------------------------------------


async def run_bare(
    url: str, n: int, concurrency: int, ca_file: str | None = None
) -> tuple[float, float]:
    """Requests per second of a plain ClientSession loop (the ceiling), and CPU us each."""
    context = client_context(ca_file) if ca_file else True
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = n

        async def worker() -> None:
            # distinct URLs, like real postbacks (and like the dispatcher's run):
            # one repeated URL would ride yarl's parse caches
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.get(f"{url}?i={remaining}") as resp:
                    await resp.read()
                    assert resp.status == 200

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1e6


async def run_dispatcher(
    url: str,
    n: int,
    concurrency: int,
    db: Path,
    transport: str = "aiohttp",
    ca_file: str | None = None,
) -> tuple[float, float]:
    """Deliveries per second from submit() to every attempt recorded as delivered,
    and CPU us each (this process, store thread included)."""
    store = SQLiteStore(db)
    await store.open()
    settings = DeliverySettings(
        allow_private_targets=True,
        max_connections=concurrency,
        max_connections_per_host=concurrency,
        transport=transport,  # type: ignore[arg-type]
        ca_file=ca_file,
    )
    dispatcher = Dispatcher(settings, store, Metrics(), SystemClock())
    try:
        await dispatcher.start()
        now = time.time()
        host = url.split("/")[2].split(":")[0]
        batch = [
            NewDelivery(
                conversion_id=f"c{i}",
                traffic_source="bench",
                campaign_id="c",
                rule="r",
                method="GET",
                url=f"{url}?i={i}",
                display_url=url,
                body=None,
                host=host,
                click_time=now,
                not_before=now,
                max_attempts=9,
                created_at=now,
            )
            for i in range(n)
        ]
        committed = (await store.commit_batch([], [], batch)).deliveries
        cpu, started = time.process_time(), time.perf_counter()
        dispatcher.submit(committed)
        await dispatcher.wait_idle()
        elapsed = time.perf_counter() - started
        cpu_us = (time.process_time() - cpu) / n * 1e6
        counts = await store.counts()
        if counts.get("deliveries.delivered") != n:
            raise RuntimeError(f"not everything was delivered: {counts}")
        return n / elapsed, cpu_us
    finally:
        await dispatcher.stop()
        await store.close()


async def _measure(n: int, concurrency: int, rounds: int, tls: TlsFiles | None) -> dict[str, Any]:
    proc, port = _start_sink(tls)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/postback"
    ca_file = tls.ca if tls else None
    try:
        await run_bare(url, min(n, 500), concurrency, ca_file)  # warm up both sides
        rps: dict[str, list[float]] = {"bare": [], "aiohttp": [], "lean": []}
        cpu: dict[str, list[float]] = {"bare": [], "aiohttp": [], "lean": []}
        # Interleaved rounds, best of each: on a shared machine a neighbour's
        # burst lands on one side or the other; the best rounds are the quiet ones.
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                for name in rps:
                    if name == "bare":
                        rate, us = await run_bare(url, n, concurrency, ca_file)
                    else:
                        db = Path(tmp) / f"{name}{r}.db"
                        rate, us = await run_dispatcher(url, n, concurrency, db, name, ca_file)
                    rps[name].append(rate)
                    cpu[name].append(us)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    best = {name: max(v) for name, v in rps.items()}
    median = {name: statistics.median(v) for name, v in rps.items()}
    # each round's dispatcher against the bare loop of the same round: a neighbour's
    # burst moves both, so this is the steadier ratio on a shared machine
    per_round = {
        name: statistics.median(a / b for a, b in zip(v, rps["bare"], strict=True))
        for name, v in rps.items()
    }
    return {
        "scheme": "https" if tls else "http",
        "n": n,
        "concurrency": concurrency,
        "rounds": rounds,
        "bare_rps": round(best["bare"], 1),
        "dispatcher_rps": round(best["aiohttp"], 1),
        "ratio": round(best["aiohttp"] / best["bare"], 3),
        "dispatcher_lean_rps": round(best["lean"], 1),
        "ratio_lean": round(best["lean"] / best["bare"], 3),
        # CPU of this process per request (a dispatcher's includes its store thread)
        "bare_cpu_us": round(min(cpu["bare"]), 1),
        "dispatcher_cpu_us": round(min(cpu["aiohttp"]), 1),
        "dispatcher_lean_cpu_us": round(min(cpu["lean"]), 1),
        # medians over the rounds, and the median of the per-round ratios
        "bare_rps_median": round(median["bare"], 1),
        "dispatcher_rps_median": round(median["aiohttp"], 1),
        "dispatcher_lean_rps_median": round(median["lean"], 1),
        "ratio_round_median": round(per_round["aiohttp"], 3),
        "ratio_lean_round_median": round(per_round["lean"], 3),
        "bare_cpu_us_median": round(statistics.median(cpu["bare"]), 1),
        "dispatcher_cpu_us_median": round(statistics.median(cpu["aiohttp"]), 1),
        "dispatcher_lean_cpu_us_median": round(statistics.median(cpu["lean"]), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    # 10,000 per round: with 3,000 a round lasted a quarter of a second and whole
    # runs swung between 0.70 and 0.85 on a shared 2-core machine.
    parser.add_argument("-n", type=int, default=10_000, help="requests per client and round")
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7, help="best of this many rounds")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--tls", action="store_true", help="HTTPS to a TLS sink (throw-away CA)")
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sink-cert", help=argparse.SUPPRESS)
    parser.add_argument("--sink-key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    runner = asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop  # noqa: PLC0415  (optional speed-up, as in serve)

            runner = uvloop.run
        except ImportError:
            pass
    if args.serve_sink:
        runner(_serve_sink(args.sink_cert, args.sink_key))
        return 0
    with tempfile.TemporaryDirectory(prefix="fanout-tls-") as tmp:
        tls = make_tls_files(Path(tmp)) if args.tls else None
        result = runner(
            _measure(max(1, args.n), max(1, args.concurrency), max(1, args.rounds), tls)
        )
    if args.json:
        print(json.dumps(result))
    else:
        r = result
        print(
            f"{r['scheme'].upper()}, n={r['n']}, concurrency={r['concurrency']},"
            f" {r['rounds']} interleaved rounds: best | median"
        )
        print(f"{'':28} {'per s':>15} {'ratio':>13} {'CPU us/req':>13}")
        for label, key, ratio, ratio_med in (
            ("bare aiohttp loop", "bare", None, None),
            ("dispatcher (aiohttp)", "dispatcher", "ratio", "ratio_round_median"),
            (
                "dispatcher (lean transport)",
                "dispatcher_lean",
                "ratio_lean",
                "ratio_lean_round_median",
            ),
        ):
            rates = f"{r[key + '_rps']:.0f} | {r[key + '_rps_median']:.0f}"
            ratios = f"{r[ratio]:.3f} | {r[ratio_med]:.3f}" if ratio else "1 | 1"
            cpus = f"{r[key + '_cpu_us']} | {r[key + '_cpu_us_median']}"
            print(f"{label:28} {rates:>15} {ratios:>13} {cpus:>13}")
        print("(ratio: best vs best | median of each round's ratio to that round's bare loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
