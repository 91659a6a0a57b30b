"""Packaging: the licence matches pyproject, the container image is built by the
commands CI runs, and every shipped command line (Dockerfile, compose, systemd
unit) is one the gateway's own parser accepts."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.cli import build_parser
from tests.gateway_proc import ROOT

EXAMPLES = ROOT / "examples"


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_licence_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_the_image_is_built_by_the_commands_ci_runs() -> None:
    runs = [
        args for word, args in _instructions((EXAMPLES / "Dockerfile").read_text()) if word == "RUN"
    ]
    builds = [r for r in runs if re.search(r"pip install|-m venv|\.ci/install", r)]
    assert builds == [".ci/install /opt/gateway ."]  # nothing else installs anything
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    ci_builds = [line for line in ci if re.search(r"pip install|-m venv|^\.ci/install", line)]
    assert ci_builds == [".ci/install .venv -e '.[test,bench]' -r requirements/lint.txt"]
    steps = (ROOT / ".ci" / "install").read_text()
    assert "requirements/cython.txt" in steps and "USE_EXTENSIONS" in steps


def _serve_argv(argv: list[str]) -> None:
    """``argv`` (after ``python -m gateway``) must parse, with a valid port."""
    args = build_parser().parse_args(argv)
    assert args.command in ("serve", "check")


def test_the_image_command_parses() -> None:
    instructions = dict(_instructions((EXAMPLES / "Dockerfile").read_text()))
    assert json.loads(instructions["ENTRYPOINT"])[-2:] == ["-m", "gateway"]
    _serve_argv(json.loads(instructions["CMD"]))


def test_the_compose_file_runs_the_image_on_postgresql() -> None:
    text = (EXAMPLES / "compose.yaml").read_text()
    assert "dockerfile: examples/Dockerfile" in text and "image: postgres:" in text
    (command,) = re.findall(r"^\s+command: (\[.*\])$", text, re.M)
    argv = json.loads(command)
    _serve_argv(argv)
    assert argv[argv.index("--db") + 1].startswith("postgresql://")


def test_the_systemd_unit_runs_the_gateway() -> None:
    unit = (EXAMPLES / "postback-gateway.service").read_text()
    for key in ("ExecStart", "ExecStartPre"):
        (line,) = re.findall(rf"^{key}=(.*)$", unit, re.M)
        argv = shlex.split(line)
        assert argv[1:3] == ["-m", "gateway"]
        _serve_argv(argv[3:])
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "KillSignal=SIGTERM" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    unit = (EXAMPLES / "postback-gateway.service").read_text()
    copy = tmp_path / "postback-gateway.service"
    copy.write_text(unit.replace("/opt/postback-gateway/bin/python", sys.executable))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in done.stderr.splitlines() if "postback-gateway" in line]
    assert done.returncode == 0 and problems == [], done.stderr
