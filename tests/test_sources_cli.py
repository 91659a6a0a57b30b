"""``python -m gateway sources``: the contract's JSON, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "sources", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_show_json_subprocess() -> None:
    done = _gateway("show", "exoclick", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"name", "postback", "params", "click_macros", "success", "max_click_age"} <= set(data)
    assert data["name"] == "exoclick"
    assert data["click_macros"]["externalid"] == "{conversions_tracking}"
    assert data["params"][0]["name"] == "goal" and data["params"][0]["secret"] is True
    assert set(data["params"][0]) >= {"name", "secret"}
    assert data["max_click_age"] is None
    assert "campaign_url" not in data


def test_show_campaign_url_subprocess() -> None:
    done = _gateway(
        "show", "exoclick", "--json", "--campaign", "42", "--base-url", "https://gw.example/"
    )
    url = json.loads(done.stdout)["campaign_url"]
    assert url.startswith("https://gw.example/click/42?externalid={conversions_tracking}&")
    assert "zoneid={zone_id}" in url and "%7B" not in url


def test_classify_json_subprocess() -> None:
    done = _gateway(
        "classify", "exoclick", "--status", "200", "--body", "ERROR: tag invalid", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"outcome": "rejected", "reason": "ERROR: tag invalid"}


def test_unknown_preset_exits_1_with_suggestion() -> None:
    done = _gateway("show", "exoclik", "--json")
    assert done.returncode == 1
    assert "did you mean 'exoclick'" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            [
                "evadav",
                "--status",
                "200",
                "--body",
                '{"status":"error","message":"Incorrect click_id value"}',
            ],
            {"outcome": "rejected", "reason": "Incorrect click_id value"},
        ),
        (["popads", "--status", "200"], {"outcome": "delivered", "reason": "HTTP 200"}),
        (["popads", "--status", "503"], {"outcome": "retry", "reason": "HTTP 503"}),
        (["popads", "--status", "429"], {"outcome": "retry", "reason": "HTTP 429"}),
        (["popads", "--status", "404"], {"outcome": "rejected", "reason": "HTTP 404"}),
        (
            ["richads", "--status", "200", "--body", "Required url parameters are not present"],
            {"outcome": "rejected", "reason": "Required url parameters are not present"},
        ),
    ],
)
def test_classify_in_process(
    argv: list[str], expected: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sources", "classify", *argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_json_flag_before_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "--json", "show", "mgid"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "mgid"


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) >= 30
    assert all(item["click_macros"]["externalid"] for item in listed)


def test_human_output_keeps_bracket_macros(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources"]) == 0
    assert "[clickid]" in capsys.readouterr().out
    assert (
        main(["sources", "show", "popads", "--campaign", "c1", "--base-url", "https://gw.example"])
        == 0
    )
    out = capsys.readouterr().out
    assert "[IMPRESSIONID]" in out and "48 h" in out


def test_campaign_without_base_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "show", "popads", "--campaign", "c1"]) == 2
    assert "--base-url" in capsys.readouterr().err


def test_classify_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "classify", "exoclick", "--status", "200", "--body", "OK"]) == 0
    assert capsys.readouterr().out == "delivered: HTTP 200\n"


SOURCE_CONFIG = """
[[traffic_sources]]
name = "exo"
preset = "exoclick"
params = { goal = "abc" }
click_id_param = "sub"
variables = ["zoneid"]

[[traffic_sources]]
name = "hand"
postback = "https://pb.example/?c={externalid}"

[[campaigns]]
id = "exo-1"
traffic_source = "exo"
offer_url = "https://o.example/?s={click.id}"

[[campaigns]]
id = "hand-1"
traffic_source = "hand"
offer_url = "https://o.example/?s={click.id}"
"""


def test_show_with_config_uses_the_campaigns_real_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "g.toml"
    config.write_text(SOURCE_CONFIG)
    argv = ["sources", "show", "exoclick", "--config", str(config), "--campaign", "exo-1"]
    assert main([*argv, "--base-url", "https://gw.example", "--json"]) == 0
    url = json.loads(capsys.readouterr().out)["campaign_url"]
    # the source's own click id name, and only the variables it keeps
    assert url == "https://gw.example/click/exo-1?sub={conversions_tracking}&zoneid={zone_id}"
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "http://127.0.0.1:8080/click/exo-1?sub={conversions_tracking}&zoneid={zone_id}" in lines


@pytest.mark.parametrize(
    ("name", "campaign", "says"),
    [
        ("exoclick", "exo-2", "no campaign 'exo-2'; did you mean 'exo-1'?"),
        ("popads", "exo-1", "uses preset 'exoclick', not 'popads'"),
    ],
)
def test_show_with_config_refuses_what_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, campaign: str, says: str
) -> None:
    config = tmp_path / "g.toml"
    config.write_text(SOURCE_CONFIG)
    assert main(["sources", "show", name, "--config", str(config), "--campaign", campaign]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("columns", ["40", "60", "200"])
def test_tables_never_split_a_macro(columns: str) -> None:
    env = {**os.environ, "COLUMNS": columns}
    for args in (["sources"], ["sources", "show", "exoclick"], ["sources", "show", "propellerads"]):
        done = subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        for line in done.stdout.splitlines():
            cells = line.replace("┃", "│").split("│")
            for cell in cells:
                text = cell.strip()
                # a macro cut at a cell edge leaves an unclosed { [ or ${ behind
                assert text.count("{") == text.count("}"), (columns, line)
                assert text.count("[") == text.count("]"), (columns, line)
