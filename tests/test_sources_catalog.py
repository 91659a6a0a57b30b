"""The shipped traffic-source catalog: complete, sourced and compilable."""

from __future__ import annotations

import re

import pytest

from _fastrender import TemplateError, compile_template
from gateway.sources import catalog
from gateway.sources.macros import find_leftover_macros

NAMES = catalog.names()
REQUIRED = (
    "exoclick",
    "exads",
    "propellerads",
    "trafficstars",
    "zeropark",
    "mgid",
    "taboola",
    "outbrain",
    "richads",
    "adsterra",
    "kadam",
    "hilltopads",
    "clickadu",
    "evadav",
    "popads",
    "popcash",
    "admaven",
    "adcash",
    "clickadilla",
    "mediago",
    "mintegral",
    "onclicka",
    "trafficforce",
)


def _is_token(text: str) -> bool:
    try:
        return text.startswith("{") and len(compile_template(text).tokens) == 1
    except TemplateError:
        return False


def _filled(preset: catalog.Preset) -> str:
    return catalog.expand(preset, {p.name: f"x{i}" for i, p in enumerate(preset.params)})


def test_at_least_thirty_presets() -> None:
    assert len(NAMES) >= 30
    assert NAMES == sorted(set(NAMES))


@pytest.mark.parametrize("name", REQUIRED)
def test_required_networks_present(name: str) -> None:
    assert catalog.get(name).name == name


@pytest.mark.parametrize("name", NAMES)
def test_postback_compiles_after_filling_params(name: str) -> None:
    plan = compile_template(_filled(catalog.get(name)))
    assert "externalid" in plan.tokens


@pytest.mark.parametrize("name", NAMES)
def test_params_declared_equal_placeholders_used(name: str) -> None:
    preset = catalog.get(name)
    declared = [p.name for p in preset.params]
    assert len(declared) == len(set(declared))
    assert sorted(declared) == sorted(catalog.placeholders(preset.postback))


@pytest.mark.parametrize("name", NAMES)
def test_every_fact_has_a_source(name: str) -> None:
    preset = catalog.get(name)
    assert preset.docs and all(d.strip() for d in preset.docs)
    assert preset.title


@pytest.mark.parametrize("name", NAMES)
def test_click_macros(name: str) -> None:
    macros = catalog.get(name).click_macros
    assert macros.get("externalid"), "the click id must arrive as externalid"
    for param, macro in macros.items():
        assert param == "externalid" or re.fullmatch(r"var:[a-z_][a-z0-9_]*", param), param
        # A network macro pasted into a postback is caught by check, unless it is
        # spelt exactly like one of our tokens ({carrier}, {domain}).
        ours = macro == macro.lower() and _is_token(macro)
        expected = [] if ours else [macro]
        assert find_leftover_macros(f"https://t.example/pb?x={macro}") == expected


@pytest.mark.parametrize("name", NAMES)
def test_shipped_postback_has_no_leftover_macro(name: str) -> None:
    assert find_leftover_macros(_filled(catalog.get(name))) == []


@pytest.mark.parametrize("name", NAMES)
def test_shapes(name: str) -> None:
    preset = catalog.get(name)
    assert preset.method in ("GET", "POST")
    assert preset.max_click_age is None or preset.max_click_age > 0
    assert preset.success.startswith("2xx")
    assert preset.postback.startswith(("https://", "http://"))


def test_popads_forgets_clicks_after_48_hours() -> None:
    assert catalog.get("popads").max_click_age == 48 * 3600


def test_mgid_status_is_glued_to_the_campaign_suffix() -> None:
    url = catalog.expand(catalog.get("mgid"), {"campaign_suffix": "123456"})
    plan = compile_template(url)
    assert plan.render({"externalid": "c1", "conversion.status": "approved", "payout": 2}) == (
        "https://a.mgid.com/postback?c=c1&e=approved123456&r=2"
    )


def test_expand_and_missing_params() -> None:
    preset = catalog.get("propellerads")
    with pytest.raises(catalog.MissingParams) as info:
        catalog.expand(preset, {"aid": "1"})
    assert info.value.missing == ["tid"]
    assert "aid=1&pid=&tid=2&" in catalog.expand(preset, {"aid": "1", "tid": "2"})


def test_unknown_preset_suggests_the_closest() -> None:
    with pytest.raises(catalog.UnknownPreset, match="did you mean 'exoclick'"):
        catalog.get("exoclik")
    assert catalog.get("ExoClick").name == "exoclick"


def test_campaign_url_keeps_macros_unencoded() -> None:
    url = catalog.campaign_url(catalog.get("exoclick"), "https://gw.example/", "c 1")
    assert url.startswith("https://gw.example/click/c%201?externalid={conversions_tracking}&")
    assert "&zoneid={zone_id}" in url
    assert "var:" not in url
