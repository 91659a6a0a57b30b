"""``python -m bench run`` end to end: a real gateway, a real sink, every postback checked.

Each test starts the CLI as a user would (a subprocess), which starts the
gateway and the sink as its own subprocesses.  Runs are short (a few hundred
conversions) and bounded by ``--drain-timeout``; the JSON line is the verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _bench(*args: str, timeout: float = 90) -> tuple[int, dict[str, object], str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--json",
            "--sources",
            "4",
            "--clicks",
            "80",
            "--concurrency",
            "8",
            "--drain-timeout",
            "20",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr[-3000:]}"
    try:
        result = json.loads(lines[-1])
    except ValueError:
        pytest.fail(f"last line is not JSON: {lines[-1]!r}\nstderr:\n{proc.stderr[-3000:]}")
    return proc.returncode, result, proc.stdout + proc.stderr


@pytest.fixture(scope="module", autouse=True)
def _gateway_serves() -> None:
    pytest.importorskip("gateway.cli.serve", reason="`python -m gateway serve` not built yet")


def test_healthy_sink_gets_every_postback_exactly_once() -> None:
    rc, result, output = _bench("--count", "300")
    assert (result["lost"], result["duplicated"], result["wrong"]) == (0, 0, 0), output
    assert rc == 0, output
    assert result["postbacks_expected"] == result["postbacks_received"] > 0
    assert result["conversions_2xx"] == result["conversions_sent"] == 300
    for key in ("ingest_rps", "ceiling_rps", "ingest_ratio", "ingest_p99_ms"):
        assert isinstance(result[key], float | int) and result[key] > 0, key
    # a postback may reach the sink before the tester reads its 2xx: e2e is clamped at 0
    for key in ("e2e_p50_ms", "e2e_p99_ms"):
        assert isinstance(result[key], float | int) and result[key] >= 0, key
    assert "ingest / ceiling" in output  # the human table came first


def test_https_postbacks_with_relay_rounds_and_gateway_cpu() -> None:
    rc, result, output = _bench("--count", "300", "--tls", "--rounds", "2")
    assert rc == 0 and (result["lost"], result["duplicated"], result["wrong"]) == (0, 0, 0), output
    assert result["scheme"] == "https" and result["rounds"] == 2
    assert result["postbacks_expected"] == result["postbacks_received"] > 0
    assert len(result["relay_ratios"]) == 2 and result["relay_ratio"] > 0  # type: ignore[arg-type]
    assert len(result["gateway_cpu_us_rounds"]) == 2 and result["gateway_cpu_us"] > 0  # type: ignore[arg-type, operator]
    assert "ingest / relay" in output and "gateway CPU / conversion" in output


def test_failing_sink_loses_nothing_thanks_to_retries() -> None:
    rc, result, output = _bench(
        "--count",
        "200",
        "--sink-fail-rate",
        "0.2",
        "--sink-disconnect-rate",
        "0.05",
        "--no-ceiling",
        "--clicks-via",
        "api",
    )
    assert (result["lost"], result["duplicated"], result["wrong"]) == (0, 0, 0), output
    assert result["retries"] > 0 and rc == 0
    assert result["clicks"] == 80  # registered through POST /api/clicks
    assert result["ceiling_rps"] is None


def test_a_lying_sink_is_caught() -> None:
    rc, result, output = _bench(
        "--count",
        "150",
        "--sink-drop-rate",
        "0.1",
        "--sink-alter-rate",
        "0.1",
        "--no-ceiling",
        "--drain-timeout",
        "3",
    )
    assert rc == 1, output
    assert result["lost"] > 0 and result["wrong"] > 0
    assert result["ok"] is False
