"""Postback rules: compiled once at config load, matched and rendered per batch.

A rule is a template plus the conditions that make it fire (conversion
statuses, events, required tokens, a sampling share) and what the delivery
carries (method, delay, retry budget, the preset whose answer rule judges it).
Rendering goes through ``plan.render_many`` over every conversion in a group
commit that the rule matches, so the per-call cost is paid once per batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import quote

import msgspec

from _fastrender import Plan, compile_template
from gateway.dispatch.transport.urls import InvalidURL, split_url
from gateway.sources.macros import placeholder_value

__all__ = (
    "CompiledRule",
    "PayoutTransform",
    "RuleSpec",
    "Status",
    "compile_rule",
    "redact",
    "redact_params",
)

Status = Literal["pending", "approved", "rejected"]


class PayoutTransform(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``payout * multiply + add``, clamped, rounded to ``decimals`` if set."""

    multiply: float = 1.0
    add: float = 0.0
    min: float | None = None
    max: float | None = None
    decimals: int | None = None

    def apply(self, payout: str) -> str:
        try:
            value = Decimal(payout)
        except InvalidOperation:
            return payout
        if not value.is_finite():
            return payout
        value = value * Decimal(repr(self.multiply)) + Decimal(repr(self.add))
        if self.min is not None:
            value = max(value, Decimal(repr(self.min)))
        if self.max is not None:
            value = min(value, Decimal(repr(self.max)))
        if self.decimals is not None:
            value = value.quantize(Decimal(1).scaleb(-self.decimals))
        elif -value.as_tuple().exponent > 12:  # type: ignore[operator]
            value = value.quantize(Decimal("1e-12"))  # bounded: never thousands of digits
        return format(value.normalize() if self.decimals is None else value, "f")


class RuleSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One postback rule as written in the config."""

    name: str | None = None
    #: The template; omitted on a preset traffic source = the preset's postback.
    url: str | None = None
    dialect: Literal["clickflare", "binom"] = "clickflare"
    method: Literal["GET", "POST"] | None = None
    #: POST body template (form text); None sends an empty body.
    body: str | None = None
    statuses: list[Status] = msgspec.field(default_factory=lambda: ["approved"])
    #: Conversion events that fire it; None: any (and none).
    events: list[str] | None = None
    payout: PayoutTransform | None = None
    #: Share of matching conversions that fire it, in percent (stable per conversion).
    sample: float = 100.0
    #: Seconds between the conversion and the first attempt.
    delay: float = 0.0
    #: Tokens that must have a value for the rule to fire, e.g. ["externalid"].
    require: list[str] = msgspec.field(default_factory=list)
    max_attempts: int | None = None
    schedule: list[float] | None = None
    #: How the answer is judged: a preset's name, ``"status"``, or an inline rule
    #: (``{ body_error_prefix = "ERROR" }``); default: the source's preset, else the
    #: catalog network of the destination host (``sources.answers.choose_answer_rule``).
    answer: str | dict[str, str] | None = None
    #: Query parameters whose values are credentials: shown as ``***`` everywhere.
    secret_params: list[str] = msgspec.field(default_factory=list)
    #: Shadow mode: render, store and log the delivery, send nothing (e.g. while
    #: an old tracker still sends the real postback).
    dry_run: bool = False


def redact_params(url: str, names: Iterable[str]) -> str:
    """The URL with the value of each query parameter in ``names`` shown as ``***``."""
    wanted = {n.lower() for n in names}
    head, mark, query = url.partition("?")
    if not mark or not wanted:
        return url
    query, hash_mark, fragment = query.partition("#")
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        parts.append(f"{name}=***" if eq and value and name.lower() in wanted else part)
    return f"{head}?{'&'.join(parts)}{hash_mark}{fragment}"


def redact(url: str, secrets: Iterable[str]) -> str:
    """The URL with each secret (as written, and percent-encoded) replaced by ``***``."""
    for secret in secrets:
        if secret and secret in url:
            url = url.replace(secret, "***")
        encoded = quote(secret, safe="")
        if secret and encoded != secret and encoded in url:
            url = url.replace(encoded, "***")
    return url


class CompiledRule:
    """A rule ready to fire: compiled plans and frozen conditions."""

    __slots__ = (
        "answer_rule",
        "answer_why",
        "body_plan",
        "delay",
        "dry_run",
        "events",
        "guarded",
        "hold",
        "host",
        "max_attempts",
        "max_click_age",
        "method",
        "name",
        "payout",
        "plan",
        "require",
        "sample",
        "schedule",
        "secret_params",
        "secrets",
        "statuses",
        "traffic_source",
    )
    answer_rule: str | None
    answer_why: str
    body_plan: Plan | None
    delay: float
    dry_run: bool
    events: frozenset[str] | None
    guarded: tuple[str, ...]
    hold: bool
    host: str
    max_attempts: int | None
    max_click_age: int | None
    method: Literal["GET", "POST"]
    name: str
    payout: PayoutTransform | None
    plan: Plan
    require: tuple[str, ...]
    sample: float
    schedule: list[float] | None
    secret_params: tuple[str, ...]
    secrets: tuple[str, ...]
    statuses: frozenset[str]
    traffic_source: str

    def __init__(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self, key, value)

    def matches(self, status: str, event: str | None, context: Mapping[str, str], key: str) -> bool:
        if status not in self.statuses:
            return False
        if self.events is not None and (event or "") not in self.events:
            return False
        for token in self.require:
            if not context.get(token):
                return False
        if self.sample < 100.0:
            bucket = zlib.crc32(f"{self.name}\x1f{key}".encode()) % 10000
            if bucket >= self.sample * 100:
                return False
        return True

    def held(self, context: Mapping[str, str]) -> str | None:
        """Why this rule's postback for ``context`` must not go out, or None.

        A value the template carries that is still a network's placeholder
        (``{conversions_tracking}``, ``${SUBID}``...), or an empty network
        click id (``externalid``): the network would find no click, answer as
        if all were well, and the conversion would be lost without a trace.
        """
        return self.flaw(context) if self.hold else None

    def flaw(self, context: Mapping[str, str]) -> str | None:
        """What ``held`` checks, whatever ``on_placeholder`` says (for counting)."""
        for token in self.guarded:
            value = context.get(token)
            if not value:
                if token == "externalid":
                    return (
                        "externalid is empty: the traffic source sent no click id"
                        " (check the click URL in its panel)"
                    )
                continue
            macro = placeholder_value(value)
            if macro is not None:
                return (
                    f"{token} is {macro[:64]!r}, a network macro left unreplaced"
                    " (check the click URL in the traffic source's panel)"
                )
        return None

    def render(self, contexts: Sequence[Mapping[str, str]]) -> list[tuple[str, str, str | None]]:
        """(url, display_url, body) per context, in order."""
        if self.payout is not None:
            transform = self.payout
            contexts = [
                {**c, "payout": transform.apply(c["payout"])} if c.get("payout") else c
                for c in contexts
            ]
        urls: list[str] = self.plan.render_many(contexts)
        bodies: Sequence[str | None] = (
            self.body_plan.render_many(contexts)
            if self.body_plan is not None
            else [None] * len(urls)
        )
        return [(u, self.shown(u), b) for u, b in zip(urls, bodies, strict=True)]

    def shown(self, text: str) -> str:
        """``text`` (a URL, a value, a body excerpt) as it may be shown: secrets as ``***``."""
        if self.secret_params:
            text = redact_params(text, self.secret_params)
        return redact(text, self.secrets) if self.secrets else text


#: Tokens the gateway makes itself: never a network's placeholder.
_OWN_TOKENS = frozenset(
    {"click.id", "click.time", "conversion.status", "conversion.time", "trafficsource.id"}
)


def _guarded(plan: Plan, body_plan: Plan | None) -> tuple[str, ...]:
    """The tokens a rule's postback carries that come from outside (clicks, networks)."""
    tokens = [*plan.tokens, *(body_plan.tokens if body_plan is not None else ())]
    return tuple(t for t in dict.fromkeys(tokens) if t not in _OWN_TOKENS)


def compile_rule(
    spec: RuleSpec,
    *,
    url: str,
    name: str,
    traffic_source: str,
    method: Literal["GET", "POST"],
    secrets: Sequence[str],
    answer_rule: str | None,
    max_click_age: int | None,
    answer_why: str = "",
    secret_params: Sequence[str] = (),
    hold: bool = True,
) -> CompiledRule:
    """Compile a rule; raises TemplateError (with .position) or ValueError."""
    plan = compile_template(url, dialect=spec.dialect)
    body_plan = None if spec.body is None else compile_template(spec.body, dialect=spec.dialect)
    # The host as every client reads it (a backslash or other ambiguity is refused
    # here), fixed now: the dispatcher refuses a rendered URL that goes elsewhere.
    try:
        host = split_url(url).host
    except InvalidURL as exc:
        if str(exc).startswith("unsupported URL"):
            raise ValueError("postback URL must be http(s)://host/...") from None
        raise ValueError(f"invalid URL: {exc}") from None
    return CompiledRule(
        name=name,
        plan=plan,
        body_plan=body_plan,
        method=spec.method or method,
        statuses=frozenset(spec.statuses),
        events=None if spec.events is None else frozenset(spec.events),
        require=tuple(spec.require),
        sample=spec.sample,
        delay=spec.delay,
        dry_run=spec.dry_run,
        payout=spec.payout,
        max_attempts=spec.max_attempts,
        schedule=spec.schedule,
        host=host,
        guarded=_guarded(plan, body_plan),
        hold=hold,
        secrets=tuple(s for s in secrets if s),
        answer_rule=answer_rule,
        answer_why=answer_why,
        secret_params=tuple(dict.fromkeys([*secret_params, *spec.secret_params])),
        max_click_age=max_click_age,
        traffic_source=traffic_source,
    )
