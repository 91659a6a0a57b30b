"""One attempt's paperwork: the request a delivery makes, and the log entry
and verdict its answer (or error) becomes.  Plain functions, so the
dispatcher's hot path awaits the transport directly (no extra frame).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from gateway.dispatch.judge import error_verdict, judge
from gateway.dispatch.transport.base import Answer, TransportError
from gateway.dispatch.transport.body import answer_text
from gateway.rules import redact
from gateway.store.base import Attempt, Delivery
from gateway.verdict import Verdict

__all__ = (
    "dry_run_attempt",
    "expired_attempt",
    "from_answer",
    "from_error",
    "hidden_values",
    "request_headers",
    "shown_url",
)

log = logging.getLogger(__name__)

_NONE: Mapping[str, str] = {}
_JSON: Mapping[str, str] = {"Content-Type": "application/json"}
_FORM: Mapping[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}


def request_headers(body: str | None) -> Mapping[str, str]:
    """Content-Type for a POST body: JSON when it looks like JSON, else a form."""
    if body is None:
        return _NONE
    return _JSON if body.lstrip().startswith(("{", "[")) else _FORM


def hidden_values(d: Delivery) -> list[str] | None:
    """The secrets ``display_url`` hides as ``***``, read back from the real URL.

    A delivery carries its real URL and the redacted copy, not the secrets
    themselves; aligning the two recovers them. None when they do not align.
    """
    pieces = d.display_url.split("***")
    url = d.url
    if not url.startswith(pieces[0]):
        return None
    hidden: list[str] = []
    pos = len(pieces[0])
    for piece in pieces[1:]:
        end = url.find(piece, pos) if piece else len(url)
        if end < 0:
            return None
        if end > pos:
            hidden.append(url[pos:end])
        pos = end + len(piece)
    return sorted(hidden, key=len, reverse=True)


def _hide(d: Delivery, text: str) -> str:
    """``text`` (an answer's body, a reason, a redirect target) with the secrets as ``***``."""
    if not text or "***" not in d.display_url:
        return text
    hidden = hidden_values(d)
    if hidden is None:  # cannot tell what to hide: hide the lot
        return "(withheld: may quote a secret)"
    return redact(text, hidden)


def shown_url(d: Delivery, final_url: str) -> str:
    """The display URL; after a redirect, where it ended, without its query, and
    with the delivery's secrets (they may sit in the path) as ``***``."""
    if not final_url or final_url == d.url:
        return d.display_url
    base = final_url.split("?", 1)[0].split("#", 1)[0]
    if "***" in d.display_url:
        hidden = hidden_values(d)
        if hidden is None:
            split = urlsplit(base)
            base = f"{split.scheme}://{split.netloc}/..."
        else:
            base = redact(base, hidden)
    return f"{d.display_url} -> {base}"


def from_answer(d: Delivery, answer: Answer, started: float) -> tuple[Attempt, Verdict]:
    prefix = answer_text(answer.body_prefix, answer.headers)
    verdict = judge(d.answer_rule, answer.status, prefix)
    if "***" in d.display_url:  # an error page may quote the request, credentials and all
        prefix = _hide(d, prefix)
        verdict = Verdict(verdict.outcome, _hide(d, verdict.reason))
    attempt = Attempt(
        delivery_id=d.delivery_id,
        started_at=started,
        url=shown_url(d, answer.final_url),
        status_code=answer.status,
        error=None,
        latency_ms=answer.elapsed * 1000.0,
        body_prefix=prefix,
        outcome=verdict.outcome,
        reason=verdict.reason,
    )
    return attempt, verdict


def from_error(
    d: Delivery, exc: TransportError, started: float, elapsed: float
) -> tuple[Attempt, Verdict]:
    reason = _hide(d, exc.reason)  # e.g. an invalid URL is quoted in full
    verdict = error_verdict(reason, final=exc.final)
    attempt = Attempt(
        delivery_id=d.delivery_id,
        started_at=started,
        url=shown_url(d, exc.final_url),
        status_code=None,
        error=reason,
        latency_ms=elapsed * 1000.0,
        body_prefix="",
        outcome=verdict.outcome,
        reason=verdict.reason,
    )
    return attempt, verdict


def expired_attempt(d: Delivery, now: float) -> Attempt:
    return Attempt(
        delivery_id=d.delivery_id,
        started_at=now,
        url=d.display_url,
        status_code=None,
        error=None,
        latency_ms=0.0,
        body_prefix="",
        outcome="expired",
        reason="click older than the destination remembers",
    )


def dry_run_attempt(d: Delivery, now: float) -> Attempt:
    """The log entry of a delivery shadow mode kept: what would have been sent."""
    return Attempt(
        delivery_id=d.delivery_id,
        started_at=now,
        url=d.display_url,
        status_code=None,
        error=None,
        latency_ms=0.0,
        body_prefix="",
        outcome="dry_run",
        reason="dry run: stored as rendered, not sent",
    )
