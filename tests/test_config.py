"""Config loading: presets, rule modes, transforms, sampling, click ids."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

import gateway.config as config_package
from gateway import clickid
from gateway.config import ConfigError, default_config_path, load, read
from gateway.rules import PayoutTransform, redact

SOURCE = """
[[traffic_sources]]
name = "ts"
postback = "https://pb.example/global?c={externalid}"

[[traffic_sources]]
name = "exo"
preset = "exoclick"
params = { goal = "g0al" }
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load(path)


def test_example_config_loads_with_presets_and_safe_delivery() -> None:
    config = load(default_config_path())
    assert config.delivery.allow_private_targets is False
    exo = config.sources["exoclick"]
    assert exo.preset == "exoclick"
    (rule,) = exo.rules
    assert rule.answer_rule == "exoclick" and rule.host == "s.magsrv.com"
    hand_written = [s for s in config.sources.values() if s.preset is None]
    assert len(hand_written) >= 3


def test_campaign_rules_add_or_replace(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        SOURCE
        + """
[[campaigns]]
id = "add"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"
postbacks = [{ name = "own", url = "https://own.example/?c={externalid}" }]

[[campaigns]]
id = "replace"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"
postback_mode = "replace"
postbacks = [{ name = "own", url = "https://own.example/?c={externalid}" }]

[[campaigns]]
id = "preset"
traffic_source = "exo"
offer_url = "https://o.example/?s={click.id}"
""",
    )
    assert [r.name for r in config.campaigns["add"].rules] == ["ts:postback", "own"]
    assert [r.name for r in config.campaigns["replace"].rules] == ["own"]
    (preset_rule,) = config.campaigns["preset"].rules
    url, display, _ = preset_rule.render([{"externalid": "E", "payout": "2"}])[0]
    assert "goal=g0al" in url and "goal=***" in display and "g0al" not in display


def test_invalid_config_raises_with_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(
            tmp_path,
            SOURCE
            + """
[[campaigns]]
id = "x"
traffic_source = "nope"
offer_url = "ftp://o.example/{bogus}"
""",
        )
    text = str(caught.value)
    assert "campaigns[0].traffic_source" in text and "campaigns[0].offer_url" in text


def test_rule_conditions(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        SOURCE
        + """
[[campaigns]]
id = "c"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"
postback_mode = "replace"

[[campaigns.postbacks]]
name = "cond"
url = "https://own.example/?c={externalid}&p={payout}"
statuses = ["approved", "rejected"]
events = ["sale"]
require = ["external_id"]
payout = { multiply = 0.5, add = 0.1, decimals = 2 }

[[campaigns.postbacks]]
name = "half"
url = "https://own.example/half"
sample = 50
""",
    )
    cond, half = config.campaigns["c"].rules
    ctx = {"externalid": "E", "payout": "3"}
    assert cond.require == ("externalid",)  # alias resolved
    assert cond.matches("approved", "sale", ctx, "k")
    assert not cond.matches("pending", "sale", ctx, "k")
    assert not cond.matches("approved", None, ctx, "k")
    assert not cond.matches("approved", "sale", {"payout": "3"}, "k")
    assert cond.render([ctx])[0][0] == "https://own.example/?c=E&p=1.60"
    fired = sum(half.matches("approved", None, {}, f"conv-{i}") for i in range(2000))
    assert 800 < fired < 1200
    assert half.matches("approved", None, {}, "same") == half.matches("approved", None, {}, "same")


def test_payout_transform_and_redact() -> None:
    assert PayoutTransform(multiply=0.8).apply("1.25") == "1"
    assert PayoutTransform(multiply=0.8, decimals=2).apply("1.25") == "1.00"
    assert PayoutTransform(add=-5, min=0).apply("1") == "0"
    assert PayoutTransform(max=2).apply("9.5") == "2"
    assert PayoutTransform(multiply=2).apply("n/a") == "n/a"
    assert redact("https://h/?k=a b&x=a%20b", ["a b"]) == "https://h/?k=***&x=***"


def test_preset_errors_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[traffic_sources]]\nname = "e"\npreset = "exoclick"\nparams = { gaol = "x" }\n'
    )
    config, problems = read(path)
    assert config is None
    texts = [str(p) for p in problems]
    assert any(t.startswith("traffic_sources[0].params.goal: missing") for t in texts)
    assert any(t.startswith("traffic_sources[0].params.gaol:") for t in texts)


def test_click_ids_are_url_safe_random_and_timed() -> None:
    now = time.time()
    ids = {clickid.new_click_id(now) for _ in range(1000)}
    assert len(ids) == 1000
    for cid in ids:
        assert len(cid) == clickid.LENGTH and cid.isascii()
        assert all(c.isalnum() or c in "-_" for c in cid)
        assert clickid.created_at(cid) == pytest.approx(now, abs=0.001)
    assert clickid.created_at("short") is None
    assert clickid.created_at("x" * 23 + "!") is None
    # 96 random bits after the 48-bit time: ids made in the same millisecond differ there
    tails = {cid[8:] for cid in ids}
    assert len(tails) == 1000


def test_a_group_of_click_ids_matches_ids_made_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """new_click_ids slices two base64 blocks; each id must be what new_click_id
    makes from the same time and the same 12 random bytes."""
    now = 1_795_475_511.283
    noise = bytes(range(256))[: 12 * 21]
    monkeypatch.setattr(clickid.os, "urandom", lambda n: noise[:n])
    group = clickid.new_click_ids(now, 21)
    one_by_one = []
    for i in range(21):
        monkeypatch.setattr(clickid.os, "urandom", lambda n, i=i: noise[12 * i : 12 * i + n])
        one_by_one.append(clickid.new_click_id(now))
    assert group == one_by_one
    assert all(clickid.created_at(cid) == pytest.approx(now, abs=0.001) for cid in group)


def test_the_package_exports_a_sorted_complete_facade() -> None:
    """``gateway.config`` re-exports its modules' public names; the rest of the
    gateway imports from the package, never from schema/compile/lint/load."""
    package = config_package
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert list(package.__all__) == sorted(package.__all__)
    assert set(package.__all__) == public
    assert {"Campaign", "Config", "ConfigError", "Network", "Source"} <= public
    assert {"default_config_path", "load", "read", "validate"} <= public
    # The function wins over the module of the same name.
    assert package.load is load and callable(package.load)
