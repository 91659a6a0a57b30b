"""gateway.http.front: the hot routes answered before the router, the rest handed on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from gateway.http.front import GatewayRunner, plain_query_pairs
from tests.intake_helpers import start_gateway, stop_gateway, write_config


async def test_the_runner_puts_the_front_ahead_of_the_application(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, write_config(tmp_path))
    try:
        runner = gw.client.server.runner
        assert isinstance(runner, GatewayRunner)
        assert runner.server is not None
        handler = runner.server.request_handler
        assert getattr(handler, "__qualname__", "") == "front.<locals>.handle"
    finally:
        await stop_gateway(gw)


async def test_hot_and_handed_on_routes_answer_alike(tmp_path: Path) -> None:
    """A click by its plain and its percent-encoded path (router), then postbacks
    by GET and POST (front) and /health (router): one gateway, one store."""
    gw = await start_gateway(tmp_path, write_config(tmp_path))
    try:
        plain = await gw.client.get("/click/c-hand", params={"cid": "P"}, allow_redirects=False)
        encoded = await gw.client.get("/click/c%2Dhand", params={"cid": "E"}, allow_redirects=False)
        assert plain.status == encoded.status == 302
        assert plain.headers["Cache-Control"] == encoded.headers["Cache-Control"] == "no-store"
        click_id = plain.headers["Location"].split("sub=")[1].split("&")[0]
        got = await gw.client.get("/postback", params={"cid": click_id, "txid": "t1"})
        assert got.status == 200 and (await got.json())["status"] == "accepted"
        posted = await gw.client.post("/postback", data={"cid": click_id, "txid": "t1"})
        assert posted.status == 200 and (await posted.json())["status"] == "duplicate"
        health = await gw.client.get("/health")
        assert health.status == 200 and await health.json() == {"status": "ok"}
        counts = await gw.store.counts()
        assert counts["clicks"] == 2 and counts["conversions"] == 1
    finally:
        await stop_gateway(gw)


_PLAIN = st.text(alphabet="ab1-_.~+=&;:@!$'()*,/?", max_size=40)


@given(_PLAIN)
def test_plain_query_pairs_read_a_query_as_yarl_does(query: str) -> None:
    url = URL.build(path="/postback", query_string=query, encoded=True)
    assert plain_query_pairs(query) == list(url.query.items())


@pytest.mark.parametrize("query", ["cid=a%20b", "cid=a#frag", "%41=1"])
def test_queries_that_need_decoding_are_left_to_yarl(query: str) -> None:
    assert plain_query_pairs(query) is None


async def test_expect_100_continue_is_answered_before_the_body(tmp_path: Path) -> None:
    """curl sends ``Expect: 100-continue`` for bodies over 1 KiB and waits for the
    interim answer; the front leaves such requests to the Application's handler."""
    gw = await start_gateway(tmp_path, write_config(tmp_path))
    try:
        server = gw.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        body = b"cid=nope&txid=e1&payout=1"
        writer.write(
            b"POST /postback HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(body)
        await writer.drain()
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert final.startswith(b"HTTP/1.1 202")  # unattributed, but taken
        writer.close()
        await writer.wait_closed()
        bogus = await gw.client.post("/postback", data=b"cid=x", headers={"Expect": "bogus"})
        assert bogus.status == 417
    finally:
        await stop_gateway(gw)
