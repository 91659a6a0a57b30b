"""Sending rendered postbacks.

``dispatcher`` owns in-flight deliveries; ``hostqueue`` hands out connection
slots per host; ``timer`` and ``refill`` bring deliveries due later; ``retry``
is the whole retry policy; ``judge`` and ``attempt`` turn an answer into a
verdict and a log entry; ``recorder`` group-commits the log; ``transport/``
sends one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.store.base import Delivery

__all__ = ("DeliverySink",)


class DeliverySink(Protocol):
    """What the batcher hands freshly committed deliveries to (no polling)."""

    def submit(self, deliveries: Sequence[Delivery]) -> None: ...
