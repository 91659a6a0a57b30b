"""Judging one attempt: an HTTP answer or a transport error -> a Verdict.

The HTTP judgement is the one ``gateway sources classify`` prints
(``gateway.verdict`` or a preset's body rule), so the two never disagree.
"""

from __future__ import annotations

import functools
import logging

from gateway.verdict import AnswerRule, Verdict, classify_status

__all__ = ("error_verdict", "judge", "preset_answer_rule")

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=256)
def preset_answer_rule(name: str) -> AnswerRule | None:
    """The answer rule a delivery names (a preset, or ``inline:{json}``), kept per
    name, or None: then the status rule applies."""
    try:
        # Lazy: the rules module belongs to the sources package and must not
        # load (or be required) for deliveries without a preset.
        from gateway.sources.answers import rule_for_key as preset_rule  # noqa: PLC0415
    except ImportError:
        log.warning("gateway.sources.answers unavailable: judging %s by status only", name)
        return None
    try:
        return preset_rule(name)
    except (KeyError, LookupError, ValueError):
        log.warning("unknown answer rule %r: judging by status only", name)
        return None


#: classify_status per status code, kept (a Verdict is immutable): no formatting per answer.
_BY_STATUS: dict[int, Verdict] = {}


def judge(answer_rule: str | None, status: int, body: str) -> Verdict:
    """The verdict on one HTTP answer (after redirects)."""
    rule = preset_answer_rule(answer_rule) if answer_rule else None
    if rule is None:
        verdict = _BY_STATUS.get(status)
        if verdict is None:
            verdict = classify_status(status)
            if 100 <= status < 1000:  # bounded: one entry per code
                _BY_STATUS[status] = verdict
        return verdict
    return rule.classify(status, body)


def error_verdict(error: str, *, final: bool = False) -> Verdict:
    """Connection errors and timeouts are retried; a blocked address is final."""
    return Verdict("rejected" if final else "retry", error)
