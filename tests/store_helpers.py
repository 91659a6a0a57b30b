"""Backend-neutral helpers for store tests: rows in, lookups out, through the ``Store`` seam only.

``write_rows`` and ``lookup`` go through ``IntakeStore.commit_group``, so a
test written with them runs unchanged against every backend (the delivery
side's tests may use them too).  The record builders make rows with
predictable ids and values.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.base import (
    NOTHING_WANTED,
    Attempt,
    Click,
    Conversion,
    ConversionStatus,
    Delivery,
    DeliveryQueue,
    DeliveryStatus,
    Found,
    IntakeStore,
    NewDelivery,
    Wanted,
    Writes,
)

__all__ = (
    "NOW",
    "attempt",
    "click",
    "conversion",
    "lookup",
    "new_delivery",
    "record",
    "write_rows",
)

NOW = 1_800_000_000.0


async def write_rows(
    store: IntakeStore,
    clicks: Sequence[Click] = (),
    conversions: Sequence[Conversion] = (),
    deliveries: Sequence[NewDelivery] = (),
) -> list[Delivery]:
    """Write rows in one group commit, without lookups; the new deliveries, numbered."""
    writes = Writes(clicks=clicks, conversions=conversions, deliveries=deliveries)
    committed, _ = await store.commit_group(NOTHING_WANTED, lambda found: (writes, None))
    return committed.deliveries


async def lookup(
    store: IntakeStore, click_ids: Sequence[str] = (), dedup_keys: Sequence[str] = ()
) -> Found:
    """What a group commit wanting these keys would find (it writes nothing)."""
    wanted = Wanted(click_ids=list(click_ids), dedup_keys=list(dedup_keys), size=1)
    _, found = await store.commit_group(wanted, lambda found: (Writes(), found))
    return found


async def record(
    store: DeliveryQueue,
    a: Attempt,
    *,
    status: DeliveryStatus,
    next_at: float | None,
    count_attempt: bool = True,
) -> None:
    """One attempt through ``record_attempts``."""
    await store.record_attempts([(a, status, next_at, count_attempt)])


def click(i: int = 1) -> Click:
    return Click(
        click_id=f"c{i}",
        campaign_id="camp",
        traffic_source="ts",
        created_at=NOW,
        tokens={"externalid": f"x{i}"},
    )


def conversion(
    i: int = 1, status: ConversionStatus = "approved", *, payout: str = "1.5"
) -> Conversion:
    return Conversion(
        conversion_id=f"v{i}",
        click_id=f"c{i}",
        dedup_key=f"c{i}|t:{i}",
        status=status,
        created_at=NOW,
        tokens={"payout": payout},
    )


def new_delivery(
    conv: str = "v1",
    *,
    source: str = "ts",
    campaign: str = "camp",
    not_before: float = NOW,
    created: float = NOW,
) -> NewDelivery:
    return NewDelivery(
        conversion_id=conv,
        traffic_source=source,
        campaign_id=campaign,
        rule="global",
        method="GET",
        url="https://h.example/pb?g=SECRET",
        display_url="https://h.example/pb?g=***",
        body=None,
        host="h.example",
        click_time=NOW - 5,
        not_before=not_before,
        max_attempts=3,
        created_at=created,
        schedule=[1.0, 2.0],
        expires_at=NOW + 100,
        answer_rule="exoclick",
    )


def attempt(delivery_id: int, outcome: str = "retry", *, started: float = NOW + 1) -> Attempt:
    return Attempt(
        delivery_id=delivery_id,
        started_at=started,
        url="https://h.example/pb?g=***",
        status_code=503,
        error=None,
        latency_ms=12.5,
        body_prefix="busy",
        outcome=outcome,
        reason="HTTP 503",
    )
