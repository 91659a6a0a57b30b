"""How one answer from a destination is judged: the verdict both the
dispatcher and ``gateway sources classify`` use, so they can never disagree.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

__all__ = ("AnswerRule", "Outcome", "Verdict", "classify_status", "host_trouble")

Outcome = Literal["delivered", "rejected", "retry"]


class Verdict(msgspec.Struct, frozen=True):
    """``delivered``: done; ``rejected``: final refusal; ``retry``: try again later."""

    outcome: Outcome
    reason: str


class AnswerRule(Protocol):
    """A destination's own idea of success, e.g. ExoClick's ``200 ERROR: ...``."""

    def classify(self, status: int, body: str) -> Verdict: ...


def host_trouble(status: int | None) -> bool:
    """Whether an answer says the host itself is in trouble: no answer, 408, 429 or
    5xx.  Such answers are retried and count towards the host's circuit breaker."""
    return status is None or status == 408 or status == 429 or 500 <= status < 600


def classify_status(status: int) -> Verdict:
    """The contract's rule without a body rule: 2xx ok; host trouble retried; the rest final."""
    if 200 <= status < 300:
        return Verdict("delivered", f"HTTP {status}")
    if host_trouble(status):
        return Verdict("retry", f"HTTP {status}")
    return Verdict("rejected", f"HTTP {status}")
