"""Attempt groups that ride the next intake transaction.

The delivery log's commits and intake's commits each pay SQLite's fixed cost
of a ``COMMIT``, and they dirty the same pages (``deliveries``,
``deliveries_due``, ``sqlite_sequence``) a few milliseconds apart.  While
conversions keep arriving, a group of attempts waits up to ``RIDE_WAIT`` for
the next intake group commit and is written inside its transaction, under a
savepoint of its own: a group that fails is rolled back alone and never
fails a conversion.  With no intake commit in the last ``INTAKE_QUIET``
seconds, or when the wait is over, the waiting groups are written in a
transaction of their own.  Either way the caller returns once its rows are
committed, as before; what the wait costs is only how late an attempt's
record lands (nobody waits on it but the dispatcher's bookkeeping).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ("INTAKE_QUIET", "RIDE_WAIT", "Ride", "Rides", "write_each")


#: The longest a group waits for an intake transaction to ride in.
RIDE_WAIT: Final = 0.004
#: Groups wait for a ride only while intake committed this recently.
INTAKE_QUIET: Final = 0.02

#: One group's statements, run inside someone's transaction.
Work = Callable[[sqlite3.Connection], None]
#: What became of one group: None (written) or why not.
Error = BaseException | None


class Ride:
    """One group of attempt rows and the future its caller awaits."""

    __slots__ = ("future", "work")

    def __init__(self, work: Work, future: asyncio.Future[None]) -> None:
        self.work = work
        self.future = future


def write_each(db: sqlite3.Connection, rides: list[Ride]) -> list[Error]:
    """Each group under a savepoint of its own, inside the open transaction:
    one group's failure undoes that group only.  Its error, or None, in order."""
    errors: list[Error] = []
    for ride in rides:
        db.execute("SAVEPOINT attempt_group")
        try:
            ride.work(db)
        except Exception as exc:
            db.execute("ROLLBACK TO attempt_group")
            errors.append(exc)
        else:
            errors.append(None)
        db.execute("RELEASE attempt_group")
    return errors


class Rides:
    """The groups waiting for a ride; used on the event loop only."""

    def __init__(self, write_alone: Callable[[list[Ride]], Awaitable[list[Error]]]) -> None:
        self._write_alone = write_alone
        self._waiting: list[Ride] = []
        self._timer: asyncio.TimerHandle | None = None
        self._alone: set[asyncio.Task[None]] = set()
        self._intake_at = -INTAKE_QUIET  # monotonic time of the last intake commit

    def worth_waiting(self) -> bool:
        """Whether an intake commit is likely soon: one ran a moment ago."""
        return time.monotonic() - self._intake_at < INTAKE_QUIET

    def board(self, work: Work) -> asyncio.Future[None]:
        """Queue a group; the future resolves once its rows are committed."""
        loop = asyncio.get_running_loop()
        ride = Ride(work, loop.create_future())
        self._waiting.append(ride)
        if self._timer is None:
            self._timer = loop.call_later(RIDE_WAIT, self._depart)
        return ride.future

    def intake_committing(self) -> None:
        """An intake group commit starts: groups may wait for the next one."""
        self._intake_at = time.monotonic()

    def take(self) -> list[Ride]:
        """The waiting groups, for the intake transaction starting now."""
        rides = self._waiting
        if rides:
            self._waiting = []
            self._cancel_timer()
        return rides

    def settle(self, rides: list[Ride], errors: list[Error]) -> None:
        """After the transaction that wrote ``rides`` committed."""
        for ride, error in zip(rides, errors, strict=True):
            if ride.future.done():
                continue
            if error is None:
                ride.future.set_result(None)
            else:
                ride.future.set_exception(error)

    def put_back(self, rides: list[Ride]) -> None:
        """Groups whose ride was rolled back: they go on their own, now."""
        if rides:
            self._waiting[:0] = rides
            self._cancel_timer()
            self._depart()

    async def flush(self) -> None:
        """Write every waiting group and wait for those already on their way."""
        self._cancel_timer()
        self._depart()
        while self._alone:
            await asyncio.gather(*self._alone, return_exceptions=True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _depart(self) -> None:
        self._timer = None
        rides, self._waiting = self._waiting, []
        if not rides:
            return
        task = asyncio.get_running_loop().create_task(self._alone_then_settle(rides))
        self._alone.add(task)
        task.add_done_callback(self._alone.discard)

    async def _alone_then_settle(self, rides: list[Ride]) -> None:
        try:
            errors = await self._write_alone(rides)
        except Exception as exc:  # the whole transaction failed: every group with it
            errors = [exc] * len(rides)
        except BaseException:
            for ride in rides:
                ride.future.cancel()
            raise
        self.settle(rides, errors)
