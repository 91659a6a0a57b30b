"""``python -m gateway check``: every problem at once, each with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import read
from tests.gateway_proc import ROOT

GOOD = """
[[traffic_sources]]
name = "exo"
preset = "exoclick"
params = { goal = "abc" }

[[campaigns]]
id = "c1"
traffic_source = "exo"
offer_url = "https://offer.example/?s={click.id}"
"""

BAD = """
api_token = 5

[[traffic_sources]]
name = "ts"
postback = "https://pb.example/?c={externalid}"

[[traffic_sources]]
name = "exo"
preset = "exoclik"

[[traffic_sources]]
name = "exo2"
preset = "exoclick"

[[campaigns]]
id = "a"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"

[[campaigns]]
id = "b"
traffic_source = "tss"
offer_url = "https://o.example/?s={click.id}"

[[campaigns]]
id = "c"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"

[[campaigns.postbacks]]
url = "https://pb.example/postback?sub=1&ext={extrnalid}"

[[campaigns.postbacks]]
url = "https://pb.example/?c={externalid}"
sample = "half"

[[campaigns.postbacks]]
url = "https://pb.example/?c=${SUBID}"

[[networks]]
name = "n"
allowed_cidrs = ["10.0.0.300/8"]
"""

WARN = """
[[traffic_sources]]
name = "ts"
postback = "https://pb.example/?visitor_id=%guid%&c={campaign.cpa}"

[[traffic_sources.postbacks]]
url = "https://pb.example/raw?u={var:u|raw}&c={externalid}&k=[CLICK_ID]"

[[campaigns]]
id = "a"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"
"""


def _check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_good_config_and_the_shipped_example(tmp_path: Path) -> None:
    done = _check(tmp_path, GOOD)
    assert done.returncode == 0, done.stdout
    assert "ok" in done.stdout
    example = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "examples/gateway.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert example.returncode == 0, example.stdout
    assert "warning:" not in example.stdout


def test_every_problem_with_its_path(tmp_path: Path) -> None:
    done = _check(tmp_path, BAD)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    expected = [
        "api_token: Expected `str | null`, got `int`",
        "traffic_sources[1].preset: unknown traffic-source preset 'exoclik'; "
        "did you mean 'exoclick'?",
        "traffic_sources[2].params.goal: missing",
        "campaigns[1].traffic_source: unknown traffic source 'tss'; did you mean 'ts'?",
        "campaigns[2].postbacks[0].url: unknown token {extrnalid} at 38; "
        "did you mean {externalid}?",
        "campaigns[2].postbacks[1].sample: Expected `float`, got `str`",
        "networks[0].allowed_cidrs[0]:",
        "campaigns[2].postbacks[2].url: unknown token {SUBID}",
        "campaigns[2].postbacks[0].url: unknown token {extrnalid} at 38; "
        "did you mean {externalid}?",
        "warning: campaigns[2].postbacks[2].url: ${SUBID} looks like a network macro",
    ]
    for text in expected:
        assert any(line.startswith(text) for line in lines), (text, done.stdout)


def test_warnings_do_not_fail(tmp_path: Path) -> None:
    done = _check(tmp_path, WARN)
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert "warning: traffic_sources[0].postbacks[0].url: %guid% looks like a network macro" in out
    assert "{campaign.cpa} is deprecated; use {conversion.cost}" in out
    assert "without {externalid}" in out
    assert "warning: traffic_sources[0].postbacks[1].url: |raw" in out
    assert "[CLICK_ID] looks like a network macro" in out


@pytest.mark.parametrize(
    "text",
    ["not toml = = =", "traffic_sources = 5", "[delivery]\nbogus = 1", "[[campaigns]]\nid = 1"],
)
def test_bad_types_and_syntax(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    config, problems = read(path)
    assert config is None and any(p.level == "error" for p in problems)
    assert _check(tmp_path, text).returncode == 1


def test_secret_values_are_redacted_in_rules(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD)
    config, _ = read(path)
    assert config is not None
    (rule,) = config.campaigns["c1"].rules
    ((url, display, _body),) = rule.render([{"externalid": "x"}])
    assert "goal=abc" in url and "goal=***" in display
