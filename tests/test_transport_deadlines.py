"""The lean client's whole-request deadlines (``transport.deadlines``): many at
once on one timer, each firing at its own time, a shutdown's cancellation never
mistaken for a timeout, and nothing left in the table whatever the ending."""

from __future__ import annotations

import asyncio
import time

import pytest
from raw_server import RawServer, read_head

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import TransportError
from gateway.dispatch.transport.deadlines import Deadlines
from gateway.dispatch.transport.lean import LeanTransport

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"


async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read requests, answer none (the connection stays open)."""
    while await read_head(reader):
        pass


async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await read_head(reader):
        writer.write(OK)
        await writer.drain()


def lean() -> LeanTransport:
    return LeanTransport(DeliverySettings(allow_private_targets=True, max_connections=64))


async def timed_get(client: LeanTransport, url: str, timeout: float) -> tuple[float, str]:
    started = time.perf_counter()
    with pytest.raises(TransportError) as info:
        await client.exchange("GET", url, None, {}, timeout)
    assert info.value.timed_out
    return time.perf_counter() - started, info.value.reason


async def test_each_deadline_fires_at_its_own_time_on_one_timer() -> None:
    """A long deadline arms the timer first; shorter ones begun later still fire
    on time, and the long one still fires after they are gone."""
    async with RawServer(mute) as server:
        client = lean()
        try:
            long = asyncio.create_task(timed_get(client, server.url(), 1.2))
            await asyncio.sleep(0.05)
            short = [
                asyncio.create_task(timed_get(client, server.url(), t)) for t in (0.6, 0.2, 0.4)
            ]
            results = await asyncio.wait_for(asyncio.gather(*short), 5)  # never hangs
            for (elapsed, reason), t in zip(results, (0.6, 0.2, 0.4), strict=True):
                assert t - 0.01 <= elapsed < t + 0.25, (t, elapsed)
                assert reason == f"timeout after {t:g} s"
            elapsed, _ = await asyncio.wait_for(long, 5)
            assert 1.19 <= elapsed < 1.45
            assert len(client._deadlines) == 0
        finally:
            await client.close()


async def test_answers_in_time_leave_nothing_behind() -> None:
    async with RawServer(ok) as server:
        client = lean()
        try:
            for _ in range(50):
                answer = await client.exchange("GET", server.url(), None, {}, 0.3)
                assert answer.status == 200
            assert len(client._deadlines) == 0
            await asyncio.sleep(0.4)  # the timer armed for the first still fires: harmlessly
            answer = await client.exchange("GET", server.url(), None, {}, 0.3)
            assert answer.status == 200 and len(client._deadlines) == 0
        finally:
            await client.close()


async def test_a_shutdown_is_not_a_timeout() -> None:
    """Cancelled from outside, the exchange raises CancelledError, even when
    its deadline passes in the same moment; the table is left empty."""
    async with RawServer(mute) as server:
        client = lean()
        try:
            task = asyncio.create_task(client.exchange("GET", server.url(), None, {}, 5.0))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(client._deadlines) == 0

            both = asyncio.create_task(client.exchange("GET", server.url(), None, {}, 0.2))
            loop = asyncio.get_running_loop()
            loop.call_at(loop.time() + 0.2, both.cancel)  # the shutdown, at the deadline
            with pytest.raises(asyncio.CancelledError):
                await both
            assert len(client._deadlines) == 0
        finally:
            await client.close()


async def test_the_table_cancels_only_expired_tasks() -> None:
    """Deadlines alone: a task past its time is cancelled once and ``end`` owns
    up; one that ended in time is neither cancelled nor reported."""
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    hits: list[str] = []

    async def guarded(name: str, after: float, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        deadlines.begin(task, loop.time() + after)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            hits.append(f"{name}: {'timeout' if deadlines.end(task) else 'cancelled'}")
            return
        hits.append(f"{name}: {'late' if deadlines.end(task) else 'done'}")

    await asyncio.gather(guarded("slow", 0.1, 5), guarded("quick", 0.3, 0.01))
    assert sorted(hits) == ["quick: done", "slow: timeout"]
    assert len(deadlines) == 0
