"""What happens to a delivery after one attempt: a pure decision, so the rules
(final refusal, retry with jitter and Retry-After, dead letter) are testable
without sockets, stores or clocks.
"""

from __future__ import annotations

import random

import msgspec

from gateway.dispatch.retry import next_delay, parse_retry_after
from gateway.dispatch.settings import DeliverySettings
from gateway.store.base import Attempt, Delivery, DeliveryStatus
from gateway.verdict import Verdict

__all__ = ("Decision", "decide")


class Decision(msgspec.Struct, frozen=True, gc=False):  # never in a cycle: untracked
    status: DeliveryStatus
    next_at: float | None
    attempt: Attempt  # as it goes to the log (reason completed)
    counter: str  # the Metrics counter to bump: delivered | failed | retries


def decide(
    d: Delivery,
    attempt: Attempt,
    verdict: Verdict,
    retry_after: str | None,
    settings: DeliverySettings,
    now: float,
    rng: random.Random | None = None,
) -> Decision:
    """The delivery's next state after ``attempt`` (its ``attempts`` not yet counted)."""
    if verdict.outcome == "delivered":
        return Decision("delivered", None, attempt, "delivered")
    if verdict.outcome == "rejected":
        return Decision("failed", None, attempt, "failed")
    attempts = d.attempts + 1
    max_attempts = d.max_attempts if d.max_attempts > 0 else settings.max_attempts
    schedule = d.schedule if d.schedule is not None else settings.schedule
    delay = None
    if attempts < max_attempts:
        delay = next_delay(
            attempts, schedule, settings.jitter,
            retry_after=parse_retry_after(retry_after, now),
            max_retry_after=settings.max_retry_after, rng=rng,
        )
    if delay is None:
        gave_up = msgspec.structs.replace(
            attempt, reason=f"{attempt.reason}; gave up after {attempts} attempts"
        )
        return Decision("failed", None, gave_up, "failed")
    return Decision("queued", now + delay, attempt, "retries")
