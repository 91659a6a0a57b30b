"""Hung hosts never starve a healthy one, on both clients.

A healthy host answers once (it is known), then twenty hosts whose listeners
accept and never answer (real sockets on loopback aliases), each with a queue
of deliveries, fill a small pool; then a burst for the healthy host arrives.
They must all be delivered while every hung attempt is still waiting for its
timeout (an ordering, not a stopwatch), and the hung hosts together may hold at most half the pool.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.clock import VirtualClock
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore
from tests.security_helpers import OK, Counting
from tests.sinks import new_delivery

T0 = 1_800_000_000.0
HUNG = 20
POOL = 16
TIMEOUT = 20.0  # the hung attempts' bound; the test ends long before


async def test_hung_hosts_leave_room_for_a_healthy_one(tmp_path: Path, transport_kind: str) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    async with Counting(answer=None) as holes, Counting(answer=OK) as healthy:
        resolve = {f"hung{i}.test": f"127.0.0.{1 + i % 3}:{holes.port}" for i in range(HUNG)}
        resolve["ok.test"] = f"127.0.0.1:{healthy.port}"
        settings = DeliverySettings(
            transport=transport_kind,
            allow_private_targets=True,
            max_connections=POOL,
            max_connections_per_host=8,
            timeout=TIMEOUT,
            resolve=resolve,
        )
        dispatcher = Dispatcher(settings, store, Metrics(), VirtualClock(T0))
        await dispatcher.start()
        try:
            first = new_delivery("http://ok.test/ok?n=first", now=T0, host="ok.test")
            dispatcher.submit((await store.commit_batch([], [], [first])).deliveries)
            await dispatcher.wait_idle()
            assert healthy.connections == 1
            hung = [
                new_delivery(f"http://hung{i}.test/pb?n={n}", now=T0, host=f"hung{i}.test")
                for i in range(HUNG)
                for n in range(10)
            ]
            hung_rows = (await store.commit_batch([], [], hung)).deliveries
            dispatcher.submit(hung_rows)
            deadline = time.monotonic() + 5.0
            while holes.connections < POOL // 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            good = [
                new_delivery(f"http://ok.test/ok?n={n}", now=T0, host="ok.test") for n in range(20)
            ]
            ids = [d.delivery_id for d in (await store.commit_batch([], [], good)).deliveries]
            dispatcher.submit([d for d in await _rows(store, ids)])
            while time.monotonic() < deadline:
                rows = await _rows(store, ids)
                if all(d.status == "delivered" for d in rows):
                    break
                await asyncio.sleep(0.02)
            assert [d.status for d in await _rows(store, ids)] == ["delivered"] * 20
            # every hung attempt is still waiting: none has timed out or been logged
            stored = await _rows(store, [d.delivery_id for d in hung_rows])
            assert all(d.attempts == 0 for d in stored)
            assert holes.connections <= POOL // 2  # the hung hosts kept to their half
        finally:
            await dispatcher.stop(timeout=0.2)
            await store.close()


async def _rows(store: SQLiteStore, ids: list[int]) -> list:  # type: ignore[type-arg]
    out = []
    for delivery_id in ids:
        d = await store.get_delivery(delivery_id)
        assert d is not None
        out.append(d)
    return out


async def test_a_host_that_answers_gets_its_full_share(tmp_path: Path, transport_kind: str) -> None:
    """Probation ends with the first answer: the host's queue then runs at its cap."""
    from tests.sinks import Sink  # noqa: PLC0415

    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    async with Sink() as sink:
        settings = DeliverySettings(
            transport=transport_kind, allow_private_targets=True, max_connections_per_host=8
        )
        dispatcher = Dispatcher(settings, store, Metrics(), VirtualClock(T0))
        await dispatcher.start()
        try:
            first = new_delivery(sink.url("/ok"), now=T0)
            gated = [new_delivery(sink.url(f"/gate?n={n}"), now=T0) for n in range(20)]
            dispatcher.submit((await store.commit_batch([], [], [first, *gated])).deliveries)
            deadline = time.monotonic() + 5.0
            while sink.count("/gate") < 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert sink.count("/gate") == 8  # all of its cap, not its probation slots
            sink.gate.set()
            await dispatcher.wait_idle()
            assert sink.count("/gate") == 20
        finally:
            await dispatcher.stop(timeout=0.2)
            await store.close()
