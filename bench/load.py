"""The load generator: one aiohttp client, a fixed rate or as fast as it can.

Requests come from a *source* (``next_request()``; ``None`` ends the run)
so callers can hold back requests that depend on earlier answers (a status
change is sent only after its first conversion was answered).  ``concurrency``
workers share one keep-alive connection pool of the same size.

At a fixed rate, request ``i`` is due at ``start + i / rate`` and its latency
is measured from that due time, not from when a worker got to it, so a
server that falls behind shows it in the percentiles (no coordinated
omission).  Every run stops by itself: at ``count`` requests, at
``duration`` seconds, or when the source runs dry.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import aiohttp
import msgspec
from yarl import URL

__all__ = ("LoadResult", "Outcome", "Request", "RequestSource", "run_load")


class Request(msgspec.Struct, kw_only=True):
    method: str
    target: str  # path + query, already encoded
    json: bytes | None = None
    tag: object = None  # the caller's, handed back in the outcome


class Outcome(msgspec.Struct, kw_only=True):
    request: Request
    status: int  # 0: no answer (error says why)
    latency: float  # seconds
    answered_at: float  # time.time() when the answer arrived
    body: bytes = b""
    location: str | None = None
    error: str | None = None


class RequestSource(Protocol):
    async def next_request(self) -> Request | None:
        """The next request; may wait for answers it depends on; ``None``: no more."""
        ...

    def answered(self, outcome: Outcome) -> None: ...


class LoadResult(msgspec.Struct, kw_only=True):
    sent: int
    elapsed: float  # first send to last answer, seconds
    latencies: list[float]  # seconds, answered requests only
    lags: list[float]  # fixed rate: how late each request left (the generator's own delay)
    statuses: dict[int, int]
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


async def run_load(
    base_url: str,
    source: RequestSource,
    *,
    concurrency: int = 32,
    rate: float | None = None,
    duration: float | None = None,
    count: int | None = None,
    timeout: float = 10.0,
    on_answer: Callable[[Outcome], None] | None = None,
) -> LoadResult:
    """Send requests from ``source`` until count, duration or the source ends."""
    if duration is None and count is None:
        raise ValueError("a load needs a count or a duration: it must stop by itself")
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, ttl_dns_cache=None)
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    claimed = 0
    start = time.perf_counter()
    deadline = start + duration if duration is not None else float("inf")
    last_answer = start
    dry = asyncio.Event()  # the source ran dry: every worker ends

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal claimed, last_answer
        while not dry.is_set():
            if count is not None and claimed >= count:
                return
            index = claimed
            claimed += 1
            due = start + index / rate if rate else time.perf_counter()
            if due >= deadline:
                return
            if rate and (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            if time.perf_counter() >= deadline:
                return
            request = await source.next_request()
            if request is None:
                dry.set()
                return
            if rate:
                lags.append(time.perf_counter() - due)
            sent_at = due if rate else time.perf_counter()
            outcome = await _send(session, base_url, request, sent_at)
            last_answer = time.perf_counter()
            if outcome.status:
                latencies.append(outcome.latency)
                statuses[outcome.status] += 1
            else:
                errors[outcome.error or "error"] += 1
            source.answered(outcome)
            if on_answer is not None:
                on_answer(outcome)

    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    sent = len(latencies) + sum(errors.values())
    return LoadResult(
        sent=sent,
        elapsed=max(last_answer - start, 1e-9),
        latencies=latencies,
        lags=lags,
        statuses=dict(statuses),
        errors=dict(errors),
    )


async def _send(
    session: aiohttp.ClientSession, base_url: str, request: Request, sent_at: float
) -> Outcome:
    headers = {"Content-Type": "application/json"} if request.json is not None else None
    try:
        async with session.request(
            request.method,
            URL(base_url + request.target, encoded=True),
            data=request.json,
            headers=headers,
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            now = time.perf_counter()
            return Outcome(
                request=request,
                status=answer.status,
                latency=now - sent_at,
                answered_at=time.time(),
                body=body,
                location=answer.headers.get("Location"),
            )
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Outcome(
            request=request,
            status=0,
            latency=time.perf_counter() - sent_at,
            answered_at=time.time(),
            error=type(exc).__name__,
        )
