"""Leases: which process sends a delivery, and how another takes over when it dies.

A queued delivery carries ``lease_owner`` (a process's random id) and
``lease_until``.  A process leases what it commits (``commit.run_group``),
what it claims (``claim``: due rows no live lease of another process holds,
taken with ``FOR UPDATE SKIP LOCKED`` so two processes claiming at once get
different rows without waiting on each other) and what its API requeues.
While it lives it renews every lease it holds (``renew``, a few times per
lease); at a clean stop it lets them go (``release``).  When it dies its
leases run out within one lease, and any refill may claim those rows.

The at-least-once bound: a delivery is sent twice only if its attempt was
under way (or done but not yet recorded) when its process died, or when that
process stalled for longer than a lease; everything else is sent once.  The
attempt log records each try that was recorded, so a double shows there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.store.base import AttemptRecord, Delivery
from gateway.store.postgres.rows import Conn, clean, delivery
from gateway.store.postgres.schema import DELIVERY_COLUMNS

__all__ = ("claim", "record", "release", "renew")

_CLAIMABLE = (
    "status = 'queued' AND next_at <= $1"
    " AND (lease_until IS NULL OR lease_until <= $2 OR lease_owner = $3)"
)
_CLAIM = (
    "WITH picked AS (SELECT delivery_id FROM deliveries WHERE {where}"
    " ORDER BY next_at, delivery_id LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " UPDATE deliveries AS d SET lease_owner = $3, lease_until = $5"
    f" FROM picked WHERE d.delivery_id = picked.delivery_id RETURNING"
    f" {', '.join('d.' + c.strip() for c in DELIVERY_COLUMNS.split(','))}"
)
_CLAIM_FIRST = _CLAIM.format(where=_CLAIMABLE)
_CLAIM_AFTER = _CLAIM.format(where=_CLAIMABLE + " AND (next_at, delivery_id) > ($6, $7)")
_RENEW = (
    "UPDATE deliveries SET lease_until = $2"
    " WHERE lease_owner = $1 AND status = 'queued' AND lease_until < $2"
)
_RELEASE = (
    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
    " WHERE lease_owner = $1 AND status = 'queued'"
)
_INSERT_ATTEMPTS = (
    "INSERT INTO attempts (delivery_id, started_at, url, status_code, error, latency_ms,"
    " body_prefix, outcome, reason) SELECT * FROM unnest($1::bigint[], $2::float8[],"
    " $3::text[], $4::int[], $5::text[], $6::float8[], $7::text[], $8::text[], $9::text[])"
)
#: Only a queued delivery moves on: once another process recorded it done
#: (after taking over a lapsed lease), a late attempt is logged but cannot
#: put it back in the queue.
_MOVE = (
    "UPDATE deliveries AS d SET status = v.status, next_at = v.next_at,"
    " attempts = d.attempts + v.count, last_outcome = v.outcome, last_reason = v.reason,"
    " updated_at = v.updated_at FROM unnest($1::bigint[], $2::text[], $3::float8[],"
    " $4::int[], $5::text[], $6::text[], $7::float8[])"
    " AS v(id, status, next_at, count, outcome, reason, updated_at)"
    " WHERE d.delivery_id = v.id AND d.status = 'queued'"
)


async def claim(
    conn: Conn,
    owner: str,
    now: float,
    due_by: float,
    limit: int,
    lease: float,
    after: tuple[float, int] | None,
) -> list[Delivery]:
    """Due rows free for ``owner``, now leased to it, by (next_at, delivery_id)."""
    args: list[Any] = [due_by, now, owner, limit, now + lease]
    if after is None:
        rows = await conn.fetch(_CLAIM_FIRST, *args)
    else:
        rows = await conn.fetch(_CLAIM_AFTER, *args, after[0], after[1])
    found = [delivery(r) for r in rows]
    found.sort(key=lambda d: (d.next_at or 0.0, d.delivery_id))
    return found


async def renew(conn: Conn, owner: str, until: float) -> int:
    """Every queued delivery ``owner`` holds stays its until ``until``; how many."""
    status = await conn.execute(_RENEW, owner, until)
    return int(status.rsplit(" ", 1)[-1])


async def release(conn: Conn, owner: str) -> None:
    """``owner`` stops: its queued deliveries are free for the next claim at once."""
    await conn.execute(_RELEASE, owner)


async def record(conn: Conn, items: Sequence[AttemptRecord]) -> None:
    """Attempts into the log and their deliveries moved on, in one transaction."""
    attempts = [a for a, _, _, _ in items]
    async with conn.transaction():
        await conn.execute(
            _INSERT_ATTEMPTS,
            [a.delivery_id for a in attempts],
            [a.started_at for a in attempts],
            [clean(a.url) for a in attempts],
            [a.status_code for a in attempts],
            [clean(a.error) for a in attempts],
            [a.latency_ms for a in attempts],
            [clean(a.body_prefix) for a in attempts],
            [a.outcome for a in attempts],
            [clean(a.reason) for a in attempts],
        )
        # one UPDATE ... FROM touches a row once: a group naming a delivery
        # twice moves it in rounds, in the order given
        rounds: list[list[AttemptRecord]] = []
        times: dict[int, int] = {}
        for item in items:
            n = times.get(item[0].delivery_id, 0)
            times[item[0].delivery_id] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(item)
        for group in rounds:
            await conn.execute(
                _MOVE,
                [a.delivery_id for a, _, _, _ in group],
                [status for _, status, _, _ in group],
                [next_at for _, _, next_at, _ in group],
                [1 if count else 0 for _, _, _, count in group],
                [a.outcome for a, _, _, _ in group],
                [clean(a.reason) for a, _, _, _ in group],
                [a.started_at + a.latency_ms / 1000.0 for a, _, _, _ in group],
            )
