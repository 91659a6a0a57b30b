"""The sink: plays every traffic source the benchmark configures.

It runs in its own process (``python -m bench.sink``) so the gateway's
deliveries and the load generator never share an event loop with it.  Every
request it *accepts* is recorded as (arrival time, method, host, raw path and
query, body); the recorder is what the benchmark checks the gateway against,
so it keeps the request target exactly as it arrived (``raw_path``), never a
decoded form.

Knobs, each a share of requests drawn from a seeded RNG:

* ``--latency``: answer after this many seconds (slow networks);
* ``--fail-rate``: answer ``500`` or ``429`` (retried by the gateway);
* ``--disconnect-rate``: drop the connection without an answer (retried too);
* ``--drop-rate`` / ``--alter-rate``: *lie* (test only): answer ``200`` but
  record nothing, or record an altered URL.  A correct checker must catch both.

A URL is refused at most ``--max-fails`` times in a row, so a gateway whose
retry schedule has more attempts than that can always get through: the run
measures the gateway, not dice.

Control endpoints (not recorded): ``GET /_count``, ``GET /_records``,
``GET /_health``, and ``/_relay``, which answers ``OK`` like a delivery does
(the relay ceiling's requests, never recorded).

With ``--cert`` and ``--key`` it also serves HTTPS on a second port, printed
as ``tls PORT`` before the ``listening PORT`` line (that one stays HTTP, for
the control endpoints).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence

import msgspec
from aiohttp import web

from bench.procs import run_loop, serve_app

__all__ = ("Record", "Records", "SinkOptions", "build_app", "main")


class Record(msgspec.Struct, array_like=True):
    """One accepted request, as it arrived."""

    t: float  # arrival, time.time()
    method: str
    host: str
    target: str  # raw path + query, byte for byte as requested
    body: str
    scheme: str = "http"  # https: it came in on the TLS port


class Records(msgspec.Struct):
    records: list[Record]
    refused: int  # 500/429 answers
    disconnected: int  # connections dropped on purpose
    lied: int  # answered 200 without recording (drop) or recorded altered (alter)


class SinkOptions(msgspec.Struct, kw_only=True):
    latency: float = 0.0
    fail_rate: float = 0.0
    disconnect_rate: float = 0.0
    drop_rate: float = 0.0
    alter_rate: float = 0.0
    max_fails: int = 2
    seed: int = 1


_KEY: web.AppKey[_Recorder] = web.AppKey("recorder")
_encoder = msgspec.json.Encoder()


class _Recorder:
    """Owns the record and the per-URL refusal streaks."""

    def __init__(self, options: SinkOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.records: list[Record] = []
        self.streaks: Counter[str] = Counter()
        self.refused = 0
        self.disconnected = 0
        self.lied = 0

    def decide(self, target: str) -> str:
        """``ok``, ``fail``, ``disconnect``, ``drop`` or ``alter`` for one request."""
        opts, roll = self.options, self.rng.random()
        if self.streaks[target] < opts.max_fails:
            if roll < opts.fail_rate:
                self.streaks[target] += 1
                return "fail"
            roll -= opts.fail_rate
            if roll < opts.disconnect_rate:
                self.streaks[target] += 1
                return "disconnect"
            roll -= opts.disconnect_rate
        else:
            roll = self.rng.random()
        self.streaks.pop(target, None)
        if roll < opts.drop_rate:
            return "drop"
        if roll < opts.drop_rate + opts.alter_rate:
            return "alter"
        return "ok"


async def _handle(request: web.Request) -> web.StreamResponse:
    recorder = request.app[_KEY]
    arrived = time.time()
    target = request.raw_path
    body = ""
    if request.can_read_body:
        body = (await request.read()).decode("utf-8", "surrogateescape")
    verdict = recorder.decide(target)
    if recorder.options.latency > 0:
        await asyncio.sleep(recorder.options.latency)
    if verdict == "fail":
        recorder.refused += 1
        status = 429 if recorder.rng.random() < 0.5 else 500
        return web.Response(status=status, text="try again")
    if verdict == "disconnect":
        recorder.disconnected += 1
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp ends the handler quietly
    if verdict == "drop":
        recorder.lied += 1
        return web.Response(text="OK")
    if verdict == "alter":
        recorder.lied += 1
        target += "x"
    recorder.records.append(
        Record(arrived, request.method, request.host, target, body, request.scheme)
    )
    return web.Response(text="OK")


async def _count(request: web.Request) -> web.Response:
    return web.Response(
        body=_encoder.encode(len(request.app[_KEY].records)), content_type="application/json"
    )


async def _records(request: web.Request) -> web.Response:
    rec = request.app[_KEY]
    payload = Records(rec.records, rec.refused, rec.disconnected, rec.lied)
    return web.Response(body=_encoder.encode(payload), content_type="application/json")


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _relay(request: web.Request) -> web.Response:
    return web.Response(text="OK")


def build_app(options: SinkOptions) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[_KEY] = _Recorder(options)
    app.router.add_get("/_count", _count)
    app.router.add_get("/_records", _records)
    app.router.add_get("/_health", _health)
    app.router.add_route("*", "/_relay", _relay)
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app


def parse_args(
    argv: Sequence[str] | None = None,
) -> tuple[SinkOptions, str, int, tuple[str, str] | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sink", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--disconnect-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--alter-rate", type=float, default=0.0)
    parser.add_argument("--max-fails", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cert", help="PEM certificate: serve HTTPS too (printed: tls PORT)")
    parser.add_argument("--key", help="PEM key for --cert")
    args = parser.parse_args(argv)
    options = SinkOptions(
        latency=args.latency,
        fail_rate=args.fail_rate,
        disconnect_rate=args.disconnect_rate,
        drop_rate=args.drop_rate,
        alter_rate=args.alter_rate,
        max_fails=args.max_fails,
        seed=args.seed,
    )
    tls = (args.cert, args.key) if args.cert and args.key else None
    return options, args.host, args.port, tls


def main(argv: Sequence[str] | None = None) -> int:
    options, host, port, tls = parse_args(argv)
    run_loop(lambda: serve_app(build_app(options), host, port, tls=tls))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
