"""The token catalog: every name the seed documents list compiles, aliases resolve.

The seed token tables are written out here (so a clean clone can run the
suite); when /work/shared/seeds is present, a second test re-reads them so a
name added there cannot slip past.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _fastrender import TemplateError
from _fastrender._catalog import CANONICAL, DEPRECATED, DIALECTS, lookup

DIALECT_NAMES = ("clickflare", "binom")

# ClickFlare's table (seed 000): every token it names.
CLICKFLARE_TOKENS = (
    "country",
    "countryname",
    "region",
    "city",
    "os",
    "osversion",
    "browser",
    "browserversion",
    "device",
    "brand",
    "model",
    "language",
    "transaction.id",
    "click.id",
    "payout",
    "conversion.cost",
    "campaign.cpa",
    "externalid",
    "var1",
    "var2",
    "var3",
    "var:variablename",
    "referrerdomain",
    "ip",
    "isp",
    "carrier",
    "connection.type",
    "campaign.id",
    "lander.id",
    "trafficsource.id",
    "offer.id",
)

# Binom's "available tokens" list (seed 004), ranges written out.
BINOM_TOKENS = (
    "clickid",
    "user_id",
    "campaign",
    "campaign_name",
    "path_name",
    "rule_name",
    "campaign_key",
    "trafficsource",
    "trafficsource_name",
    "external_id",
    "externalid",
    "clickcost",
    "domain",
    "lander",
    "referer",
    "time",
    "htime",
    "device_name",
    "device_brand",
    "device_model",
    "browser_name",
    "browser_version",
    "resolution",
    "os_name",
    "os_version",
    "country",
    "country_code",
    "language",
    "city",
    "user_agent",
    "offer",
    *(f"t{i}" for i in range(1, 11)),
    *(f"event{i}" for i in range(1, 11)),
    "tName:NAME",
    "tName:zoneid",
)

# Alias -> canonical key, as spec section 3 pairs them (clickflare dialect).
ALIASES = {
    "clickid": "click.id",
    "external_id": "externalid",
    "t1": "var1",
    "t20": "var20",
    "campaign": "campaign.id",
    "campaign_name": "campaign.name",
    "campaign_key": "campaign.key",
    "trafficsource": "trafficsource.id",
    "trafficsource_name": "trafficsource.name",
    "lander": "lander.id",
    "offer": "offer.id",
    "path_name": "path.name",
    "rule_name": "rule.name",
    "txid": "transaction.id",
    "campaign.cpa": "conversion.cost",
    "status": "conversion.status",
    "type": "conversion.type",
    "user_id": "user.id",
    "clickcost": "click.cost",
    "time": "click.time",
    "htime": "click.htime",
    "country_code": "country",
    "os_name": "os",
    "os_version": "osversion",
    "browser_name": "browser",
    "browser_version": "browserversion",
    "device_brand": "brand",
    "device_model": "model",
    "tName:zoneid": "var:zoneid",
    "var:zoneid": "var:zoneid",
}

SEEDS = Path("/work/shared/seeds")
_SEED_TOKEN = re.compile(r"\{([A-Za-z][A-Za-z0-9_.]*(?::[A-Za-z0-9_.\-]+)?)\}")


def _compile_one(module, name: str, dialect: str):
    return module.compile_template(f"https://ts.example/pb?x={{{name}}}", dialect=dialect)


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
@pytest.mark.parametrize("name", sorted(set(CLICKFLARE_TOKENS + BINOM_TOKENS)))
def test_seed_token_compiles(fastrender_module, name, dialect):
    plan = _compile_one(fastrender_module, name, dialect)
    (key,) = plan.tokens
    assert key in CANONICAL or key.startswith("var:")


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
@pytest.mark.parametrize("name", [*CANONICAL, "var:x", "tName:x"])
def test_every_catalog_name_compiles(fastrender_module, name, dialect):
    _compile_one(fastrender_module, name, dialect)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="seed documents not available here")
@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_seed_documents_tables_compile(fastrender_module, dialect):
    """Re-read the seeds: every token in their token tables compiles."""
    names: set[str] = set()
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        # Only the token tables: ClickFlare's starts at "Data Type", Binom's at
        # "Available tokens" (the prose before them quotes network macros).
        for marker in ("Data Type", "Available tokens"):
            if marker in text:
                text = text[text.index(marker) :]
        names.update(_SEED_TOKEN.findall(text))
    assert len(names) > 60
    for name in sorted(names):
        _compile_one(fastrender_module, name, dialect)


@pytest.mark.parametrize(("alias", "canonical"), sorted(ALIASES.items()))
def test_alias_resolves_to_canonical_key(fastrender_module, alias, canonical):
    plan = _compile_one(fastrender_module, alias, "clickflare")
    assert plan.tokens == (canonical,)


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_name_is_its_own_key(fastrender_module, name):
    assert _compile_one(fastrender_module, name, "clickflare").tokens == (name,)


def test_names_match_case_insensitively_args_do_not(fastrender_module):
    plan = fastrender_module.compile_template(
        "https://ts.example/?a={ExternalID}&b={TNAME:ZoneId}&c={Var:zoneid}&d={CLICK.ID}"
    )
    assert plan.tokens == ("externalid", "var:ZoneId", "var:zoneid", "click.id")


def test_binom_country_is_the_country_name(fastrender_module):
    template = "https://ts.example/?c={country}&cc={country_code}"
    values = {"country": "DE", "countryname": "Germany"}
    binom = fastrender_module.compile_template(template, dialect="binom")
    assert binom.tokens == ("countryname", "country")
    assert binom.render(values) == "https://ts.example/?c=Germany&cc=DE"
    clickflare = fastrender_module.compile_template(template)
    assert clickflare.tokens == ("country", "country")
    assert clickflare.render(values) == "https://ts.example/?c=DE&cc=DE"


def test_dialects_differ_only_in_country():
    clickflare, binom = DIALECTS["clickflare"], DIALECTS["binom"]
    assert clickflare.keys() == binom.keys()
    assert {k for k in clickflare if clickflare[k] != binom[k]} == {"country"}


def test_deprecated_cpa_still_compiles(fastrender_module):
    assert DEPRECATED == {"campaign.cpa": "conversion.cost"}
    plan = fastrender_module.compile_template("https://ts.example/?cpa={campaign.cpa}")
    assert plan.render({"conversion.cost": "0.4"}) == "https://ts.example/?cpa=0.4"


@pytest.mark.parametrize("name", ["var21", "t21", "event11", "event0", "var0", "clickId2"])
def test_out_of_range_names_are_unknown(fastrender_module, name):
    with pytest.raises(TemplateError, match="unknown token"):
        _compile_one(fastrender_module, name, "clickflare")


@pytest.mark.parametrize("name", ["var", "tName"])
def test_argument_token_without_argument_is_an_error(fastrender_module, name):
    with pytest.raises(TemplateError, match="needs a parameter name") as info:
        _compile_one(fastrender_module, name, "clickflare")
    assert info.value.position == len("https://ts.example/pb?x=")


def test_lookup_helper():
    assert lookup("Country", "binom") == "countryname"
    assert lookup("country", "clickflare") == "country"
    assert lookup("nope", "clickflare") is None
