"""Problems in a config: errors that refuse it and warnings that point at a
postback that will probably be lost.

A problem carries the path of the key it is about
(``campaigns[2].postbacks[0].url``), so ``gateway check`` can list every
mistake at once and each line says where to look.  The checks here only read
specs and templates; building the running objects is ``compile``'s job.
"""

from __future__ import annotations

import re
import ssl
from typing import Literal

import msgspec

from _fastrender import TemplateError, compile_template
from _fastrender._catalog import DEPRECATED, lookup
from gateway.config.schema import ConfigSpec
from gateway.rules import RuleSpec
from gateway.sources.macros import find_leftover_macros

__all__ = (
    "Problem",
    "compiles",
    "looks_like_key",
    "query_literals",
    "offer_url_warnings",
    "rule_problems",
    "settings_problems",
    "template_warnings",
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


def settings_problems(spec: ConfigSpec, problems: list[Problem]) -> None:
    """The top-level settings that no value of the rest of the file can fix."""
    if spec.delivery.ca_file:
        try:
            ssl.create_default_context().load_verify_locations(cafile=spec.delivery.ca_file)
        except (OSError, ssl.SSLError) as exc:
            problems.append(Problem("delivery.ca_file", f"cannot load CA certificates: {exc}"))
    if spec.attribution_window <= 0:
        problems.append(Problem("attribution_window", "must be > 0 seconds"))
    if spec.batch.max_size < 1 or spec.batch.max_wait_ms < 0:
        problems.append(Problem("batch", "max_size must be >= 1 and max_wait_ms >= 0"))
