"""Bad input gets a clear 4xx with {"error", "field"}; never a 500 (docs/bad-inputs.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.intake_helpers import Gateway, start_gateway, stop_gateway, write_config


@pytest.fixture(params=[True, False], ids=["front", "router"])
async def gw(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    """Every case twice: through gateway.http.front (as served) and through the router."""
    gateway = await start_gateway(tmp_path, write_config(tmp_path), front=request.param)
    yield gateway
    await stop_gateway(gateway)


# (method, path, kwargs for the client, expected status, expected field)
CASES: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("GET", "/postback?cid=" + "x" * 3000, {}, 413, "query"),
    ("GET", "/click/c-hand?cid=" + "y" * 3000, {}, 413, "query"),
    ("GET", "/postback?cid=" + "x" * 300, {}, 400, "cid"),
    ("GET", "/postback", {}, 400, "cid"),
    ("GET", "/postback?cid=a&payout=abc", {}, 400, "payout"),
    ("GET", "/postback?cid=a&payout=NaN", {}, 400, "payout"),
    ("GET", "/postback?cid=a&payout=1e999999", {}, 400, "payout"),
    ("GET", "/postback?cid=a&status=%F0%9F%92%A9", {}, 400, "status"),
    ("GET", "/postback?cid=a&status=", {}, 202, None),
    ("GET", "/postback?cid=a&network=", {}, 400, "network"),
    ("GET", "/click/c-hand?cid=" + "z" * 300, {}, 400, "cid"),
    ("GET", "/click/%00%01", {}, 404, "campaign_id"),
    ("POST", "/api/conversions", {"data": b"{not json"}, 400, "body"),
    ("POST", "/api/conversions", {"data": b'{"cid": "a"}'}, 400, "body"),
    ("POST", "/api/conversions", {"data": b"\xff\xfe"}, 400, "body"),
    ("POST", "/api/clicks", {"data": b"[1,"}, 400, "body"),
    ("POST", "/api/clicks", {"data": b"x" * 70000}, 413, "body"),
    (
        "POST",
        "/postback",
        {"data": b"x" * 70000, "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        413,
        "body",
    ),
    (
        "POST",
        "/postback",
        {"data": b"[1]", "headers": {"Content-Type": "application/json"}},
        400,
        "body",
    ),
    (
        "POST",
        "/postback",
        {"data": b"{bad", "headers": {"Content-Type": "application/json"}},
        400,
        "body",
    ),
    ("POST", "/postback", {"json": {"cid": "a", "payout": [1]}}, 400, "payout"),
    ("POST", "/postback", {"json": {"cid": {"x": 1}}}, 400, "cid"),
    ("POST", "/postback", {"json": {"cid": "a", "status": True}}, 400, "status"),
    ("PUT", "/postback", {}, 405, None),
    ("GET", "/click/", {}, 404, None),
    ("GET", "/click/c-hand/more", {}, 404, None),
    ("GET", "/click/nope%2Fc-hand", {}, 404, "campaign_id"),
    ("GET", "/click/c{hand}", {}, 404, None),
    ("GET", "/nowhere", {}, 404, None),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code", "field"),
    CASES,
    ids=[f"{c[0]} {c[1][:40]} -> {c[3]}" for c in CASES],
)
async def test_bad_input(
    gw: Gateway, method: str, path: str, kwargs: dict[str, Any], code: int, field: str | None
) -> None:
    resp = await gw.client.request(method, path, allow_redirects=False, **kwargs)
    assert resp.status == code, await resp.text()
    body = await resp.json()
    if code >= 400:
        assert set(body) >= {"error", "field"} and body["field"] == field


async def test_bearer_token_on_api(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text('api_token = "tok"\n' + path.read_text())
    gateway = await start_gateway(tmp_path, path)
    try:
        resp = await gateway.client.post("/api/conversions", json=[])
        assert resp.status == 401 and (await resp.json())["field"] == "Authorization"
        resp = await gateway.client.post(
            "/api/conversions", json=[], headers={"Authorization": "Bearer nope"}
        )
        assert resp.status == 401
        resp = await gateway.client.post(
            "/api/conversions", json=[], headers={"Authorization": "Bearer tok"}
        )
        assert resp.status == 200 and await resp.json() == []
        resp = await gateway.client.get("/postback", params={"cid": "x"})
        assert resp.status == 202  # /postback is not under /api
    finally:
        await stop_gateway(gateway)


async def test_head_is_not_a_click_and_api_clicks_take_numbers(gw: Gateway) -> None:
    resp = await gw.client.head("/click/c-hand")
    assert resp.status == 405
    assert (await gw.store.counts())["clicks"] == 0
    resp = await gw.client.post(
        "/api/clicks",
        json=[{"campaign_id": "c-hand", "zoneid": 42}, {"campaign_id": "c-hand", "zoneid": [1]}],
    )
    results = await resp.json()
    assert results[0]["status"] == "accepted" and results[1]["code"] == 400
    click = await gw.store.find_click(results[0]["click_id"])
    assert click is not None and click.tokens["var:zoneid"] == "42"


async def test_huge_json_number_is_a_400(gw: Gateway) -> None:
    body = b'[{"cid": "a", "txid": ' + b"9" * 5000 + b"}]"
    resp = await gw.client.post("/api/conversions", data=body)
    assert resp.status in (200, 400)
    results = await resp.json()
    if resp.status == 200:
        assert results[0]["code"] == 400
