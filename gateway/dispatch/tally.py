"""Metric updates gathered per delivery-log group and applied in one go.

A labelled child's ``inc()`` takes a lock, and a histogram's ``observe()``
takes two and walks its buckets: per delivery that cost more than the rest of
the dispatcher's bookkeeping.  The dispatcher notes counts and observations
here as attempts finish and applies them after each group write (before it
reports idle), so ``/metrics`` lags by at most one group (milliseconds).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

__all__ = ("Tally", "labelled", "observe_many")


def observe_many(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for each value, with one update per bucket."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:  # another client library's layout: the public way
            histogram.observe(v)
        return
    counts: dict[int, int] = {}
    amount = 0.0
    last = len(bounds)
    for v in values:
        i = bisect_left(bounds, v)  # the first bound >= v, as observe() picks it
        if v != v:  # NaN: observe() counts it in the sum only
            i = last
        amount += v
        counts[i] = counts.get(i, 0) + 1
    total.inc(amount)
    for i, n in counts.items():
        if i < last:
            buckets[i].inc(n)


#: Status class labels (``gateway.metrics.status_class``), looked up, not formatted.
_CLASSES = {n: f"{n}xx" for n in range(1, 6)}


class Tally:
    """Pending metric updates, keyed by whatever the caller resolves to a child."""

    __slots__ = ("counts", "observed", "_child")

    def __init__(self, child: Callable[..., Any]) -> None:
        self._child = child  # key -> the labelled metric
        self.counts: dict[tuple[str, ...], int] = {}
        self.observed: dict[tuple[str, ...], list[float]] = {}

    def inc(self, key: tuple[str, ...]) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def finished(self, counter: str, source: str, code: int | None) -> None:
        """One attempt counted by its outcome counter and status class (expired and
        dry_run: no class)."""
        if counter == "expired" or counter == "dry_run":
            key: tuple[str, ...] = (counter, source)
        else:
            sclass = "error" if code is None else _CLASSES.get(code // 100) or f"{code // 100}xx"
            key = (counter, source, sclass)
        self.counts[key] = self.counts.get(key, 0) + 1

    def observe(self, key: tuple[str, ...], value: float) -> None:
        values = self.observed.get(key)
        if values is None:
            self.observed[key] = [value]
        else:
            values.append(value)

    def apply(self) -> None:
        counts, observed = self.counts, self.observed
        if counts:
            self.counts = {}
            for key, n in counts.items():
                self._child(*key).inc(n)
        if observed:
            self.observed = {}
            for key, values in observed.items():
                observe_many(self._child(*key), values)


def labelled(metrics: Any) -> Callable[..., Any]:
    """``child(metric, source, sclass="")``: the labelled metric, cached, as ``Tally``
    resolves its keys (``labels()`` costs more than the increment)."""
    children: dict[tuple[str, str, str], Any] = {}

    def child(metric: str, source: str, sclass: str = "") -> Any:
        key = (metric, source, sclass)
        found = children.get(key)
        if found is None:
            family = getattr(metrics, metric)
            found = family.labels(source, sclass) if sclass else family.labels(source)
            children[key] = found
        return found

    return child
