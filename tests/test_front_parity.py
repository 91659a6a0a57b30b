"""gateway.http.front against the router: the same hostile requests, the same answers.

Two gateways on the same config, one served as ``serve`` serves it (hot routes
answered by the front) and one through the plain AppRunner (router and
middleware), get the same few hundred generated requests in the same order:
odd paths, methods, duplicate and blank parameters, '+', valid and broken
percent-escapes, fragments, encoded non-ASCII.  (Targets that are not valid
HTTP at all, such as raw spaces, are refused by aiohttp's parser before
either path runs.)  Status codes and the meaning of every
JSON answer must match; only the generated ids may differ.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from tests.intake_helpers import Gateway, start_gateway, stop_gateway, write_config

PATHS = [
    "/postback",
    "/postback",
    "/postback",
    "/click/c-hand",
    "/click/c-exo",
    "/click/nope",
    "/click/",
    "/click/c%2Dhand",
    "/click/c-hand/x",
    "/postback/",
    "/Postback",
    "/click/%ZZ",
]
NAMES = [
    "cid",
    "clickid",
    "subid",
    "txid",
    "tid",
    "payout",
    "sum",
    "status",
    "event",
    "et",
    "network",
    "secret",
    "externalid",
    "external_id",
    "var1",
    "var:zone",
    "zoneid",
    "campaign",
    "traffic_source",
    "currency",
    "",
    "a+b",
    "%63id",
]
VALUES = [
    "",
    "1",
    "1.25",
    "-3",
    "1e3",
    "abc",
    "approved",
    "pending",
    "rejected",
    "sale",
    "2",
    "lead",
    "near",
    "far",
    "near-secret",
    "x+y",
    "%20",
    "%ZZ",
    "%FF",
    "%C3%A9",
    "%E2%82",
    "a%26b",
    "a=b",
    "NaN",
    "x" * 300,
    "t-1",
    "t-2",
    "c-hand",
    "hand",
    "hand",
    "exo",
]


def _target(rng: random.Random) -> tuple[str, str]:
    method = rng.choice(["GET"] * 6 + ["POST", "HEAD", "PUT"])
    path = rng.choice(PATHS)
    pairs = []
    if rng.random() < 0.4:  # attributed by external id: its rules render the values
        pairs += [
            f"externalid={rng.choice(['e', 'e+', 'e%2B', 'e%C3%A9'])}{rng.randrange(20)}",
            "campaign=c-hand",
        ]
    for _ in range(rng.randrange(0, 7)):
        name, value = rng.choice(NAMES), rng.choice(VALUES)
        pairs.append(name if rng.random() < 0.05 else f"{name}={value}")
    query = "&".join(pairs)
    if rng.random() < 0.1:
        query += "&"
    target = path + ("?" + query if query or rng.random() < 0.1 else "")
    if rng.random() < 0.05:
        target += "#frag"
    return method, target


def _meaning(status: int, headers: Any, body: Any) -> tuple[Any, ...]:
    """What an answer says, without the ids generated per gateway."""
    if status in (301, 302):
        return status, URL(headers["Location"]).path
    if not isinstance(body, dict):
        return status, type(body).__name__
    kept = {k: v for k, v in body.items() if k not in ("conversion_id", "error")}
    return status, sorted(kept.items())


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Gateway]]:
    (tmp_path / "front").mkdir()
    (tmp_path / "router").mkdir()
    front = await start_gateway(tmp_path / "front", write_config(tmp_path / "front"))
    router = await start_gateway(
        tmp_path / "router", write_config(tmp_path / "router"), front=False
    )
    yield front, router
    await stop_gateway(front)
    await stop_gateway(router)


async def _ask(gw: Gateway, method: str, target: str) -> tuple[Any, ...]:
    resp = await gw.client.request(method, URL(target, encoded=True), allow_redirects=False)
    raw = await resp.read()
    body: Any = None
    if raw and resp.content_type == "application/json":
        body = await resp.json()
    elif raw:
        body = raw
    return _meaning(resp.status, resp.headers, body)


async def test_front_and_router_answer_generated_requests_alike(
    pair: tuple[Gateway, Gateway],
) -> None:
    front, router = pair
    rng = random.Random(20261123)
    statuses = set()
    for _ in range(300):
        method, target = _target(rng)
        got, expected = await _ask(front, method, target), await _ask(router, method, target)
        assert got == expected, (method, target)
        statuses.add(got[0])
        assert got[0] < 500, (method, target, got)
    assert {200, 202, 302, 400, 404, 405} <= statuses  # the generator reached every kind
    assert (await front.store.counts()) == (await router.store.counts())
    rendered = [d.url for d in front.sink.submitted]
    assert len(rendered) >= 10  # some conversions matched rules: values reached URLs
    assert rendered == [d.url for d in router.sink.submitted]
