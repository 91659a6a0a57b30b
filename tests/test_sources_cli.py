"""``python -m gateway sources``: the contract's JSON, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

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
