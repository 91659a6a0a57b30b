"""The config file's shape: one msgspec struct per TOML table.

These structs are what the file may say, key by key (docs/config.md); they
hold no compiled state, so ``gateway check`` can decode and report on a file
that would never run.  ``compile`` turns them into what ``serve`` runs on.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway import constants
from gateway.dispatch.settings import DeliverySettings
from gateway.rules import RuleSpec, Status

__all__ = (
    "INVALID_RULE",
    "BatchSettings",
    "CampaignSpec",
    "ConfigSpec",
    "EnrichSettings",
    "LimitSettings",
    "NetworkSpec",
    "ServerSettings",
    "TrafficSourceSpec",
)


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
    #: visit token -> the click URL parameter carrying it, e.g. {country = "geo"}
    #: (parameters named like a visit token are read without this; docs/visit.md)
    visit_params: dict[str, str] = msgspec.field(default_factory=dict)
    #: shadow mode for every delivery to this source: rendered, stored, logged, not sent
    dry_run: bool = False
    #: a postback that would carry a network's unreplaced macro or an empty click id:
    #: ``hold`` it (status ``held``, never sent) or ``send`` it anyway
    on_placeholder: Literal["hold", "send"] = "hold"


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
    #: the ``{lander.id}`` and ``{offer.id}`` tokens (a click's ``lander``/``offer`` wins)
    lander_id: str = ""
    offer_id: str = ""


class NetworkSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    secret: str | None = None
    #: source addresses allowed to post conversions naming this network
    allowed_cidrs: list[str] = msgspec.field(default_factory=list)
    #: extra status words/numbers, e.g. {"1" = "approved", "paid" = "approved"}
    statuses: dict[str, Status] = msgspec.field(default_factory=dict)
    #: a network preset (``gateway/sources/networks.toml``): its parameter names
    preset: str | None = None
    #: the network's own parameter names -> the gateway's, e.g. {aff_sub = "cid"}
    params: dict[str, str] = msgspec.field(default_factory=dict)
    #: the network sends negative payouts as corrections (refused from any other)
    corrections: bool = False


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


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: reverse proxies (CIDRs) whose Forwarded / X-Forwarded-For is believed
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    #: the gateway's own secret: seals ``{htime}`` (none: ``{htime}`` stays empty)
    secret: str | None = None


class EnrichSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: OS, browser and device tokens from the User-Agent
    user_agent: bool = True
    #: country, region, city, ISP and ASN tokens from the address (needs ``geo install``)
    geo: bool = True
    #: the geo data folder (default: $GATEWAY_GEO_DIR, else ~/.cache/postback-gateway/geo)
    geo_dir: str | None = None


class StoreSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: where durable state lives: a SQLite path, ``sqlite:///PATH`` or
    #: ``postgresql://USER@HOST:PORT/DB``; ``serve --db`` and GATEWAY_DB come first
    url: str | None = None
    #: seconds a delivery stays leased to the process holding it without a
    #: renewal (a shared store): after a crash, how soon another process takes over
    lease: float = constants.LEASE_SECONDS


class ConfigSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_token: str | None = None
    #: a conversion counts for clicks at most this old (seconds); default 30 days
    attribution_window: float = 30 * 86400.0
    #: ``/postback`` secret for requests that name no network (``secret=``)
    postback_secret: str | None = None
    #: a network must be named (``network=``) on /postback
    require_network: bool = False
    #: ``/metrics`` needs ``Authorization: Bearer <api_token>`` too
    metrics_require_token: bool = False
    traffic_sources: list[TrafficSourceSpec] = msgspec.field(default_factory=list)
    campaigns: list[CampaignSpec] = msgspec.field(default_factory=list)
    networks: list[NetworkSpec] = msgspec.field(default_factory=list)
    batch: BatchSettings = msgspec.field(default_factory=BatchSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    enrich: EnrichSettings = msgspec.field(default_factory=EnrichSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)


#: Stands in for a postback rule that failed to decode, so the rules after it
#: keep their index in problem paths; compiling skips it (already reported).
INVALID_RULE = RuleSpec(name="\x00invalid")
