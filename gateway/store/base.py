"""The store seam: what intake, the dispatcher and the API need from durable state.

One real implementation per backend (``sqlite.py`` first, PostgreSQL later),
each tested for real.  Records are msgspec structs so they cross the seam
without copies or dict juggling.  Timestamps are Unix seconds (float).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

__all__ = (
    "Attempt",
    "Click",
    "CommitResult",
    "Conversion",
    "ConversionStatus",
    "Delivery",
    "DeliveryFilter",
    "DeliveryStatus",
    "NewDelivery",
    "Store",
)

DeliveryStatus = Literal["queued", "delivered", "failed", "expired"]
ConversionStatus = Literal["pending", "approved", "rejected"]


#: The records below are created by the thousand per second on the hot path
#: and hold only strings, numbers and flat containers of them, so they cannot
#: be part of a reference cycle: ``gc=False`` keeps them out of the cyclic
#: GC's young generation (measured with bench/intake_wrk.sh's config: ~2 us
#: less loop CPU per conversion, three interleaved pairs).


class Click(msgspec.Struct, kw_only=True, gc=False):
    """One visit. ``tokens`` holds every token value keyed by canonical name."""

    click_id: str
    campaign_id: str
    traffic_source: str
    created_at: float
    tokens: dict[str, str]


class Conversion(msgspec.Struct, kw_only=True, gc=False):
    conversion_id: str
    click_id: str | None
    dedup_key: str
    status: ConversionStatus
    created_at: float
    tokens: dict[str, str]


class NewDelivery(msgspec.Struct, kw_only=True, gc=False):
    """A rendered postback, written in the same transaction as its conversion."""

    conversion_id: str
    traffic_source: str
    campaign_id: str
    rule: str
    method: Literal["GET", "POST"]
    url: str
    display_url: str  # the URL with account secrets replaced by ***
    body: str | None
    host: str
    click_time: float | None
    not_before: float  # first attempt not before this time (rule delay)
    max_attempts: int  # attempts in all, first included
    created_at: float
    schedule: list[float] | None = None  # retry delays (s); None: constants.RETRY_SCHEDULE
    expires_at: float | None = None  # click time + destination's max_click_age
    answer_rule: str | None = None  # preset name whose body rule judges the answer


class Delivery(NewDelivery, kw_only=True):
    """A delivery as stored, with its progress."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    next_at: float | None
    last_outcome: str | None = None
    last_reason: str | None = None
    updated_at: float = 0.0


class Attempt(msgspec.Struct, kw_only=True, gc=False):
    """One try at sending a delivery, for the delivery log."""

    delivery_id: int
    started_at: float
    url: str  # display (redacted) URL actually requested, after redirects
    status_code: int | None
    error: str | None
    latency_ms: float
    body_prefix: str
    outcome: str  # delivered | rejected | retry | expired | paused
    reason: str


class DeliveryFilter(msgspec.Struct, kw_only=True):
    status: DeliveryStatus | None = None
    traffic_source: str | None = None
    campaign_id: str | None = None
    since: float | None = None


class CommitResult(msgspec.Struct, kw_only=True):
    """What one group commit produced: new deliveries with their ids, to dispatch."""

    deliveries: list[Delivery]


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def find_click(self, click_id: str) -> Click | None: ...

    async def commit_batch(
        self,
        clicks: Sequence[Click],
        conversions: Sequence[Conversion],
        deliveries: Sequence[NewDelivery],
    ) -> CommitResult:
        """Write everything in one transaction; return once it is durable."""
        ...

    async def due_deliveries(self, now: float, limit: int,
                             after: tuple[float, int] | None = None) -> list[Delivery]:  # fmt: skip
        """Queued deliveries whose ``next_at`` has come, by (next_at, delivery_id);
        ``after``: only those past that key (paging)."""
        ...

    async def queued_count(self) -> int:
        """How many deliveries wait to be sent (status ``queued``): the dispatcher's
        queue depth at start, which it keeps up to date from there."""
        ...

    async def record_attempt(
        self,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_at: float | None,
        count_attempt: bool = True,
    ) -> None:
        """Log one attempt and move its delivery on, in one transaction."""
        ...

    async def list_deliveries(
        self, filters: DeliveryFilter, *, after_id: int | None, limit: int
    ) -> list[Delivery]: ...

    async def list_attempts(self, delivery_id: int) -> list[Attempt]: ...

    async def requeue(
        self, filters: DeliveryFilter, *, ids: Sequence[int] | None, now: float
    ) -> list[Delivery]:
        """Put failed (or given) deliveries back in the queue; return them to dispatch."""
        ...

    async def purge(self, older_than: float) -> int:
        """Delete finished deliveries (and their attempts) older than a time."""
        ...
