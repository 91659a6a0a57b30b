"""Both transports (aiohttp, lean) against real loopback sinks: same seam, same answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from sinks import Blackhole, Sink

from gateway.dispatch.dispatcher import make_transport
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.aiohttp_client import Transport, TransportError


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with Sink() as s:
        yield s


@pytest.fixture(params=["aiohttp", "lean"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    t = make_transport(DeliverySettings(allow_private_targets=True, body_prefix_bytes=64,
                                        transport=request.param))
    yield t
    await t.close()


async def test_ok_answer(sink: Sink, transport: Transport) -> None:
    answer = await transport.send("GET", sink.url("/ok?x=1"), None, {}, 5.0)
    assert (answer.status, answer.body_prefix, answer.redirects) == (200, b"OK", 0)
    assert answer.final_url == sink.url("/ok?x=1")
    assert answer.elapsed > 0
    assert sink.hits[0].path_qs == "/ok?x=1"
    assert sink.hits[0].headers["User-Agent"].startswith("postback-gateway/")


async def test_post_body_and_headers(sink: Sink, transport: Transport) -> None:
    answer = await transport.send("POST", sink.url("/ok"), b'{"a":1}',
                                  {"Content-Type": "application/json"}, 5.0)
    assert answer.status == 200
    assert sink.hits[0].body == b'{"a":1}'
    assert sink.hits[0].headers["Content-Type"] == "application/json"


async def test_status_and_headers(sink: Sink, transport: Transport) -> None:
    answer = await transport.send("GET", sink.url("/status/429?retry_after=30"), None, {}, 5.0)
    assert answer.status == 429 and answer.headers["retry-after"] == "30"
    assert (await transport.send("GET", sink.url("/status/500"), None, {}, 5.0)).status == 500
    assert (await transport.send("GET", sink.url("/status/404"), None, {}, 5.0)).status == 404


async def test_keep_alive_reuses_one_connection(sink: Sink, transport: Transport) -> None:
    for _ in range(5):
        await transport.send("GET", sink.url("/ok"), None, {}, 5.0)
    assert len({h.peer_port for h in sink.hits}) == 1


async def test_body_read_stops_at_the_cap(sink: Sink, transport: Transport) -> None:
    answer = await transport.send("GET", sink.url("/big?size=5000000"), None, {}, 5.0)
    assert answer.status == 200 and answer.body_prefix == b"x" * 64
    # the connection is dropped, not drained; the next request still works
    assert (await transport.send("GET", sink.url("/ok"), None, {}, 5.0)).status == 200


async def test_timeout(sink: Sink, transport: Transport) -> None:
    with pytest.raises(TransportError) as info:
        await transport.send("GET", sink.url("/slow?delay=5"), None, {}, 0.3)
    assert not info.value.final and "timeout" in info.value.reason


async def test_hang_up_is_a_retryable_error(sink: Sink, transport: Transport) -> None:
    with pytest.raises(TransportError) as info:
        await transport.send("GET", sink.url("/close"), None, {}, 5.0)
    assert not info.value.final


async def test_connection_refused(transport: Transport) -> None:
    hole = Blackhole()
    port = hole.port
    hole.close()  # nothing listens there now
    with pytest.raises(TransportError) as info:
        await transport.send("GET", f"http://127.0.0.1:{port}/", None, {}, 5.0)
    assert not info.value.final and "connect" in info.value.reason


async def test_blackhole_times_out(transport: Transport) -> None:
    hole = Blackhole()
    try:
        with pytest.raises(TransportError) as info:
            await transport.send("GET", hole.url(), None, {}, 0.3)
        assert "timeout" in info.value.reason
    finally:
        hole.close()


async def test_redirects_up_to_three(sink: Sink, transport: Transport) -> None:
    url = sink.url("/ok?done=1")
    for _ in range(3):
        url = sink.url(f"/redirect?to={_quote(url)}")
    answer = await transport.send("GET", url, None, {}, 5.0)
    assert (answer.status, answer.redirects) == (200, 3)
    assert answer.final_url == sink.url("/ok?done=1")
    # a fourth hop is not followed: the 302 itself is the answer
    answer = await transport.send("GET", sink.url(f"/redirect?to={_quote(url)}"), None, {}, 5.0)
    assert answer.status == 302 and sink.count("/ok") == 1


async def test_relative_redirect_and_303_turns_post_into_get(
    sink: Sink, transport: Transport
) -> None:
    answer = await transport.send("POST", sink.url("/redirect?to=/ok&code=303"), b"a=1",
                                  {}, 5.0)
    assert answer.status == 200
    assert [h.method for h in sink.hits] == ["POST", "GET"]


async def test_307_keeps_the_method(sink: Sink, transport: Transport) -> None:
    await transport.send("POST", sink.url("/redirect?to=/ok&code=307"), b"a=1", {}, 5.0)
    assert [(h.method, h.body) for h in sink.hits] == [("POST", b"a=1"), ("POST", b"a=1")]


def _quote(url: str) -> str:
    return quote(url, safe="")
