"""How one answer from a destination is judged: the verdict both the
dispatcher and ``gateway sources classify`` use, so they can never disagree.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

__all__ = ("AnswerRule", "Outcome", "Verdict", "classify_status")

Outcome = Literal["delivered", "rejected", "retry"]


class Verdict(msgspec.Struct, frozen=True):
    """``delivered``: done; ``rejected``: final refusal; ``retry``: try again later."""

    outcome: Outcome
    reason: str


class AnswerRule(Protocol):
    """A destination's own idea of success, e.g. ExoClick's ``200 ERROR: ...``."""

    def classify(self, status: int, body: str) -> Verdict: ...


def classify_status(status: int) -> Verdict:
    """The contract's rule without a body rule: 2xx ok; 408, 429, 5xx retry; other 4xx final."""
    if 200 <= status < 300:
        return Verdict("delivered", f"HTTP {status}")
    if status in (408, 429) or 500 <= status < 600:
        return Verdict("retry", f"HTTP {status}")
    return Verdict("rejected", f"HTTP {status}")
