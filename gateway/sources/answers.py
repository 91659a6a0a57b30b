"""Answer rules: how one network's reply is judged, from the catalog's data.

A network may answer ``200`` to a postback it refused (ExoClick's
``ERROR: tag invalid``, EvaDav's ``{"status":"error",...}``, TUNE's
``success=false;``).  Trusting the status there loses the conversion
without a trace, so each preset can declare, in ``presets.toml``, what a
refusal looks like in the body.  The dispatcher and ``gateway sources
classify`` both call :func:`answer_rule_for`, so they can never disagree.

The declarative form (a preset's ``rule`` table; every key optional):

``body_error_prefix``
    a ``2xx`` whose body, stripped, starts with this text is ``rejected``.
``body_error_contains``
    a ``2xx`` whose body contains this text is ``rejected``.
``json_field`` / ``json_error`` / ``json_message``
    a ``2xx`` whose body is a JSON object with ``json_field`` equal to one
    of the comma-separated ``json_error`` values is ``rejected``; the reason
    is the ``json_message`` field when present.

Without a refusal in the body the status decides (``classify_status``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import msgspec

from gateway.sources import catalog
from gateway.verdict import AnswerRule, Verdict, classify_status

__all__ = ("BodyRule", "StatusRule", "answer_rule_for", "classify", "compile_answer_rule")

# A reason quotes the network, but never a whole page of HTML.
_REASON_LIMIT = 200
RULE_KEYS = frozenset(
    {"body_error_prefix", "body_error_contains", "json_field", "json_error", "json_message"}
)


def _quote(text: str) -> str:
    """The network's message as a one-line reason."""
    line = " ".join(text.split())
    return line if len(line) <= _REASON_LIMIT else line[: _REASON_LIMIT - 1] + "…"


class StatusRule:
    """The contract's default: 2xx delivered; 408, 429, 5xx retry; other statuses rejected."""

    __slots__ = ()

    def classify(self, status: int, body: str) -> Verdict:
        verdict = classify_status(status)
        if verdict.outcome != "delivered" and body.strip():
            # Keep the network's words next to the status: they explain a 400.
            return Verdict(verdict.outcome, f"{verdict.reason}: {_quote(body)}")
        return verdict

    def __repr__(self) -> str:
        return "StatusRule()"


_STATUS_RULE = StatusRule()


class BodyRule:
    """A status rule refined by the network's refusal in a ``2xx`` body."""

    __slots__ = ("error_contains", "error_prefix", "json_errors", "json_field", "json_message")

    def __init__(
        self,
        *,
        error_prefix: str = "",
        error_contains: str = "",
        json_field: str = "",
        json_errors: tuple[str, ...] = (),
        json_message: str = "",
    ) -> None:
        self.error_prefix = error_prefix
        self.error_contains = error_contains
        self.json_field = json_field
        self.json_errors = json_errors
        self.json_message = json_message

    def classify(self, status: int, body: str) -> Verdict:
        if not 200 <= status < 300:
            return _STATUS_RULE.classify(status, body)
        refusal = self._refusal(body)
        if refusal is not None:
            return Verdict("rejected", refusal)
        return classify_status(status)

    def _refusal(self, body: str) -> str | None:
        """The network's refusal message, or None when the body reads as success."""
        text = body.strip()
        if self.error_prefix and text.startswith(self.error_prefix):
            return _quote(text)
        if self.error_contains and self.error_contains in text:
            return _quote(text)
        if self.json_field and text.startswith("{"):
            try:
                document = msgspec.json.decode(text)
            except msgspec.DecodeError:
                return None
            if not isinstance(document, dict):
                return None
            value = document.get(self.json_field)
            if _json_text(value) in self.json_errors:
                message = document.get(self.json_message) if self.json_message else None
                return _quote(str(message)) if message else _quote(text)
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"BodyRule({fields})"


def _json_text(value: object) -> str:
    """A JSON scalar as the rule writes it: true/false/null stay JSON words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def compile_answer_rule(rule: Mapping[str, str]) -> AnswerRule:
    """A rule object from its declarative form (a preset's, or a config's own)."""
    unknown = sorted(set(rule) - RULE_KEYS)
    if unknown:
        raise ValueError(f"unknown answer-rule key(s): {', '.join(unknown)}")
    if not any(rule.get(key) for key in ("body_error_prefix", "body_error_contains", "json_field")):
        return _STATUS_RULE
    if rule.get("json_field") and not rule.get("json_error"):
        raise ValueError("answer rule: json_field needs json_error (the refusal value[s])")
    return BodyRule(
        error_prefix=rule.get("body_error_prefix", ""),
        error_contains=rule.get("body_error_contains", ""),
        json_field=rule.get("json_field", ""),
        json_errors=tuple(v.strip() for v in rule.get("json_error", "").split(",") if v.strip()),
        json_message=rule.get("json_message", ""),
    )


@functools.cache
def answer_rule_for(preset_name: str) -> AnswerRule:
    """The answer rule of a catalog preset (``UnknownPreset`` if there is none)."""
    return compile_answer_rule(catalog.get(preset_name).rule)


def classify(preset_name: str, status: int, body: str = "") -> Verdict:
    """Judge one answer from ``preset_name``'s network, as the dispatcher does."""
    return answer_rule_for(preset_name).classify(status, body)
