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

Which rule judges a postback is decided once, at config load, by
:func:`choose_answer_rule`, for every rule alike (a preset's, a campaign's,
one written by hand): named on the rule (``answer = "exoclick"``, ``"status"``
or an inline table of the keys above), else the traffic source's preset,
else the catalog network whose host the postback is sent to, else the
status alone.  The choice travels on each delivery as a short key
(:func:`rule_for_key` reads it back), so a restart or a replay judges alike.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec

from gateway.sources import catalog
from gateway.verdict import AnswerRule, Verdict, classify_status

__all__ = (
    "AnswerChoice",
    "BodyRule",
    "StatusRule",
    "answer_rule_for",
    "choose_answer_rule",
    "classify",
    "compile_answer_rule",
    "describe_key",
    "preset_for_host",
    "rule_for_key",
)

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


#: A delivery's ``answer_rule`` for an inline rule: this prefix and the rule as JSON.
INLINE_PREFIX = "inline:"


class AnswerChoice(NamedTuple):
    """The rule that judges one postback rule's answers, and why it was chosen."""

    #: what deliveries carry: a preset name, ``inline:{json}``, or None (status only)
    key: str | None
    #: in words, for ``check`` and test-postback
    why: str


@functools.cache
def _hosts() -> dict[str, str]:
    """Destination host -> the catalog network that answers there."""
    found: dict[str, str] = {}
    for name in catalog.names():
        preset = catalog.get(name)
        host = urlsplit(catalog.PARAM_RE.sub("x", preset.postback)).hostname
        for each in (host, *preset.hosts):
            if each:
                found.setdefault(each.lower(), preset.name)
    return found


def preset_for_host(host: str) -> str | None:
    """The catalog network whose postback host is ``host`` (or one of its other hosts)."""
    return _hosts().get(host.lower().rstrip("."))


def _inline_key(rule: Mapping[str, str]) -> str | None:
    compiled = compile_answer_rule(rule)  # raises ValueError naming a bad key
    if isinstance(compiled, StatusRule):
        return None
    return INLINE_PREFIX + msgspec.json.encode(dict(sorted(rule.items()))).decode()


def choose_answer_rule(
    explicit: str | Mapping[str, str] | None, source_preset: str | None, host: str
) -> AnswerChoice:
    """The one place that decides which answer rule judges a postback rule.

    Raises ValueError for an ``explicit`` name that is no preset (nor ``status``)
    or an inline rule with a bad key."""
    if isinstance(explicit, Mapping):
        return AnswerChoice(_inline_key(explicit), "inline rule (answer = {...})")
    if explicit is not None:
        if explicit.lower() == "status":
            return AnswerChoice(None, 'status only (answer = "status")')
        try:
            name = catalog.get(explicit).name
        except catalog.UnknownPreset as exc:
            raise ValueError(f'{exc} (or "status", or an inline rule)') from None
        return AnswerChoice(name, f"{name} (answer = {explicit!r})")
    if source_preset is not None:
        return AnswerChoice(source_preset, f"{source_preset} (the traffic source's preset)")
    by_host = preset_for_host(host)
    if by_host is not None:
        return AnswerChoice(by_host, f"{by_host} (destination host {host})")
    return AnswerChoice(None, "status only (no preset, host not in the catalog)")


@functools.lru_cache(maxsize=256)
def rule_for_key(key: str) -> AnswerRule:
    """The rule a delivery's ``answer_rule`` names: a preset or an inline rule.

    Raises LookupError (no such preset) or ValueError (a bad inline rule)."""
    if key.startswith(INLINE_PREFIX):
        raw = msgspec.json.decode(key[len(INLINE_PREFIX) :].encode())
        if not isinstance(raw, dict):
            raise ValueError(f"bad inline answer rule {key!r}")
        return compile_answer_rule({str(k): str(v) for k, v in raw.items()})
    return answer_rule_for(key)


def describe_key(key: str | None) -> str:
    """A delivery's answer rule in words."""
    if key is None:
        return catalog.describe_rule({})
    if key.startswith(INLINE_PREFIX):
        raw = msgspec.json.decode(key[len(INLINE_PREFIX) :].encode())
        return catalog.describe_rule(raw if isinstance(raw, dict) else {})
    return catalog.get(key).success
