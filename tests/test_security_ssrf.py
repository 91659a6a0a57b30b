"""SSRF regressions through the running gateway, on both clients.

Every hostile destination below is a postback template under the default
policy (no ``allow_private_targets``).  Listeners on the internal addresses
count every connection: none may arrive.  Each case goes through delivery (a
conversion posted, the delivery must end ``failed`` with a ``blocked`` or
``invalid URL`` reason and a logged attempt) and through
``POST /api/postbacks/test`` (``200`` with the same verdict, never a 5xx).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from gateway.dispatch.transport.ssrf import blocked_reason
from tests.security_helpers import OK, Counting, live_gateway

#: Hosts that must never be dialled: IANA special-purpose blocks, embedded IPv4
#: forms of loopback, odd IPv4 spellings, and IDNA forms that map to loopback.
HOSTILE = (
    "[::ffff:0:127.0.0.1]",  # SIIT IPv4-translated
    "[3fff::1]",  # documentation, RFC 9637
    "[5f00::1]",  # SRv6 SIDs, RFC 9602
    "[::ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[64:ff9b::127.0.0.1]",
    "[64:ff9b:1::7f00:1]",
    "[2002:7f00:1::1]",
    "[2001::1]",
    "[2600::5efe:127.0.0.1]",  # ISATAP interface id
    "[100:0:0:1::1]",
    "[::1]",
    "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ",
    "①②⑦.⓪.⓪.①",
    "１２７.０.０.１",
    "0x7f.1",
    "2130706433",
    "127.0.0.2",
    "localhost",
)


def _config(port: int, transport: str) -> str:
    lines = [
        "[batch]\nmax_wait_ms = 1.0\n",
        f'[delivery]\ntransport = "{transport}"\ntimeout = 3.0\nmax_attempts = 2\n'
        "schedule = [0.05]\njitter = 0.0\n",
    ]
    for i, host in enumerate(HOSTILE):
        lines.append(
            f'[[traffic_sources]]\nname = "t{i}"\n'
            f'postback = "http://{host}:{port}/pb?c={{externalid}}"\n'
        )
    return "\n".join(lines)


async def test_hostile_destinations_never_connect(tmp_path: Path, transport_kind: str) -> None:
    async with Counting(answer=OK) as listeners:
        async with live_gateway(tmp_path, _config(listeners.port, transport_kind)) as gw:
            for i in range(len(HOSTILE)):
                resp = await gw.http.get(
                    "/postback", params={"externalid": f"x{i}", "traffic_source": f"t{i}"}
                )
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["postbacks"] == 1
            for i, host in enumerate(HOSTILE):
                resp = await gw.http.post("/api/postbacks/test", json={"source": f"t{i}"})
                assert resp.status == 200, (host, await resp.text())
                body = await resp.json()
                assert body["outcome"] == "rejected", (host, body)
                assert "blocked" in body["reason"] or "invalid URL" in body["reason"], body
            rows = await gw.settled()
            assert len(rows) == len(HOSTILE)
            for d in rows:
                assert d.status == "failed", d
                assert d.last_reason and "blocked" in d.last_reason, d
                attempts = await gw.store.list_attempts(d.delivery_id)
                assert len(attempts) == 1 and attempts[0].outcome == "rejected"
    assert listeners.connections == 0


@pytest.mark.parametrize(
    "address",
    ["::ffff:0:127.0.0.1", "3fff::1", "3fff:fff::1", "5f00::1", "5f00:ffff::1", "4000::1"],
)
def test_issue_cases_are_blocked(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None
