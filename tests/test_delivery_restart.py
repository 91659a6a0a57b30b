"""kill -9 with deliveries in flight, restart, everything delivered (at least once).

The dying process is a bare dispatcher over a SQLite file, so this holds
without the rest of the gateway; the store is the only thing that survives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sinks import Sink, new_delivery

from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.hostqueue import UNPROVEN_PER_HOST
from gateway.dispatch.settings import DeliverySettings
from gateway.metrics import Metrics
from gateway.store.base import DeliveryFilter
from gateway.store.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

_CHILD = """
import asyncio, sys
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore

async def main() -> None:
    store = SQLiteStore(sys.argv[1])
    await store.open()
    settings = DeliverySettings(allow_private_targets=True, max_connections_per_host=4,
                                timeout=60.0)
    await Dispatcher(settings, store, Metrics()).start()
    await asyncio.Event().wait()  # until kill -9

asyncio.run(main())
"""


async def _wait_for(predicate, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def _delivered(db: Path) -> int:
    with sqlite3.connect(db) as conn:  # a reader beside the child's writer (WAL)
        (n,) = conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'").fetchone()
    conn.close()
    return int(n)


async def test_kill_9_with_deliveries_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite"
    async with Sink() as sink:
        store = SQLiteStore(db)
        await store.open()
        now = time.time()
        gated = [new_delivery(sink.url(f"/gate?n={i}"), now=now) for i in range(12)]
        quick = [new_delivery(sink.url(f"/ok?n={i}", host="localhost"), now=now) for i in range(10)]
        await store.commit_batch([], [], gated + quick)
        await store.close()

        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db)], cwd=Path(__file__).resolve().parent.parent
        )
        try:
            # the quick ones are answered; the gated host never answered, so only its
            # probation slots (UNPROVEN_PER_HOST) hang in flight, the rest wait queued
            await _wait_for(
                lambda: sink.count("/ok") == 10 and sink.count("/gate") == UNPROVEN_PER_HOST, 30
            )
            await _wait_for(lambda: _delivered(db) == 10, 30)  # their log is committed
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL

        sink.gate.set()
        store = SQLiteStore(db)
        await store.open()
        dispatcher = Dispatcher(DeliverySettings(allow_private_targets=True), store, Metrics())
        try:
            await dispatcher.start()
            await dispatcher.wait_idle()
            rows = await store.list_deliveries(DeliveryFilter(), after_id=None, limit=100)
            assert {d.status for d in rows} == {"delivered"} and len(rows) == 22
        finally:
            await dispatcher.stop()
            await store.close()
        gate_hits = [h.path_qs for h in sink.hits if h.path_qs.startswith("/gate")]
        assert {f"/gate?n={i}" for i in range(12)} <= set(gate_hits)
        # those in flight at the kill were sent twice (at least once); no others repeat
        assert len(gate_hits) == 12 + UNPROVEN_PER_HOST
        assert sink.count("/ok") == 10  # answered and logged before the kill: not resent
