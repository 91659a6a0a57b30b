"""``python -m gateway check``: every problem at once, each with its path."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.config import read, validate
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
        "api_token: expected a string or nothing, got an integer",
        "traffic_sources[1].preset: unknown traffic-source preset 'exoclik'; "
        "did you mean 'exoclick'?",
        "traffic_sources[2].params.goal: missing",
        "campaigns[1].traffic_source: unknown traffic source 'tss'; did you mean 'ts'?",
        "campaigns[2].postbacks[0].url: unknown token {extrnalid} at 38; "
        "did you mean {externalid}?",
        "campaigns[2].postbacks[1].sample: expected a number, got a string",
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


TEN_MISTAKES = """
api_tokn = "x"
api_token = "  "

[batch]
max_wiat_ms = 2.0

[delivery]
timeout = -1.0
max_attempts = 0
resolve = { "pb.example" = "127.0.0.1" }
max_connections = "many"

[[traffic_sources]]
name = "ts"
postback = "https://pb.example/?c={externalid}&p={payout|bogus}"

[[campaigns]]
id = "a"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"

[[campaigns]]
id = "a"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"

[[networks]]
name = "n"
allowed_cidrs = ["300.1.2.3/8"]
"""

#: One line each, path first: every mistake in the file above, from one run.
TEN_LINES = (
    "api_tokn: unknown key; did you mean 'api_token'?",
    "api_token: is blank",
    "batch.max_wiat_ms: unknown key; did you mean 'max_wait_ms'?",
    "delivery.timeout: must be > 0",
    "delivery.max_attempts: must be >= 1",
    "delivery.resolve.'pb.example': resolve target '127.0.0.1' needs a port",
    "delivery.max_connections: expected an integer, got a string",
    "traffic_sources[0].postbacks[0].url: unknown modifier |bogus",
    "campaigns[1].id: duplicate id 'a'",
    "networks[0].allowed_cidrs[0]: '300.1.2.3/8' does not appear to be",
)


def _run_check(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check", *extra, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_ten_different_mistakes_all_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "ten.toml"
    path.write_text(TEN_MISTAKES)
    done = _run_check(path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    for text in TEN_LINES:
        assert any(line.startswith(text) for line in lines), (text, done.stdout)
    assert "`" not in done.stdout and "$." not in done.stdout  # msgspec's wording rewritten
    assert lines[-1].endswith("invalid (10 error(s), 0 warning(s))")


def test_check_json(tmp_path: Path) -> None:
    path = tmp_path / "ten.toml"
    path.write_text(TEN_MISTAKES)
    done = _run_check(path, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False and len(report["errors"]) == 10
    assert {"path": "delivery.max_attempts", "message": "must be >= 1"} in report["errors"]
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    done = _run_check(good, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["valid"] is True


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        (
            '[[traffic_sources.postbacks]]\nurl = "https://p.example/?c={externalid}"\n'
            "max_attempts = 0\n",
            "traffic_sources[0].postbacks[0].max_attempts: must be >= 1",
        ),
        ('[delivery]\nallowed_networks = ["10.0.0.0/33"]\n', "delivery.allowed_networks[0]:"),
        (
            '[delivery]\nresolve = { "a.example" = "127.0.0.1:99999" }\n',
            "delivery.resolve.'a.example': port 99999 is out of range",
        ),
        ("[delivery]\njitter = 1.5\n", "delivery.jitter: must be a fraction"),
        (
            '[delivery]\ntransport = "curl"\n',
            "delivery.transport: 'curl' is not one of 'aiohttp', 'lean'",
        ),
        ('postback_secret = ""\n', "postback_secret: is blank"),
    ],
)
def test_more_mistakes_with_their_paths(toml: str, where: str) -> None:
    head, _, rest = toml.partition("[[traffic_sources.postbacks]]")
    text = (
        head + '\n[[traffic_sources]]\nname = "ts"\n' + ("[[traffic_sources.postbacks]]" + rest)
        if rest
        else toml
    )
    _, problems = validate(tomllib.loads(text))
    assert any(str(p).startswith(where) for p in problems), [str(p) for p in problems]


def test_a_token_nothing_can_fill_is_a_warning() -> None:
    raw = tomllib.loads(
        """
[[traffic_sources]]
name = "ts"
variables = ["zone"]
postback = "https://p.example/?c={externalid}&z={var:zoneid}&g={country}&ok={var:zone}"

[[campaigns]]
id = "c"
traffic_source = "ts"
offer_url = "https://o.example/?s={click.id}"

[[campaigns.postbacks]]
url = "https://p2.example/?os={os}&c={externalid}"
"""
    )
    config, problems = validate(raw)
    assert config is not None  # warnings only
    texts = [str(p) for p in problems]
    assert any(
        t.startswith("warning: traffic_sources[0].postbacks[0].url: {var:zoneid} is never filled")
        for t in texts
    )
    # visit data (the user agent, geo, or a value passed on the click) fills these
    assert not any("{country}" in t or "{os}" in t for t in texts)
    assert not any("{var:zone}" in t for t in texts)
