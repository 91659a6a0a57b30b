"""Answer rules read the text the network meant: a byte-order mark dropped, a
gzip or deflate body inflated, on both clients, through the real dispatcher.

An ExoClick refusal (``ERROR: ...`` with status 200) dressed up either way
must still be a refusal, never counted delivered.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest

from gateway.clock import VirtualClock
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.body import answer_text, decompressed
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore
from tests.security_helpers import Counting
from tests.sinks import new_delivery

T0 = 1_800_000_000.0
REFUSAL = b"ERROR: goal invalid"


def _answer(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


ANSWERS = {
    "utf-8 BOM": _answer(b"\xef\xbb\xbf" + REFUSAL, "Content-Type: text/plain"),
    "utf-16 BOM": _answer(b"\xff\xfe" + "ERROR: goal invalid".encode("utf-16-le")),
    "gzip": _answer(gzip.compress(REFUSAL), "Content-Encoding: gzip"),
    "deflate": _answer(zlib.compress(REFUSAL), "Content-Encoding: deflate"),
    "gzip and BOM": _answer(gzip.compress(b"\xef\xbb\xbf" + REFUSAL), "Content-Encoding: gzip"),
}


@pytest.mark.parametrize("name", list(ANSWERS))
async def test_a_dressed_up_refusal_is_still_a_refusal(
    tmp_path: Path, transport_kind: str, name: str
) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    clock = VirtualClock(T0)
    settings = DeliverySettings(transport=transport_kind, allow_private_targets=True)
    dispatcher = Dispatcher(settings, store, Metrics(), clock)
    await dispatcher.start()
    try:
        async with Counting(answer=ANSWERS[name]) as sink:
            url = f"http://127.0.0.1:{sink.port}/tag.php?goal=g&tag=x"
            d = new_delivery(url, now=T0, answer_rule="exoclick")
            result = await store.commit_batch([], [], [d])
            dispatcher.submit(result.deliveries)
            await dispatcher.wait_idle()
        row = await store.get_delivery(result.deliveries[0].delivery_id)
        assert row is not None
        assert row.status == "failed", (name, row)
        (attempt,) = await store.list_attempts(row.delivery_id)
        assert attempt.body_prefix.startswith("ERROR: goal invalid"), attempt
    finally:
        await dispatcher.stop(timeout=1.0)
        await store.close()


def test_inflating_is_bounded() -> None:
    bomb = gzip.compress(b"x" * 10_000_000)
    assert len(decompressed("gzip", bomb, 512)) == 512
    assert decompressed("gzip", b"not gzip", 512) == b"not gzip"
    assert decompressed("br", b"abc", 512) == b"abc"


def test_declared_charset_is_honoured() -> None:
    text = "ERREUR: refusé".encode("latin-1")
    assert answer_text(text, {"content-type": "text/plain; charset=ISO-8859-1"}) == "ERREUR: refusé"
    assert answer_text(text, {"content-type": "text/plain; charset=bogus"}).startswith("ERREUR")
