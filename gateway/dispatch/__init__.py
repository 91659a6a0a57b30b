"""Sending rendered postbacks: transport, outcome rules, schedule, breaker, SSRF guard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.store.base import Delivery

__all__ = ("DeliverySink",)


class DeliverySink(Protocol):
    """What the batcher hands freshly committed deliveries to (no polling)."""

    def submit(self, deliveries: Sequence[Delivery]) -> None: ...
