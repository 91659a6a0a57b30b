"""The grouped delivery-log write (``SQLiteStore.record_attempts``): one JSON
parameter unpacked by json_each, the multi-row statements (chunks of 256, 128,
... 1 rows) it falls back to, and the executemany path for a group naming one
delivery twice; all must store exactly what ``record_attempt`` stores."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store.base import Attempt, NewDelivery
from gateway.store.sqlite import INLINE_MAX, SQLiteStore

NOW = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "g.sqlite")
    await s.open()
    yield s
    await s.close()


async def _deliveries(store: SQLiteStore, n: int) -> list[int]:
    rows = [
        NewDelivery(
            conversion_id=f"v{i}",
            traffic_source="ts",
            campaign_id="camp",
            rule="r",
            method="GET",
            url=f"https://h.example/pb?i={i}",
            display_url="https://h.example/pb?i=***",
            body=None,
            host="h.example",
            click_time=NOW,
            not_before=NOW,
            max_attempts=9,
            created_at=NOW,
        )
        for i in range(n)
    ]
    return [d.delivery_id for d in (await store.commit_batch([], [], rows)).deliveries]


def _attempt(
    did: int,
    *,
    started: float,
    latency: float,
    body: str = "OK",
    code: int | None = 200,
    error: str | None = None,
    outcome: str = "delivered",
    reason: str = "HTTP 200",
) -> Attempt:
    return Attempt(
        delivery_id=did,
        started_at=started,
        url=f"https://h.example/pb?i=*** #{did}",
        status_code=code,
        error=error,
        latency_ms=latency,
        body_prefix=body,
        outcome=outcome,
        reason=reason,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("json", [True, False], ids=["json", "bound"])
@pytest.mark.parametrize("n", [3, 40, 150, 257, 300])
@pytest.mark.parametrize("odd", [None, "nul", "duplicate"])
async def test_group_write_stores_every_field_exactly(
    store: SQLiteStore, odd: str | None, n: int, json: bool
) -> None:
    assert store._json  # this machine's SQLite has the JSON functions
    store._json = json  # False: as on a SQLite without them
    rng = random.Random(7)
    ids = await _deliveries(store, n)
    bodies = [
        "OK",
        "",
        'quote " back\\slash \n\t\x01',
        "\u00e9\u4e2d\U0001f600",
        "ERROR: tag invalid",
    ]
    items = []
    for i, did in enumerate(ids):
        started = NOW + rng.random() * 1000
        latency = rng.expovariate(1.0) * 37.0
        if i % 3 == 0:
            a = _attempt(
                did,
                started=started,
                latency=latency,
                code=None,
                error="connect error: refused",
                outcome="retry",
                reason="refused",
            )
            items.append((a, "queued", started + 10.0 + rng.random(), True))
        elif i % 3 == 1:
            a = _attempt(did, started=started, latency=latency, body=bodies[i % len(bodies)])
            items.append((a, "delivered", None, True))
        else:
            a = _attempt(
                did,
                started=started,
                latency=0.0,
                code=None,
                outcome="expired",
                reason="click older than the destination remembers",
                body="",
            )
            items.append((a, "expired", None, False))
    if odd == "nul":  # a body with NUL bytes is kept whole
        a = _attempt(ids[1], started=NOW, latency=1.0, body="a\x00b\x00")
        items[1] = (a, "delivered", None, True)
    if odd == "duplicate":  # one delivery twice in a group: both rows, the last state wins
        first = _attempt(
            ids[0], started=NOW, latency=1.0, code=503, outcome="retry", reason="HTTP 503"
        )
        items.insert(0, (first, "queued", NOW + 5.0, True))
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    try:
        await store.record_attempts(items)
    finally:
        store._conn.set_trace_callback(None)
    used_json = any("json_each" in sql for sql in statements)
    used_chunks = any("FROM (VALUES" in sql for sql in statements)
    # JSON text only for groups the writer thread takes (over INLINE_MAX; on
    # the loop binding costs less), and a NUL goes the bound way: SQLite's JSON
    # functions would cut the string there
    assert used_json == (json and odd is None and n > INLINE_MAX)
    assert used_chunks == (odd == "nul" or (odd is None and not used_json))

    for did in ids:
        mine = [
            (a, status, next_at, count)
            for a, status, next_at, count in items
            if a.delivery_id == did
        ]
        assert await store.list_attempts(did) == [a for a, _, _, _ in mine]
        a, status, next_at, _ = mine[-1]
        d = await store.get_delivery(did)
        assert d is not None
        assert (d.status, d.next_at, d.last_outcome, d.last_reason) == (
            status,
            next_at,
            a.outcome,
            a.reason,
        )
        assert d.attempts == sum(1 for _, _, _, count in mine if count)
        assert d.updated_at == a.started_at + a.latency_ms / 1000.0


Item = tuple[Attempt, str, float | None, bool]


async def _single_vs_group(
    path: Path, n: int, make_items: Callable[[list[int]], list[Item]]
) -> None:
    """Two stores with the same n deliveries: one logs ``make_items(ids)`` one
    attempt at a time, the other as one group; both must end up the same."""
    one, many = SQLiteStore(path / "one.sqlite"), SQLiteStore(path / "many.sqlite")
    await one.open()
    await many.open()
    try:
        ids = await _deliveries(one, n)
        assert await _deliveries(many, n) == ids
        items = make_items(ids)
        for a, status, next_at, count in items:
            await one.record_attempt(
                a,
                status=status,
                next_at=next_at,  # type: ignore[arg-type]
                count_attempt=count,
            )
        await many.record_attempts(items)  # type: ignore[arg-type]
        for did in ids:
            assert await many.list_attempts(did) == await one.list_attempts(did)
            assert await many.get_delivery(did) == await one.get_delivery(did)
    finally:
        await one.close()
        await many.close()


async def test_group_write_matches_single_writes(tmp_path: Path) -> None:
    await _single_vs_group(
        tmp_path,
        5,
        lambda ids: [
            (_attempt(did, started=NOW + did / 3, latency=did / 7), "delivered", None, True)
            for did in ids
        ],
    )


_text = st.text(max_size=40)
_attempts = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=4e9, allow_nan=False),
        st.floats(min_value=0, max_value=1e7, allow_nan=False),
        _text,
        st.none() | st.integers(100, 599),
        st.none() | _text,
        _text,
        _text,
        st.sampled_from(["queued", "delivered", "failed", "expired"]),
        st.none() | st.floats(min_value=0, max_value=4e9, allow_nan=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_attempts)
def test_json_group_write_round_trips_any_text_and_float(
    tmp_path: Path, rows: list[tuple[Any, ...]]
) -> None:
    """Whatever the texts and floats, the JSON path stores what single writes store
    (SQLite reads msgspec's shortest float repr back to the same double)."""

    path = tmp_path / f"h{abs(hash(repr(rows)))}"
    path.mkdir()

    def items(ids: list[int]) -> list[Item]:
        out: list[Item] = []
        for did, (started, latency, body, code, error, reason, url, status, nxt, count) in zip(
            ids, rows, strict=True
        ):
            a = Attempt(
                delivery_id=did,
                started_at=started,
                url=url,
                status_code=code,
                error=error,
                latency_ms=latency,
                body_prefix=body,
                outcome="retry",
                reason=reason,
            )
            out.append((a, status, nxt, count))
        return out

    asyncio.run(_single_vs_group(path, len(rows), items))
