"""Specs to the objects ``serve`` runs on: sources, campaigns, networks and
their compiled postback rules.

Compiling goes on past a mistake: every rule and offer URL is compiled and
each failure becomes a :class:`Problem` with its path, so one run of
``gateway check`` lists them all.  A config is returned only when there are no
errors, so nothing half-built ever serves traffic.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Collection
from typing import Any, Literal

from _fastrender import Plan, TemplateError, compile_template
from _fastrender._catalog import lookup
from gateway.config.lint import (
    Problem,
    compiles,
    looks_like_key,
    offer_url_warnings,
    query_literals,
    rule_problems,
    settings_problems,
    template_warnings,
    unfillable_warnings,
)
from gateway.config.schema import (
    INVALID_RULE,
    CampaignSpec,
    ConfigSpec,
    NetworkSpec,
    TrafficSourceSpec,
)
from gateway.dispatch.transport.urls import InvalidURL, split_url
from gateway.enrich.passed import PASSED_NAMES, visit_token
from gateway.intake.client_address import TrustedProxies
from gateway.intake.names import ROLES, is_target
from gateway.rules import CompiledRule, RuleSpec, compile_rule
from gateway.sources import catalog
from gateway.sources import networks as network_presets
from gateway.sources.answers import choose_answer_rule, preset_for_host

__all__ = ("Campaign", "Config", "Network", "Source", "compile_config")


class Network:
    __slots__ = ("corrections", "name", "nets", "roles", "secret", "statuses")

    def __init__(
        self, spec: NetworkSpec, nets: list[Any], aliases: dict[str, str] | None = None
    ) -> None:
        self.name = spec.name
        self.secret = spec.secret
        self.nets = nets
        self.statuses = {k.lower(): v for k, v in spec.statuses.items()}
        self.corrections = spec.corrections
        #: parameter name -> (role, rank), the network's own names added (intake.params)
        self.roles: dict[str, tuple[str, int]] = dict(ROLES)
        for name, target in (aliases or {}).items():
            self.roles[name] = ROLES.get(target, (target, -1))

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
    __slots__ = (
        "id",
        "max_click_age",
        "name",
        "preset",
        "rules",
        "secret",
        "spec",
        "visit_params",
    )

    def __init__(self, spec: TrafficSourceSpec, rules: list[CompiledRule], age: int | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.id = spec.id or spec.name
        self.preset = spec.preset
        self.secret = spec.secret
        self.rules = rules
        self.max_click_age = age
        #: click URL parameter -> the visit token it carries (gateway.enrich.passed)
        self.visit_params: dict[str, str] = dict(PASSED_NAMES)


class Campaign:
    __slots__ = ("id", "offer", "rules", "source", "spec")

    def __init__(
        self, spec: CampaignSpec, offer: Plan, source: Source, rules: list[CompiledRule]
    ) -> None:
        self.spec = spec
        self.id = spec.id
        self.offer = offer
        self.source = source
        self.rules = rules


class Config:
    """The validated, compiled config ``serve`` runs on."""

    def __init__(
        self,
        spec: ConfigSpec,
        sources: dict[str, Source],
        campaigns: dict[str, Campaign],
        networks: dict[str, Network],
        path: str | None = None,
        trusted_proxies: TrustedProxies | None = None,
    ) -> None:
        self.spec = spec
        self.sources = sources
        self.campaigns = campaigns
        self.networks = networks
        self.path = path
        self.delivery = spec.delivery
        self.api_token = spec.api_token
        self.batch = spec.batch
        self.limits = spec.limits
        self.store = spec.store
        self.attribution_window = spec.attribution_window
        #: networks whose Forwarded / X-Forwarded-For is believed (intake.client_address)
        self.trusted_proxies = trusted_proxies or TrustedProxies(())
        self.server = spec.server
        #: Shadow mode (dispatcher): sources, and (source, rule name) pairs, whose
        #: deliveries are stored as ``dry_run`` instead of sent.
        self.dry_run_sources = frozenset(s.name for s in sources.values() if s.spec.dry_run)
        every_rule = [r for s in sources.values() for r in s.rules]
        every_rule += [r for c in campaigns.values() for r in c.rules]
        self.dry_run_rules = frozenset((r.traffic_source, r.name) for r in every_rule if r.dry_run)
        #: (config path, rule) for every postback rule, for ``check``'s report
        self.judged: list[tuple[str, CompiledRule]] = []

    @property
    def dry_run_everything(self) -> bool:
        """``[delivery] dry_run``: nothing is sent at all."""
        return self.delivery.dry_run


def _rules(
    specs: list[RuleSpec],
    base: str,
    *,
    default_url: str | None,
    default_method: Literal["GET", "POST"],
    source: str,
    secrets: list[str],
    preset: str | None,
    age: int | None,
    hold: bool,
    source_rule: bool,
    problems: list[Problem],
    judged: list[tuple[str, CompiledRule]],
    variables: Collection[str] | None = None,
) -> list[CompiledRule]:
    compiled: list[CompiledRule] = []
    for i, spec in enumerate(specs):
        if spec is INVALID_RULE:
            continue  # already reported
        path = f"{base}[{i}]"
        url = spec.url if spec.url is not None else default_url
        if url is None:
            problems.append(Problem(f"{path}.url", "required (no preset to take it from)"))
            continue
        rule_problems(spec, path, problems)
        template_warnings(url, f"{path}.url", source_rule, problems)
        host = _fixed_host(url)
        try:
            choice = choose_answer_rule(spec.answer, preset, host)
        except ValueError as exc:
            problems.append(Problem(f"{path}.answer", str(exc)))
            continue
        hidden = secret_params_warnings(spec, url, host, f"{path}.url", problems)
        try:
            rule = compile_rule(
                spec,
                url=url,
                name=spec.name or path,
                traffic_source=source,
                method=default_method,
                secrets=secrets,
                answer_rule=choice.key,
                answer_why=choice.why,
                secret_params=hidden,
                hold=hold,
                max_click_age=age,
            )
        except TemplateError as exc:
            field = "body" if compiles(url, spec.dialect) else "url"
            problems.append(Problem(f"{path}.{field}", str(exc)))
            continue
        except ValueError as exc:
            problems.append(Problem(f"{path}.url", str(exc)))
            continue
        if variables is not None:
            unfillable_warnings(rule.plan.tokens, variables, f"{path}.url", problems)
            if rule.body_plan is not None:
                unfillable_warnings(rule.body_plan.tokens, variables, f"{path}.body", problems)
        # Aliases (external_id) resolve to the token name the context uses.
        rule.require = tuple(
            t if t.startswith(("var:", "tName:")) else (lookup(t, spec.dialect) or t)
            for t in spec.require
        )
        compiled.append(rule)
        judged.append((path, rule))
    return compiled


def _fixed_host(url: str) -> str:
    """The host as every client reads it (``urls.split_url``); "" when the URL is
    refused (``compile_rule`` reports why)."""
    try:
        return split_url(url).host
    except InvalidURL:
        return ""


def _preset_secrets(spec: TrafficSourceSpec) -> list[str]:
    """The source's values for its preset's secret parameters (to redact)."""
    if spec.preset is None:
        return []
    try:
        preset = catalog.get(spec.preset)
    except catalog.UnknownPreset:
        return []
    return [spec.params.get(p.name, "") for p in preset.params if p.secret]


def _source(
    spec: TrafficSourceSpec,
    path: str,
    secrets: list[str],
    problems: list[Problem],
    judged: list[tuple[str, CompiledRule]],
) -> Source:
    default_url: str | None = None
    method: Literal["GET", "POST"] = "GET"
    answer: str | None = None
    age = spec.max_click_age
    if spec.preset is not None:
        try:
            preset = catalog.get(spec.preset)
        except catalog.UnknownPreset as exc:
            problems.append(Problem(f"{path}.preset", str(exc)))
        else:
            answer = preset.name
            method = preset.method
            age = age if age is not None else preset.max_click_age
            known = {p.name for p in preset.params}
            for extra in sorted(set(spec.params) - known):
                problems.append(
                    Problem(
                        f"{path}.params.{extra}",
                        f"preset {preset.name!r} has no parameter {extra!r}",
                    )
                )
            try:
                default_url = catalog.expand(preset, spec.params)
            except catalog.MissingParams as exc:
                for name in exc.missing:
                    problems.append(
                        Problem(
                            f"{path}.params.{name}", f"missing: preset {preset.name!r} needs it"
                        )
                    )
    rule_specs = list(spec.postbacks)
    if spec.postback is not None:
        rule_specs.insert(0, RuleSpec(url=spec.postback, name=f"{spec.name}:postback"))
    if not rule_specs and default_url is not None:
        rule_specs = [RuleSpec(name=f"{spec.name}:preset")]
    rules = _rules(
        rule_specs,
        f"{path}.postbacks",
        default_url=default_url,
        default_method=method,
        source=spec.name,
        secrets=secrets + _preset_secrets(spec),
        preset=answer,
        age=age,
        hold=spec.on_placeholder == "hold",
        source_rule=True,
        problems=problems,
        variables=spec.variables,
        judged=judged,
    )
    source = Source(spec, rules, age)
    for token, param in spec.visit_params.items():
        canonical = visit_token(token)
        if canonical is None:
            problems.append(Problem(f"{path}.visit_params.{token}", "not a visit token"))
        else:
            source.visit_params[param] = canonical
    return source


def _campaign(
    spec: CampaignSpec,
    path: str,
    sources: dict[str, Source],
    secrets: list[str],
    problems: list[Problem],
    judged: list[tuple[str, CompiledRule]],
) -> Campaign | None:
    source = sources.get(spec.traffic_source)
    if source is None:
        close = difflib.get_close_matches(spec.traffic_source, list(sources), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(
            Problem(
                f"{path}.traffic_source",
                f"unknown traffic source {spec.traffic_source!r}{hint}",
            )
        )
    offer = None
    try:
        offer = compile_template(spec.offer_url)
    except TemplateError as exc:
        problems.append(Problem(f"{path}.offer_url", str(exc)))
    if not spec.offer_url.startswith(("http://", "https://")):
        problems.append(Problem(f"{path}.offer_url", "must be an http(s) URL"))
    offer_url_warnings(spec.offer_url, f"{path}.offer_url", problems)
    own = _rules(
        spec.postbacks,
        f"{path}.postbacks",
        default_url=None,
        default_method="GET",
        source=spec.traffic_source,
        secrets=secrets + (_preset_secrets(source.spec) if source else []),
        # a campaign's rules are judged like its source's: the same network answers
        preset=_known_preset(source.spec.preset) if source else None,
        age=source.max_click_age if source else None,
        hold=source.spec.on_placeholder == "hold" if source else True,
        source_rule=False,
        problems=problems,
        variables=source.spec.variables if source else None,
        judged=judged,
    )
    if source is None or offer is None:
        return None
    rules = own if spec.postback_mode == "replace" else [*source.rules, *own]
    return Campaign(spec, offer, source, rules)


def _known_preset(name: str | None) -> str | None:
    try:
        return None if name is None else catalog.get(name).name
    except catalog.UnknownPreset:
        return None  # reported at the source


def secret_params_warnings(
    spec: RuleSpec, url: str, host: str, path: str, problems: list[Problem]
) -> list[str]:
    """The query parameters to redact on this rule beyond its own ``secret_params``:
    those the destination network's preset marks secret.  A literal value that
    looks like a key and is not hidden gets a warning."""
    network = preset_for_host(host) if host else None
    hidden = [*spec.secret_params]
    if network is not None:
        hidden += catalog.secret_query_names(catalog.get(network))
    wanted = {h.lower() for h in hidden}
    for name, value in query_literals(url):
        if name.lower() not in wanted and looks_like_key(name, value):
            problems.append(
                Problem(
                    path,
                    f"{name}={value[:4]}… looks like an account key: add "
                    f'secret_params = ["{name}"] so it is shown as ***',
                    "warning",
                )
            )
    return hidden


def _network(spec: NetworkSpec, path: str, problems: list[Problem]) -> Network:
    nets = []
    for j, cidr in enumerate(spec.allowed_cidrs):
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            problems.append(Problem(f"{path}.allowed_cidrs[{j}]", str(exc)))
    aliases: dict[str, str] = {}
    if spec.preset is not None:
        try:
            aliases.update(network_presets.get(spec.preset).params)
        except network_presets.UnknownNetworkPreset as exc:
            problems.append(Problem(f"{path}.preset", str(exc)))
    for name, target in spec.params.items():
        if not is_target(target):
            problems.append(
                Problem(
                    f"{path}.params.{name}",
                    f"{target!r} is no conversion parameter (cid, payout, cost, txid, status,"
                    " event, event1..event10, currency, externalid, campaign, var1..var20,"
                    " var:NAME)",
                )
            )
            continue
        if name in ("network", "secret"):
            problems.append(Problem(f"{path}.params.{name}", "cannot be renamed"))
            continue
        aliases[name] = target
    return Network(spec, nets, aliases)


def compile_config(spec: ConfigSpec, path: str | None, problems: list[Problem]) -> Config | None:
    """The running config, or None when ``problems`` holds an error (old or new)."""
    # Every secret the file holds, redacted wherever a rendered URL is shown.
    secrets = [
        s
        for s in (
            spec.api_token,
            spec.postback_secret,
            *(n.secret for n in spec.networks),
            *(t.secret for t in spec.traffic_sources),
        )
        if s
    ]
    sources: dict[str, Source] = {}
    judged: list[tuple[str, CompiledRule]] = []
    for i, ts in enumerate(spec.traffic_sources):
        if ts.name in sources:
            problems.append(Problem(f"traffic_sources[{i}].name", f"duplicate name {ts.name!r}"))
        sources[ts.name] = _source(ts, f"traffic_sources[{i}]", secrets, problems, judged)

    campaigns: dict[str, Campaign] = {}
    for i, camp in enumerate(spec.campaigns):
        if camp.id in campaigns:
            problems.append(Problem(f"campaigns[{i}].id", f"duplicate id {camp.id!r}"))
        campaign = _campaign(camp, f"campaigns[{i}]", sources, secrets, problems, judged)
        if campaign is not None:
            campaigns[camp.id] = campaign

    networks: dict[str, Network] = {}
    for i, net in enumerate(spec.networks):
        network = _network(net, f"networks[{i}]", problems)
        if net.name in networks:
            problems.append(Problem(f"networks[{i}].name", f"duplicate name {net.name!r}"))
        networks[net.name] = network

    proxies = []
    for j, cidr in enumerate(spec.server.trusted_proxies):
        try:
            proxies.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            problems.append(Problem(f"server.trusted_proxies[{j}]", str(exc)))

    settings_problems(spec, problems)
    if any(p.level == "error" for p in problems):
        return None
    config = Config(
        spec, sources, campaigns, networks, path, trusted_proxies=TrustedProxies(proxies)
    )
    config.judged = judged
    return config
