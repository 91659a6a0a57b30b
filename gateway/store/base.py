"""The store seam: what intake, the dispatcher and the API need from durable state.

Split by who calls: ``IntakeStore`` (the batcher's group commit),
``DeliveryQueue`` (the dispatcher, retention included) and ``DeliveryLog``
(the delivery API, replay included); ``Store`` is all three, and
``backends.open_store`` picks one by URL.  Each backend (``sqlite/`` first)
implements them and passes the one parametrised store suite
(``tests/store_fixtures.py``).  Records are msgspec structs so they cross the
seam without copies or dict juggling.  Timestamps are Unix seconds (float).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, TypeVar, runtime_checkable

import msgspec

__all__ = (
    "DELIVERY_STATUSES",
    "NOTHING_WANTED",
    "Attempt",
    "AttemptRecord",
    "Click",
    "CommitResult",
    "Conversion",
    "ConversionFilter",
    "ConversionStatus",
    "Delivery",
    "DeliveryFilter",
    "DeliveryLog",
    "DeliveryQueue",
    "DeliveryStatus",
    "Found",
    "HostAttempt",
    "IntakeStore",
    "NewDelivery",
    "QueueAge",
    "Rewrite",
    "Store",
    "Wanted",
    "Writes",
    "held_record",
)

T = TypeVar("T")

#: ``held``: a placeholder left in it, never sent; ``dry_run``: shadow mode stored
#: it as rendered and sent nothing.  Both final.
DeliveryStatus = Literal["queued", "delivered", "failed", "expired", "held", "dry_run"]
#: Every delivery status, in the order the docs list them.
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = (
    "queued",
    "delivered",
    "failed",
    "expired",
    "held",
    "dry_run",
)
ConversionStatus = Literal["pending", "approved", "rejected"]


#: The records below are created by the thousand per second on the hot path
#: and hold only strings, numbers and flat containers of them, so they cannot
#: be part of a reference cycle: ``gc=False`` keeps them out of the cyclic
#: GC's young generation, which the event loop would otherwise pay to walk.


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
    #: Begins with ``click_id`` when there is one (``intake.decide.dedup_key``):
    #: the SQLite store finds a click's conversions through this key's index.
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
    schedule: list[float] | None = None  # retry delays (s); None: the settings' (dispatch.retry)
    expires_at: float | None = None  # click time + destination's max_click_age
    answer_rule: str | None = None  # preset name whose body rule judges the answer
    #: Why it must not be sent (a network's placeholder, an empty click id): it is
    #: stored ``held``, never queued.  None: an ordinary delivery.
    held: str | None = None


class Delivery(NewDelivery, kw_only=True):
    """A delivery as stored, with its progress."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    next_at: float | None
    last_outcome: str | None = None
    last_reason: str | None = None
    updated_at: float = 0.0


def held_record(d: NewDelivery, delivery_id: int) -> Delivery:
    """A delivery as stored ``held`` (``NewDelivery.held``): every backend hands it back
    so, and it waits for a fix-and-replay, never for the dispatcher."""
    fields = {f: getattr(d, f) for f in NewDelivery.__struct_fields__}
    return Delivery(
        **fields,
        delivery_id=delivery_id,
        status="held",
        attempts=0,
        next_at=None,
        last_outcome="held",
        last_reason=d.held,
        updated_at=d.created_at,
    )


class Attempt(msgspec.Struct, kw_only=True, gc=False):
    """One try at sending a delivery, for the delivery log."""

    delivery_id: int
    started_at: float
    url: str  # display (redacted) URL actually requested, after redirects
    status_code: int | None
    error: str | None
    latency_ms: float
    body_prefix: str
    outcome: str  # delivered | rejected | retry | expired | paused | dry_run
    reason: str


class HostAttempt(msgspec.Struct, frozen=True, gc=False):
    """One recent attempt as a host's health sees it (console hosts page)."""

    host: str
    outcome: str
    latency_ms: float


#: One attempt for the log with the state its delivery moves to:
#: (attempt, new status, next_at, whether it counts against max_attempts).
AttemptRecord = tuple[Attempt, DeliveryStatus, float | None, bool]


class DeliveryFilter(msgspec.Struct, kw_only=True):
    """Which deliveries: every field set must hold (None: any)."""

    status: DeliveryStatus | None = None
    traffic_source: str | None = None
    campaign_id: str | None = None
    since: float | None = None
    #: created before this time
    until: float | None = None
    conversion_id: str | None = None
    rule: str | None = None
    #: destination host
    host: str | None = None
    #: the conversion's click (our click id)
    click_id: str | None = None
    #: the network's click id, on the click or on an upstream tracker's conversion
    externalid: str | None = None
    #: the affiliate network's transaction id
    transaction_id: str | None = None

    def by_conversion(self) -> bool:
        """Whether the filter names conversions (then only theirs are read)."""
        return not (
            self.conversion_id is None
            and self.click_id is None
            and self.externalid is None
            and self.transaction_id is None
        )


class ConversionFilter(msgspec.Struct, kw_only=True):
    """Which conversions a lookup finds: every field set must hold."""

    click_id: str | None = None
    externalid: str | None = None
    transaction_id: str | None = None
    since: float | None = None
    until: float | None = None


class Rewrite(msgspec.Struct, kw_only=True):
    """A delivery rendered again from the current config (fix-and-replay)."""

    delivery_id: int
    url: str
    display_url: str
    body: str | None
    host: str
    method: Literal["GET", "POST"]
    answer_rule: str | None
    #: still not sendable (a placeholder): stored ``held`` with this reason
    held: str | None = None


class CommitResult(msgspec.Struct, kw_only=True):
    """What one group commit produced: new deliveries with their ids, to dispatch."""

    deliveries: list[Delivery]


class Wanted(msgspec.Struct, kw_only=True, gc=False):
    """What a group commit looks up before it decides.

    ``size`` is how many inputs the group holds: a backend may choose how to
    run a commit by its size (SQLite runs small ones on the event loop).
    """

    click_ids: list[str]
    dedup_keys: list[str]
    size: int = 0


class Found(msgspec.Struct, kw_only=True, gc=False):
    """What the lookups found, as of the group's own transaction."""

    clicks: dict[str, Click]
    conversions: dict[str, Conversion]


class Writes(msgspec.Struct, kw_only=True, gc=False):
    """The rows a group commit writes: a conversion whose dedup key exists is an update."""

    clicks: Sequence[Click] = ()
    conversions: Sequence[Conversion] = ()
    deliveries: Sequence[NewDelivery] = ()


#: Nothing to look up: a group that only writes.
NOTHING_WANTED = Wanted(click_ids=[], dedup_keys=[])


class IntakeStore(Protocol):
    """The intake's one write: look up, decide, write, in one transaction."""

    async def commit_group(
        self, wanted: Wanted, decide: Callable[[Found], tuple[Writes, T]]
    ) -> tuple[CommitResult, T]:
        """Look up ``wanted`` inside one write transaction, call the pure ``decide``
        with what was found, write what it returns, commit; return the new
        deliveries (numbered) and ``decide``'s second value.

        ``decide`` does no I/O and may run on any thread, so a backend can call
        it between awaited queries.  If it raises, nothing is written.  Groups
        commit one after another: each one's lookups see every earlier commit.
        """
        ...


@runtime_checkable
class QueueAge(Protocol):
    """Optional: when the oldest queued delivery was created (``/metrics``).

    Apart from ``DeliveryQueue`` so a backend without it still is a Store;
    the metric is left out for it.
    """

    async def oldest_queued_at(self) -> float | None:
        """``created_at`` of the oldest ``queued`` delivery; None when none waits."""
        ...


class DeliveryQueue(Protocol):
    """What the dispatcher needs: claims on due rows, the queue depth, the attempt log,
    retention."""

    async def claim_due(
        self,
        now: float,
        limit: int,
        lease: float,
        *,
        ahead: float = 0.0,
        after: tuple[float, int] | None = None,
    ) -> list[Delivery]:
        """Claim queued deliveries due by ``now + ahead`` for this process, by
        (next_at, delivery_id); ``after``: only those past that key (paging).

        A delivery is claimable while no live lease holds it, or while this
        store's own does: a backend shared by several processes (PostgreSQL)
        skips rows another process leased until later than ``now`` and leases
        what it returns to itself until ``now + lease``; a backend with one
        process (SQLite) has nobody to share with and returns the due rows.
        """
        ...

    async def queued_count(self) -> int:
        """How many deliveries wait to be sent (status ``queued``)."""
        ...

    async def record_attempts(self, items: Sequence[AttemptRecord]) -> None:
        """Log many attempts and move each delivery on, in one transaction."""
        ...

    async def purge(self, older_than: float) -> int:
        """Delete finished deliveries (and their attempts) older than a time."""
        ...


class DeliveryLog(Protocol):
    """What the delivery API reads, and its replay."""

    async def get_click(self, click_id: str) -> Click | None: ...

    async def get_conversion(self, conversion_id: str) -> Conversion | None: ...

    async def find_conversions_by(
        self, filters: ConversionFilter, *, limit: int
    ) -> list[Conversion]:
        """Conversions matching ``filters`` (at least one key set), oldest first, at
        most ``limit``.  ``externalid`` matches the conversion's own (an upstream
        tracker's) or its click's."""
        ...

    async def list_deliveries(
        self, filters: DeliveryFilter, *, after_id: int | None, limit: int
    ) -> list[Delivery]:
        """Deliveries matching ``filters``, by id, past ``after_id``, at most ``limit``."""
        ...

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    async def list_attempts(self, delivery_id: int) -> list[Attempt]:
        """A delivery's attempts, oldest first."""
        ...

    async def recent_host_attempts(self, *, since: float, limit: int) -> list[HostAttempt]:
        """The newest attempts started at or after ``since``, newest first, at most
        ``limit``, each with its delivery's host: what a host's health is read from."""
        ...

    async def requeue(
        self, filters: DeliveryFilter, *, ids: Sequence[int] | None, now: float
    ) -> list[Delivery]:
        """Put failed deliveries matching ``filters`` (or the given ids, any
        finished status) back in the queue with a fresh attempt budget, due at
        ``now``; return them, by id, for the caller to dispatch."""
        ...

    async def rewrite(self, items: Sequence[Rewrite], *, now: float) -> list[Delivery]:
        """Replace the given deliveries' URL, body, host, method and answer rule and
        queue them afresh (due at ``now``, a fresh attempt budget), or store them
        ``held``; queued ones are left alone.  Returns those changed, by id; the
        attempt log keeps their history."""
        ...

    async def add_missing(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        """Write the deliveries whose (conversion_id, rule) has none yet, in one
        transaction (a backfill run twice sends once); returns those written."""
        ...


class Store(IntakeStore, DeliveryQueue, DeliveryLog, Protocol):
    """One backend: every seam, opened and closed together.

    ``shared``: whether several gateway processes may run on one store at
    once (``serve --workers N``, or instances on several hosts); ``lease``:
    the seconds a delivery it commits or claims stays this process's without
    being renewed (how soon another process takes over after a crash).
    """

    shared: bool
    lease: float

    async def open(self) -> None: ...

    async def close(self) -> None: ...
