"""Whole-request deadlines for the lean client, all on one loop timer.

``asyncio.timeout`` costs a context manager's two coroutines and a loop
timer made and cancelled per use, several microseconds; per postback that
was a large share of the client's own cost.  Here an exchange notes its
task's deadline in a table, and one timer, set for the earliest deadline,
cancels the tasks whose time is up.  As with ``asyncio.timeout``, the
cancellation becomes ``TimeoutError`` only where it was ours alone: a task
also cancelled from outside (a shutdown) still sees ``CancelledError``.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ("Deadlines",)

#: A deadline this close counts as passed when the timer fires (loop timers
#: may run up to a clock tick early).
_SLACK: Final = 0.001


class Deadlines:
    """Tasks with a deadline, and the one timer that enforces them."""

    __slots__ = ("_due", "_expired", "_timer", "_timer_at")

    def __init__(self) -> None:
        #: task -> (deadline in loop time, the task's cancel requests when it began)
        self._due: dict[asyncio.Task[object], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def __len__(self) -> int:
        return len(self._due)

    def begin(self, task: asyncio.Task[object], deadline: float) -> None:
        """``task`` is cancelled at ``deadline`` unless ``end`` comes first."""
        self._due[task] = (deadline, task.cancelling())
        if deadline < self._timer_at:
            self._arm(deadline)

    def end(self, task: asyncio.Task[object]) -> bool:
        """Forget ``task``'s deadline; True when it passed and the ``CancelledError``
        the task is handling is the deadline's alone (raise ``TimeoutError``)."""
        _, cancelling = self._due.pop(task)
        if not self._expired or task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() <= cancelling

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = asyncio.get_running_loop().time() + _SLACK
        soonest = float("inf")
        for task, (deadline, _) in self._due.items():
            if task in self._expired:
                continue
            if deadline <= now:
                self._expired.add(task)
                task.cancel()
            elif deadline < soonest:
                soonest = deadline
        if soonest != float("inf"):
            self._arm(soonest)
