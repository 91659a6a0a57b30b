"""One attempt's paperwork: the request a delivery makes, and the log entry
and verdict its answer (or error) becomes.  Plain functions, so the
dispatcher's hot path awaits the transport directly (no extra frame).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gateway.dispatch.outcome import error_verdict, judge
from gateway.dispatch.transport import Answer, TransportError
from gateway.outcome import Verdict
from gateway.store.base import Attempt, Delivery

__all__ = ("expired_attempt", "from_answer", "from_error", "request_headers", "shown_url")

log = logging.getLogger(__name__)

_NONE: Mapping[str, str] = {}
_JSON: Mapping[str, str] = {"Content-Type": "application/json"}
_FORM: Mapping[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}


def request_headers(body: str | None) -> Mapping[str, str]:
    """Content-Type for a POST body: JSON when it looks like JSON, else a form."""
    if body is None:
        return _NONE
    return _JSON if body.lstrip().startswith(("{", "[")) else _FORM


def shown_url(d: Delivery, final_url: str) -> str:
    """The display URL; after a redirect, where it ended, without its query (secrets)."""
    if not final_url or final_url == d.url:
        return d.display_url
    base = final_url.split("?", 1)[0].split("#", 1)[0]
    return f"{d.display_url} -> {base}"


def from_answer(d: Delivery, answer: Answer, started: float) -> tuple[Attempt, Verdict]:
    prefix = answer.body_prefix.decode("utf-8", "replace")
    verdict = judge(d.answer_rule, answer.status, prefix)
    attempt = Attempt(
        delivery_id=d.delivery_id, started_at=started, url=shown_url(d, answer.final_url),
        status_code=answer.status, error=None, latency_ms=answer.elapsed * 1000.0,
        body_prefix=prefix, outcome=verdict.outcome, reason=verdict.reason,
    )
    return attempt, verdict


def from_error(d: Delivery, exc: TransportError, started: float,
               elapsed: float) -> tuple[Attempt, Verdict]:
    verdict = error_verdict(exc.reason, final=exc.final)
    attempt = Attempt(
        delivery_id=d.delivery_id, started_at=started, url=shown_url(d, exc.final_url),
        status_code=None, error=exc.reason, latency_ms=elapsed * 1000.0, body_prefix="",
        outcome=verdict.outcome, reason=verdict.reason,
    )
    return attempt, verdict


def expired_attempt(d: Delivery, now: float) -> Attempt:
    return Attempt(
        delivery_id=d.delivery_id, started_at=now, url=d.display_url, status_code=None,
        error=None, latency_ms=0.0, body_prefix="", outcome="expired",
        reason="click older than the destination remembers",
    )
