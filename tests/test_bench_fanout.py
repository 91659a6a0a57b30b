"""bench.fanout end to end, small: the sink process, the bare loop and both
dispatcher transports run, every delivery is delivered, the JSON has its keys."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tls", [[], ["--tls"]], ids=["http", "https"])
def test_fanout_runs_small_and_reports_every_figure(tls: list[str]) -> None:
    out = subprocess.run(
        [
            sys.executable,
            *("-m", "bench.fanout", "-n", "60", "-c", "4", "--rounds", "1", "--json"),
            *tls,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == 60 and result["rounds"] == 1
    assert result["scheme"] == ("https" if tls else "http")
    for key in ("bare_rps", "dispatcher_rps", "dispatcher_lean_rps"):
        assert result[key] > 0
    for key in ("ratio", "ratio_lean", "ratio_round_median"):
        assert 0 < result[key] < 100
