"""Problems in a config: errors that refuse it and warnings that point at a
postback that will probably be lost.

A problem carries the path of the key it is about
(``campaigns[2].postbacks[0].url``), so ``gateway check`` can list every
mistake at once and each line says where to look.  The checks here only read
specs and templates; building the running objects is ``compile``'s job.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Collection, Iterable
from typing import Literal

import msgspec

from _fastrender import TemplateError, compile_template
from _fastrender._catalog import DEPRECATED, lookup
from gateway.config.schema import ConfigSpec
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.ssrf import parse_resolve
from gateway.rules import RuleSpec
from gateway.sources.macros import find_leftover_macros
from gateway.tokens import FILLED_BY

__all__ = (
    "Problem",
    "compiles",
    "looks_like_key",
    "query_literals",
    "offer_url_warnings",
    "rule_problems",
    "settings_problems",
    "template_warnings",
    "unfillable_warnings",
)


class Problem(msgspec.Struct, frozen=True):
    path: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return text if self.level == "error" else f"warning: {text}"


def compiles(url: str, dialect: str) -> bool:
    """True when ``url`` is a valid template in ``dialect``."""
    try:
        compile_template(url, dialect=dialect)
    except TemplateError:
        return False
    return True


def rule_problems(spec: RuleSpec, path: str, problems: list[Problem]) -> None:
    """A rule's conditions that can never hold: unknown required tokens, a
    sample outside 0-100, a negative delay."""
    for j, token in enumerate(spec.require):
        if token.startswith(("var:", "tName:")) or lookup(token, spec.dialect):
            continue
        problems.append(Problem(f"{path}.require[{j}]", f"unknown token {token!r}"))
    if not 0 <= spec.sample <= 100:
        problems.append(Problem(f"{path}.sample", "must be a percentage, 0 to 100"))
    if spec.delay < 0:
        problems.append(Problem(f"{path}.delay", "must be >= 0"))
    if spec.max_attempts is not None and spec.max_attempts < 1:
        problems.append(Problem(f"{path}.max_attempts", "must be >= 1 (the first attempt counts)"))
    for j, wait in enumerate(spec.schedule or ()):
        if wait < 0:
            problems.append(Problem(f"{path}.schedule[{j}]", "must be >= 0 seconds"))


def template_warnings(url: str, path: str, source_rule: bool, problems: list[Problem]) -> None:
    """A postback that compiles but is probably sent wrong: a network's macro
    pasted from its docs, a deprecated token, ``|raw``, or a traffic-source
    postback the network cannot match to its click."""
    valid = compiles(url, "clickflare") or compiles(url, "binom")
    for macro in find_leftover_macros(url):
        if not valid and macro.startswith("{") and not macro.startswith("{{"):
            continue  # the unknown-token error already names it, with a suggestion
        problems.append(
            Problem(
                path,
                f"{macro} looks like a network macro left from its docs; "
                "use a gateway token such as {externalid}",
                "warning",
            )
        )
    lowered = url.lower()
    for old, new in DEPRECATED.items():
        if "{" + old in lowered:
            problems.append(Problem(path, f"{{{old}}} is deprecated; use {{{new}}}", "warning"))
    if "|raw" in lowered:
        problems.append(
            Problem(path, "|raw inserts the value unencoded: it can add parameters", "warning")
        )
    if source_rule and "{externalid" not in lowered and "{external_id" not in lowered:
        problems.append(
            Problem(
                path,
                "traffic-source postback without {externalid}: the network "
                "cannot match it to its click",
                "warning",
            )
        )


def unfillable_warnings(
    tokens: Iterable[str], variables: Collection[str], path: str, problems: list[Problem]
) -> None:
    """A token no data of this config can ever fill: it renders empty, every time."""
    for token in dict.fromkeys(tokens):
        if token.startswith("var:"):
            if token[4:] not in variables:
                problems.append(
                    Problem(
                        path,
                        f"{{{token}}} is never filled: {token[4:]!r} is not one of the traffic "
                        "source's variables",
                        "warning",
                    )
                )
        elif token not in FILLED_BY:
            problems.append(
                Problem(
                    path,
                    f"{{{token}}} is never filled: nothing in a click or a conversion "
                    "carries it (docs/templates.md: which tokens need which data)",
                    "warning",
                )
            )


#: Query names that carry credentials in the networks' own postbacks.
_KEY_NAMES = frozenset(
    {"key", "skey", "api_key", "apikey", "token", "secret", "auth", "password", "pass", "hash"}
)
_KEYISH = re.compile(r"[A-Za-z0-9_\-]{16,}")


def query_literals(url: str) -> list[tuple[str, str]]:
    """(name, value) of each query parameter whose value is literal text (no token)."""
    _, _, query = url.partition("?")
    out = []
    for part in query.split("#", 1)[0].split("&"):
        name, eq, value = part.partition("=")
        if eq and value and "{" not in value:
            out.append((name, value))
    return out


def looks_like_key(name: str, value: str) -> bool:
    """A literal value that reads as a credential: under a key-like name, or long
    and mixed (letters and digits, 16+ characters) as API keys are."""
    if name.lower() in _KEY_NAMES:
        return True
    return bool(
        _KEYISH.fullmatch(value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
    )


def offer_url_warnings(url: str, path: str, problems: list[Problem]) -> None:
    """A network's macro left in a campaign's offer URL."""
    for macro in find_leftover_macros(url):
        problems.append(
            Problem(
                path,
                f"{macro} looks like a macro left from a network's docs; use {{click.id}}",
                "warning",
            )
        )


def _resolve_problems(resolve: dict[str, str], problems: list[Problem]) -> None:
    """Each ``resolve`` entry as the transports read it: ``host[:port]`` -> ``address:port``."""
    for key, target in resolve.items():
        path = f"delivery.resolve.{key!r}"
        try:
            ((host, port), (address, target_port)), *_ = parse_resolve({key: target}).items()
        except ValueError as exc:
            reason = str(exc) if "needs a port" in str(exc) else "a port must be a number"
            problems.append(Problem(path, f'{reason}: write "host[:port]" = "address:port"'))
            continue
        if not host:
            problems.append(Problem(path, "the host name is empty"))
        if not address:
            problems.append(Problem(path, "the target address is empty"))
        for value in (port, target_port):
            if value is not None and not 1 <= value <= 65535:
                problems.append(Problem(path, f"port {value} is out of range (1-65535)"))


def _delivery_problems(d: DeliverySettings, problems: list[Problem]) -> None:
    """``[delivery]`` values no run could use: counts below one, negative times, bad CIDRs."""
    at_least_one = {
        "max_connections": d.max_connections,
        "max_connections_per_host": d.max_connections_per_host,
        "max_attempts": d.max_attempts,
        "breaker_failures": d.breaker_failures,
    }
    for key, count in at_least_one.items():
        if count < 1:
            problems.append(Problem(f"delivery.{key}", "must be >= 1"))
    positive = {
        "timeout": d.timeout,
        "connect_timeout": d.connect_timeout,
        "idle_timeout": d.idle_timeout,
        "retention_days": d.retention_days,
    }
    if d.first_byte_timeout is not None:
        positive["first_byte_timeout"] = d.first_byte_timeout
    for key, seconds in positive.items():
        if not seconds > 0:
            problems.append(Problem(f"delivery.{key}", "must be > 0"))
    not_negative = {
        "breaker_pause": d.breaker_pause,
        "max_retry_after": d.max_retry_after,
        "body_prefix_bytes": d.body_prefix_bytes,
    }
    for key, number in not_negative.items():
        if number < 0:
            problems.append(Problem(f"delivery.{key}", "must be >= 0"))
    if d.rate_per_host is not None and not d.rate_per_host > 0:
        problems.append(Problem("delivery.rate_per_host", "must be > 0 (leave it out: unlimited)"))
    if not 0 <= d.jitter < 1:
        problems.append(Problem("delivery.jitter", "must be a fraction, 0 to below 1"))
    for j, wait in enumerate(d.schedule):
        if wait < 0:
            problems.append(Problem(f"delivery.schedule[{j}]", "must be >= 0 seconds"))
    for j, cidr in enumerate(d.allowed_networks):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            problems.append(Problem(f"delivery.allowed_networks[{j}]", str(exc)))
    _resolve_problems(d.resolve, problems)


def settings_problems(spec: ConfigSpec, problems: list[Problem]) -> None:
    """The top-level settings that no value of the rest of the file can fix."""
    for key in ("api_token", "postback_secret"):
        value = getattr(spec, key)
        if value is not None and not value.strip():
            problems.append(Problem(key, "is blank: set a value or leave the key out"))
    for key in ("max_query_bytes", "max_body_bytes", "max_value_length", "max_items"):
        if getattr(spec.limits, key) < 1:
            problems.append(Problem(f"limits.{key}", "must be >= 1"))
    _delivery_problems(spec.delivery, problems)
    if spec.delivery.ca_file:
        try:
            ssl.create_default_context().load_verify_locations(cafile=spec.delivery.ca_file)
        except (OSError, ssl.SSLError) as exc:
            problems.append(Problem("delivery.ca_file", f"cannot load CA certificates: {exc}"))
    if spec.attribution_window <= 0:
        problems.append(Problem("attribution_window", "must be > 0 seconds"))
    if spec.batch.max_size < 1:
        problems.append(Problem("batch.max_size", "must be >= 1"))
    if spec.batch.max_wait_ms < 0:
        problems.append(Problem("batch.max_wait_ms", "must be >= 0"))
