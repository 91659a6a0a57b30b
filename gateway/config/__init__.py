"""The config file: TOML decoded into msgspec structs, validated with paths.

``validate`` never stops at the first problem: each section is decoded on
its own and every template is compiled, so ``gateway check`` can list every
mistake at once, each with its path (``campaigns[2].postbacks[0].url: ...``).
``load`` is the strict form ``serve`` uses: any error raises ``ConfigError``.
The schema is documented key by key in docs/config.md.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import ssl
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from _fastrender import TemplateError, compile_template
from _fastrender._catalog import DEPRECATED, lookup
from gateway.dispatch.settings import DeliverySettings
from gateway.rules import CompiledRule, RuleSpec, compile_rule
from gateway.sources import catalog
from gateway.sources.macros import find_leftover_macros

__all__ = (
    "BatchSettings", "CampaignSpec", "Config", "ConfigError", "ConfigSpec", "LimitSettings",
    "NetworkSpec", "Problem", "TrafficSourceSpec", "default_config_path", "load", "validate",
)  # fmt: skip

log = logging.getLogger(__name__)

STATUSES = ("pending", "approved", "rejected")


class TrafficSourceSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    #: the ``{trafficsource.id}`` token; defaults to the name
    id: str | None = None
    preset: str | None = None
    params: dict[str, str] = msgspec.field(default_factory=dict)
    #: the click URL's query parameter that carries the source's click id
    click_id_param: str = "externalid"
    #: click URL parameters kept as variables: the n-th is {varN}, each also {var:NAME}
    variables: list[str] = msgspec.field(default_factory=list)
    #: shorthand for one global postback rule with defaults
    postback: str | None = None
    postbacks: list[RuleSpec] = msgspec.field(default_factory=list)
    #: required on /postback for conversions of this source's clicks (``secret=``)
    secret: str | None = None
    #: the network forgets clicks after this many seconds (default: the preset's)
    max_click_age: int | None = None


class CampaignSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    name: str = ""
    key: str = ""
    traffic_source: str
    #: where /click/{id} redirects; rendered with the new click's tokens
    offer_url: str
    #: ``add``: the source's global postbacks and these; ``replace``: these only
    postback_mode: Literal["add", "replace"] = "add"
    postbacks: list[RuleSpec] = msgspec.field(default_factory=list)


class NetworkSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    secret: str | None = None
    #: source addresses allowed to post conversions naming this network
    allowed_cidrs: list[str] = msgspec.field(default_factory=list)
    #: extra status words/numbers, e.g. {"1" = "approved", "paid" = "approved"}
    statuses: dict[str, Literal["pending", "approved", "rejected"]] = msgspec.field(
        default_factory=dict
    )


class BatchSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: longest a request waits for its group commit to start (milliseconds)
    max_wait_ms: float = 2.0
    #: most requests in one transaction
    max_size: int = 1000


class LimitSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_query_bytes: int = 8192
    max_body_bytes: int = 1_048_576
    max_value_length: int = 1024
    max_items: int = 1000


class ConfigSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_token: str | None = None
    #: a conversion counts for clicks at most this old (seconds); default 30 days
    attribution_window: float = 30 * 86400.0
    #: ``/postback`` secret for requests that name no network (``secret=``)
    postback_secret: str | None = None
    #: a network must be named (``network=``) on /postback
    require_network: bool = False
    traffic_sources: list[TrafficSourceSpec] = msgspec.field(default_factory=list)
    campaigns: list[CampaignSpec] = msgspec.field(default_factory=list)
    networks: list[NetworkSpec] = msgspec.field(default_factory=list)
    batch: BatchSettings = msgspec.field(default_factory=BatchSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)


class Problem(msgspec.Struct, frozen=True):
    path: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return text if self.level == "error" else f"warning: {text}"


class ConfigError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems if p.level == "error"))


class Network:
    __slots__ = ("name", "nets", "secret", "statuses")

    def __init__(self, spec: NetworkSpec, nets: list[Any]) -> None:
        self.name = spec.name
        self.secret = spec.secret
        self.nets = nets
        self.statuses = {k.lower(): v for k, v in spec.statuses.items()}

    def allows(self, address: str) -> bool:
        if not self.nets:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.nets)


class Source:
    __slots__ = ("id", "max_click_age", "name", "preset", "rules", "secret", "spec")

    def __init__(self, spec: TrafficSourceSpec, rules: list[CompiledRule], age: int | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.id = spec.id or spec.name
        self.preset = spec.preset
        self.secret = spec.secret
        self.rules = rules
        self.max_click_age = age


class Campaign:
    __slots__ = ("id", "offer", "rules", "source", "spec")

    def __init__(self, spec: CampaignSpec, offer: Any, source: Source, rules: list[CompiledRule]):
        self.spec = spec
        self.id = spec.id
        self.offer = offer
        self.source = source
        self.rules = rules


class Config:
    """The validated, compiled config ``serve`` runs on."""

    def __init__(self, spec: ConfigSpec, sources: dict[str, Source],
                 campaigns: dict[str, Campaign], networks: dict[str, Network],
                 path: str | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.sources = sources
        self.campaigns = campaigns
        self.networks = networks
        self.path = path
        self.delivery = spec.delivery
        self.api_token = spec.api_token
        self.batch = spec.batch
        self.limits = spec.limits
        self.attribution_window = spec.attribution_window


def default_config_path() -> Path:
    """The example config: examples/gateway.toml beside the package (a checkout or
    an editable install), else the copy a wheel installs in
    ``<prefix>/share/postback-gateway/``; the first if neither exists (so the
    error names it)."""
    candidates = (
        Path(__file__).resolve().parents[2] / "examples" / "gateway.toml",
        Path(sys.prefix) / "share" / "postback-gateway" / "gateway.toml",
    )
    return next((path for path in candidates if path.is_file()), candidates[0])


def _decode(raw: Any, kind: Any, path: str, problems: list[Problem]) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        where = where.rstrip("`")
        problems.append(Problem((path + where) if path else where.lstrip("."), message))
        return None


def _decode_item(raw: Any, kind: Any, path: str, problems: list[Problem]) -> Any:
    """A source or campaign, with each of its postback rules decoded on its own,
    so one bad rule does not hide the problems of the others."""
    if not isinstance(raw, dict) or not isinstance(raw.get("postbacks"), list):
        return _decode(raw, kind, path, problems)
    rules = [_decode(item, RuleSpec, f"{path}.postbacks[{j}]", problems) or _INVALID
             for j, item in enumerate(raw["postbacks"])]  # fmt: skip
    item = _decode({k: v for k, v in raw.items() if k != "postbacks"}, kind, path, problems)
    return None if item is None else msgspec.structs.replace(item, postbacks=rules)


#: Stands in for a rule that failed to decode, so later rules keep their index.
_INVALID = RuleSpec(name="\x00invalid")


def _template_warnings(url: str, path: str, source_rule: bool, problems: list[Problem]) -> None:
    compiles = _compiles(url, "clickflare") or _compiles(url, "binom")
    for macro in find_leftover_macros(url):
        if not compiles and macro.startswith("{") and not macro.startswith("{{"):
            continue  # the unknown-token error already names it, with a suggestion
        problems.append(Problem(path, f"{macro} looks like a network macro left from its docs; "
                                "use a gateway token such as {externalid}", "warning"))  # fmt: skip
    lowered = url.lower()
    for old, new in DEPRECATED.items():
        if "{" + old in lowered:
            problems.append(Problem(path, f"{{{old}}} is deprecated; use {{{new}}}", "warning"))
    if "|raw" in lowered:
        problems.append(Problem(path, "|raw inserts the value unencoded: it can add parameters",
                                "warning"))  # fmt: skip
    if source_rule and "{externalid" not in lowered and "{external_id" not in lowered:
        problems.append(Problem(path, "traffic-source postback without {externalid}: the network "
                                "cannot match it to its click", "warning"))  # fmt: skip


def _rules(specs: list[RuleSpec], base: str, *, default_url: str | None, default_method: str,
           source: str, secrets: list[str], answer: str | None, age: int | None,
           source_rule: bool, problems: list[Problem]) -> list[CompiledRule]:  # fmt: skip
    compiled: list[CompiledRule] = []
    for i, spec in enumerate(specs):
        if spec is _INVALID:
            continue  # already reported
        path = f"{base}[{i}]"
        url = spec.url if spec.url is not None else default_url
        if url is None:
            problems.append(Problem(f"{path}.url", "required (no preset to take it from)"))
            continue
        for j, token in enumerate(spec.require):
            if token.startswith(("var:", "tName:")) or lookup(token, spec.dialect):
                continue
            problems.append(Problem(f"{path}.require[{j}]", f"unknown token {token!r}"))
        if not 0 <= spec.sample <= 100:
            problems.append(Problem(f"{path}.sample", "must be a percentage, 0 to 100"))
        if spec.delay < 0:
            problems.append(Problem(f"{path}.delay", "must be >= 0"))
        _template_warnings(url, f"{path}.url", source_rule, problems)
        try:
            rule = compile_rule(
                spec, url=url, name=spec.name or path, traffic_source=source,
                method=default_method, secrets=secrets, answer_rule=answer, max_click_age=age,
            )  # fmt: skip
        except TemplateError as exc:
            field = "body" if _compiles(url, spec.dialect) else "url"
            problems.append(Problem(f"{path}.{field}", str(exc)))
            continue
        except ValueError as exc:
            problems.append(Problem(f"{path}.url", str(exc)))
            continue
        rule.require = tuple(
            t if t.startswith(("var:", "tName:")) else (lookup(t, spec.dialect) or t)
            for t in spec.require
        )
        compiled.append(rule)
    return compiled


def _compiles(url: str, dialect: str) -> bool:
    try:
        compile_template(url, dialect=dialect)
    except TemplateError:
        return False
    return True


def _source(spec: TrafficSourceSpec, path: str, secrets: list[str],
            problems: list[Problem]) -> Source:  # fmt: skip
    default_url: str | None = None
    method = "GET"
    answer: str | None = None
    age = spec.max_click_age
    own_secrets = list(secrets)
    if spec.preset is not None:
        try:
            preset = catalog.get(spec.preset)
        except catalog.UnknownPreset as exc:
            problems.append(Problem(f"{path}.preset", str(exc)))
        else:
            answer = preset.name
            method = preset.method
            age = age if age is not None else preset.max_click_age
            own_secrets += [spec.params.get(p.name, "") for p in preset.params if p.secret]
            known = {p.name for p in preset.params}
            for extra in sorted(set(spec.params) - known):
                problems.append(Problem(f"{path}.params.{extra}",
                                        f"preset {preset.name!r} has no parameter "
                                        f"{extra!r}"))  # fmt: skip
            try:
                default_url = catalog.expand(preset, spec.params)
            except catalog.MissingParams as exc:
                for name in exc.missing:
                    problems.append(Problem(f"{path}.params.{name}",
                                            "missing: preset "
                                            f"{preset.name!r} needs it"))  # fmt: skip
    rule_specs = list(spec.postbacks)
    if spec.postback is not None:
        rule_specs.insert(0, RuleSpec(url=spec.postback, name=f"{spec.name}:postback"))
    if not rule_specs and default_url is not None:
        rule_specs = [RuleSpec(name=f"{spec.name}:preset")]
    rules = _rules(rule_specs, f"{path}.postbacks", default_url=default_url, default_method=method,
                   source=spec.name, secrets=own_secrets, answer=answer, age=age,
                   source_rule=True, problems=problems)  # fmt: skip
    return Source(spec, rules, age)


def validate(
    raw: Mapping[str, Any], path: str | None = None
) -> tuple[Config | None, list[Problem]]:
    """Every problem in a decoded TOML document, and the config if there are no errors."""
    problems: list[Problem] = []
    sections = {k: raw[k] for k in ("traffic_sources", "campaigns", "networks") if k in raw}
    top = {k: v for k, v in raw.items() if k not in sections}
    spec = _decode(top, ConfigSpec, "", problems) or ConfigSpec()
    lists: dict[str, list[Any]] = {}
    for key, kind in (("traffic_sources", TrafficSourceSpec), ("campaigns", CampaignSpec),
                      ("networks", NetworkSpec)):  # fmt: skip
        items = sections.get(key, [])
        if not isinstance(items, list):
            problems.append(Problem(key, f"must be an array of tables ([[{key}]])"))
            items = []
        lists[key] = [x for i, item in enumerate(items)
                      if (x := _decode_item(item, kind, f"{key}[{i}]",
                                            problems)) is not None]  # fmt: skip
    spec = msgspec.structs.replace(spec, **lists)
    secrets = [s for s in (spec.api_token, spec.postback_secret,
                           *(n.secret for n in spec.networks),
                           *(t.secret for t in spec.traffic_sources)) if s]  # fmt: skip

    sources: dict[str, Source] = {}
    for i, ts in enumerate(spec.traffic_sources):
        if ts.name in sources:
            problems.append(Problem(f"traffic_sources[{i}].name", f"duplicate name {ts.name!r}"))
        sources[ts.name] = _source(ts, f"traffic_sources[{i}]", secrets, problems)

    campaigns: dict[str, Campaign] = {}
    for i, camp in enumerate(spec.campaigns):
        path_i = f"campaigns[{i}]"
        if camp.id in campaigns:
            problems.append(Problem(f"{path_i}.id", f"duplicate id {camp.id!r}"))
        source = sources.get(camp.traffic_source)
        if source is None:
            close = difflib.get_close_matches(camp.traffic_source, list(sources), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(Problem(f"{path_i}.traffic_source",
                                    "unknown traffic source "
                                    f"{camp.traffic_source!r}{hint}"))  # fmt: skip
        offer = None
        try:
            offer = compile_template(camp.offer_url)
        except TemplateError as exc:
            problems.append(Problem(f"{path_i}.offer_url", str(exc)))
        if not camp.offer_url.startswith(("http://", "https://")):
            problems.append(Problem(f"{path_i}.offer_url", "must be an http(s) URL"))
        for macro in find_leftover_macros(camp.offer_url):
            problems.append(Problem(f"{path_i}.offer_url", f"{macro} looks like a macro left from "
                                    "a network's docs; use {click.id}", "warning"))  # fmt: skip
        own = _rules(camp.postbacks, f"{path_i}.postbacks", default_url=None, default_method="GET",
                     source=camp.traffic_source,
                     secrets=secrets + [spec_s for spec_s in _preset_secrets(source)],
                     answer=None, age=source.max_click_age if source else None,
                     source_rule=False, problems=problems)  # fmt: skip
        if source is not None and offer is not None:
            rules = own if camp.postback_mode == "replace" else [*source.rules, *own]
            campaigns[camp.id] = Campaign(camp, offer, source, rules)

    networks: dict[str, Network] = {}
    for i, net in enumerate(spec.networks):
        nets = []
        for j, cidr in enumerate(net.allowed_cidrs):
            try:
                nets.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError as exc:
                problems.append(Problem(f"networks[{i}].allowed_cidrs[{j}]", str(exc)))
        if net.name in networks:
            problems.append(Problem(f"networks[{i}].name", f"duplicate name {net.name!r}"))
        networks[net.name] = Network(net, nets)

    if spec.delivery.ca_file:
        try:
            ssl.create_default_context().load_verify_locations(cafile=spec.delivery.ca_file)
        except (OSError, ssl.SSLError) as exc:
            problems.append(Problem("delivery.ca_file", f"cannot load CA certificates: {exc}"))
    if spec.attribution_window <= 0:
        problems.append(Problem("attribution_window", "must be > 0 seconds"))
    if spec.batch.max_size < 1 or spec.batch.max_wait_ms < 0:
        problems.append(Problem("batch", "max_size must be >= 1 and max_wait_ms >= 0"))
    if any(p.level == "error" for p in problems):
        return None, problems
    return Config(spec, sources, campaigns, networks, path), problems


def _preset_secrets(source: Source | None) -> list[str]:
    if source is None or source.preset is None:
        return []
    try:
        preset = catalog.get(source.preset)
    except catalog.UnknownPreset:
        return []
    return [source.spec.params.get(p.name, "") for p in preset.params if p.secret]


def read(path: str | Path) -> tuple[Config | None, list[Problem]]:
    """Parse and validate a file; TOML syntax errors are problems too."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem("", f"cannot read {path}: {exc}")]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem("", f"TOML syntax: {exc}")]
    return validate(raw, str(path))


def load(path: str | Path) -> Config:
    config, problems = read(path)
    if config is None:
        raise ConfigError(problems)
    for problem in problems:
        log.warning("config %s", problem)
    return config
