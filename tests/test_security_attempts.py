"""Every exception in an attempt is a logged attempt, and the retry policy ends it.

Through the real dispatcher, a real SQLite store and loopback sinks, on both
clients: a redirect ``Location`` yarl refuses, a host that is not Latin-1, a
host IDNA refuses.  None may leave a delivery queued for ever.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from gateway.clock import VirtualClock
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.metrics import Metrics
from gateway.store.base import Delivery
from gateway.store.sqlite import SQLiteStore
from tests.security_helpers import OK, Counting
from tests.sinks import Sink, new_delivery

T0 = 1_800_000_000.0


async def _deliver(tmp_path: Path, kind: str, url: str, host: str) -> tuple[Delivery, list[str]]:
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    clock = VirtualClock(T0)
    settings = DeliverySettings(
        transport=kind, allow_private_targets=True, max_attempts=2, schedule=[1.0], jitter=0.0
    )
    dispatcher = Dispatcher(settings, store, Metrics(), clock)
    await dispatcher.start()
    try:
        result = await store.commit_batch([], [], [new_delivery(url, now=T0, host=host)])
        dispatcher.submit(result.deliveries)
        await dispatcher.wait_idle()
        await clock.advance(2.0)
        await dispatcher.wait_idle()
        d = await store.get_delivery(result.deliveries[0].delivery_id)
        assert d is not None
        attempts = await store.list_attempts(d.delivery_id)
        return d, [a.reason for a in attempts]
    finally:
        await dispatcher.stop(timeout=1.0)
        await store.close()


@pytest.mark.parametrize(
    "location",
    ["http://a\\@b/", "http://11.0.0.1:33233\\@127.0.0.2/", "http://[::1/x", "http://h:99999/"],
)
async def test_a_redirect_nobody_can_follow_ends_the_delivery(
    tmp_path: Path, transport_kind: str, location: str
) -> None:
    async with Sink() as sink:
        url = sink.url("/redirect?to=" + quote(location, safe=""))
        d, reasons = await _deliver(tmp_path, transport_kind, url, "127.0.0.1")
    assert d.status == "failed", (d, reasons)
    assert reasons and "invalid URL" in reasons[-1], reasons


async def test_a_host_outside_latin_1_is_read_as_idna(tmp_path: Path, transport_kind: str) -> None:
    async with Counting(answer=OK) as listeners:
        url = f"http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:{listeners.port}/ok"
        d, reasons = await _deliver(tmp_path, transport_kind, url, "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ")
    assert d.status == "delivered", (d, reasons)
    assert listeners.connections == 1


@pytest.mark.parametrize("host", ["a\u200d\u0300.example", "例え\u0000.jp", "xn--a.\u2488"])
async def test_a_host_idna_refuses_is_an_invalid_url(
    tmp_path: Path, transport_kind: str, host: str
) -> None:
    d, reasons = await _deliver(tmp_path, transport_kind, f"http://{host}/ok", host)
    assert d.status == "failed", (d, reasons)
    assert len(reasons) == 1 and "invalid URL" in reasons[0], reasons
