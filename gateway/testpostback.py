"""Test a postback: render one rule with given values, send it once, show the answer.

Shared by ``POST /api/postbacks/test`` (gateway/api_postbacks.py) and
``python -m gateway test-postback``. The request goes through the real
transport with the config's ``[delivery]`` settings (pool, timeout, SSRF
guard, ``resolve``, ``ca_file``) and is judged by the same answer rule the
dispatcher uses (``gateway.dispatch.judge.judge``), so "delivered" here
means the dispatcher would count it delivered too. Nothing is stored: no
click, conversion or delivery is written, and no metric moves.

Everything shown is redacted with the rule's secrets (the preset's secret
parameters, source, network and API secrets): the URL, the values echoed
back, the network's body excerpt and the reason.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from _fastrender._catalog import ARG_TOKENS, lookup
from gateway.config import Campaign, Config, Source
from gateway.dispatch.attempt import request_headers
from gateway.dispatch.judge import error_verdict, judge
from gateway.dispatch.transport import redirects
from gateway.dispatch.transport.base import Transport, TransportError
from gateway.dispatch.transport.body import answer_text
from gateway.dispatch.transport.factory import make_transport
from gateway.refusal import BadInput
from gateway.rules import CompiledRule
from gateway.tokens import test_values

__all__ = ("Plan", "TestRequest", "make_plan", "parse_request", "plan_and_send", "send")

log = logging.getLogger(__name__)

_FIELDS = ("source", "campaign", "rule", "values")


class TestRequest(msgspec.Struct, kw_only=True):
    """What to test: a source or a campaign, optionally a rule, and token values."""

    __test__ = False  # not a pytest class

    source: str | None = None
    campaign: str | None = None
    #: a rule's index in the source's/campaign's list, or its name
    rule: int | str | None = None
    #: token -> value (aliases and ``var:NAME`` accepted); missing ones get defaults
    values: dict[str, str] = msgspec.field(default_factory=dict)


class Plan(msgspec.Struct, kw_only=True):
    """One rendered postback, ready to send."""

    source: str
    campaign: str | None
    rule: CompiledRule
    rules: list[str]
    values: dict[str, str]
    url: str
    display_url: str
    body: str | None
    would_fire: bool


def parse_request(raw: Any) -> TestRequest:
    """The JSON body of ``POST /api/postbacks/test``; raises BadInput naming the field."""
    if not isinstance(raw, dict):
        raise BadInput("expected a JSON object", "body")
    for key in raw:
        if key not in _FIELDS:
            raise BadInput(f"unknown field (expected {', '.join(_FIELDS)})", str(key)[:64])
    for key in ("source", "campaign"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise BadInput("expected a string", key)
    rule = raw.get("rule")
    if rule is not None and (isinstance(rule, bool) or not isinstance(rule, int | str)):
        raise BadInput("expected a rule index (integer) or name (string)", "rule")
    values_raw = raw.get("values")
    if values_raw is None:
        values_raw = {}
    if not isinstance(values_raw, dict):
        raise BadInput("expected an object of token -> value", "values")
    values: dict[str, str] = {}
    for name, value in values_raw.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadInput("a value must be a string or a number", f"values.{name}"[:72])
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput("a value must be finite", f"values.{name}"[:72])
        values[name] = repr(value) if isinstance(value, float) else str(value)
    return TestRequest(
        source=raw.get("source"), campaign=raw.get("campaign"), rule=rule, values=values
    )


def canonical_values(values: Mapping[str, str]) -> dict[str, str]:
    """Token names as the renderer keys them: aliases resolved, ``tName:x`` -> ``var:x``."""
    out: dict[str, str] = {}
    for name, value in values.items():
        base, colon, arg = name.partition(":")
        if colon and base.lower() in ARG_TOKENS and arg:
            out[f"var:{arg}"] = value
            continue
        key = lookup(name, "clickflare")
        if key is None:
            raise BadInput(f"unknown token {{{name}}}", f"values.{name}"[:72])
        out[key] = value
    return out


def _target(config: Config, request: TestRequest) -> tuple[Source, Campaign | None]:
    if request.campaign is not None:
        campaign = config.campaigns.get(request.campaign)
        if campaign is None:
            raise BadInput(f"unknown campaign {request.campaign!r}", "campaign", 404)
        if request.source is not None and request.source != campaign.source.name:
            raise BadInput(
                f"campaign {campaign.id!r} belongs to traffic source {campaign.source.name!r}",
                "source",
            )
        return campaign.source, campaign
    if request.source is None:
        raise BadInput("name a traffic source or a campaign", "source")
    source = config.sources.get(request.source)
    if source is None:
        raise BadInput(f"unknown traffic source {request.source!r}", "source", 404)
    return source, None


def _pick(rules: list[CompiledRule], wanted: int | str | None, status: str) -> CompiledRule:
    if wanted is None:  # the first rule the status fires, else the first rule
        return next((r for r in rules if status in r.statuses), rules[0])
    if isinstance(wanted, int):
        if not 0 <= wanted < len(rules):
            raise BadInput(f"rule index out of range (0..{len(rules) - 1})", "rule")
        return rules[wanted]
    for rule in rules:
        if rule.name == wanted:
            return rule
    names = ", ".join(repr(r.name) for r in rules)
    raise BadInput(f"no rule named {wanted!r} (rules: {names})", "rule", 404)


def make_plan(config: Config, request: TestRequest, now: float | None = None) -> Plan:
    """Pick the rule and render it; raises BadInput."""
    source, campaign = _target(config, request)
    rules = campaign.rules if campaign is not None else source.rules
    if not rules:
        where = "campaign" if campaign is not None else "source"
        raise BadInput("no postback rules to test", where)
    given = canonical_values(request.values)
    now = time.time() if now is None else now
    values = test_values(source, campaign, given, now)
    rule = _pick(rules, request.rule, values["conversion.status"])
    try:
        url, display, body = rule.render([values])[0]
    except (ValueError, TypeError) as exc:
        raise BadInput(f"cannot render: {exc}", "values") from None
    fires = rule.matches(
        values["conversion.status"], values.get("conversion.type"), values, values["transaction.id"]
    )
    return Plan(
        source=source.name,
        campaign=campaign.id if campaign is not None else None,
        rule=rule,
        rules=[r.name for r in rules],
        values=values,
        url=url,
        display_url=display,
        body=body,
        would_fire=fires,
    )


async def send(config: Config, plan: Plan, transport: Transport | None = None) -> dict[str, Any]:
    """Send the plan once and judge the answer; a JSON-ready result, redacted."""
    rule = plan.rule
    own = transport is None
    client = make_transport(config.delivery) if transport is None else transport
    hide = rule.shown
    status: int | None = None
    body_excerpt = ""
    error: str | None = None
    final_url: str | None = None
    started = time.perf_counter()
    try:
        redirects.check_fixed_host(plan.url, rule.host)
        answer = await redirects.send(
            client,
            rule.method,
            plan.url,
            None if plan.body is None else plan.body.encode(),
            request_headers(plan.body),
            config.delivery.timeout,
        )
    except Exception as exc:  # every failure is an answer here, as in the dispatcher
        if isinstance(exc, TransportError):
            failed = exc
        else:
            log.warning("test postback %s raised", plan.display_url, exc_info=exc)
            failed = TransportError(f"internal error: {type(exc).__name__}: {exc}"[:300])
        verdict = error_verdict(failed.reason, final=failed.final)
        error = failed.reason
        latency = failed.elapsed or time.perf_counter() - started
        final_url = failed.final_url
    else:
        body_excerpt = answer_text(answer.body_prefix, answer.headers)
        verdict = judge(rule.answer_rule, answer.status, body_excerpt)
        status = answer.status
        latency = answer.elapsed
        final_url = answer.final_url
    finally:
        if own:
            await client.close()
    shown_final = None
    if final_url and final_url != plan.url:  # a redirect: where it ended, query dropped
        shown_final = final_url.split("?", 1)[0].split("#", 1)[0]
    result = {
        "source": plan.source,
        "campaign": plan.campaign,
        "rule": rule.name,
        "rules": plan.rules,
        "would_fire": plan.would_fire,
        "method": rule.method,
        "url": plan.display_url,
        "final_url": hide(shown_final) if shown_final else None,
        "answer_rule": rule.answer_rule,
        "answer_rule_why": rule.answer_why,
        "values": {k: hide(v) for k, v in plan.values.items()},
        "status_code": status,
        "latency_ms": round(latency * 1000.0, 3),
        "body_excerpt": hide(body_excerpt),
        "error": hide(error) if error else None,
        "outcome": verdict.outcome,
        "reason": hide(verdict.reason),
        "stored": False,
    }
    log.info(
        "test postback %s %s -> %s (%s)",
        rule.method,
        plan.display_url,
        verdict.outcome,
        result["reason"],
    )
    return result


async def plan_and_send(config: Config, request: TestRequest) -> dict[str, Any]:
    """Plan and send; raises BadInput."""
    return await send(config, make_plan(config, request))
