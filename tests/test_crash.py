"""kill -9 under load loses nothing that was answered 2xx (spec: Durability).

A real gateway process takes concurrent clicks and conversions; at a random
moment it is killed with SIGKILL, restarted on the same SQLite file, and every
click answered 302 and every conversion answered 2xx must be in the store
with as many deliveries as its answer said it queued.  Several rounds.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.gateway_proc import GatewayProcess

CONFIG = """
[batch]
max_wait_ms = 1.0

[delivery]
allow_private_targets = true
schedule = [30.0]
max_attempts = 2

[[traffic_sources]]
name = "ts"
variables = ["zone"]
postback = "http://127.0.0.1:9/pb?c={externalid}&p={payout}"

[[traffic_sources.postbacks]]
name = "every"
url = "http://127.0.0.1:9/all?c={externalid}&s={status}"
statuses = ["pending", "approved", "rejected"]

[[campaigns]]
id = "camp"
traffic_source = "ts"
offer_url = "https://offer.example/?sub={click.id}"
"""

ROUNDS = 3
WORKERS = 24


async def _load(
    base: str, stop_at: float, answered: dict[str, Any], clicks: list[str], round_no: int
) -> None:
    connector = aiohttp.TCPConnector(limit=WORKERS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(w: int) -> None:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                try:
                    if n % 4 == 1 or not clicks:
                        async with session.get(
                            f"{base}/click/camp",
                            params={"externalid": f"e{w}-{n}"},
                            allow_redirects=False,
                        ) as resp:
                            if resp.status == 302:
                                clicks.append(resp.headers["Location"].split("sub=")[1])
                        continue
                    click_id = random.choice(clicks)
                    txid = f"r{round_no}-w{w}-{n}"
                    status = random.choice(["approved", "pending"])
                    async with session.get(
                        f"{base}/postback",
                        params={
                            "cid": click_id,
                            "txid": txid,
                            "payout": "1.25",
                            "status": status,
                        },
                    ) as resp:
                        if 200 <= resp.status < 300:
                            answered[txid] = (click_id, await resp.json())
                except (TimeoutError, aiohttp.ClientError, ConnectionError):
                    await asyncio.sleep(0.01)  # the process is gone: keep trying until stop_at

        await asyncio.gather(*(worker(w) for w in range(WORKERS)))


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_kill9_loses_nothing_answered(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    db = tmp_path / "gateway.sqlite"
    started = time.monotonic()
    answered: dict[str, Any] = {}
    clicks: list[str] = []
    for round_no in range(ROUNDS):
        gw = GatewayProcess(config, db, tmp_path / "gateway.log")
        gw.start()
        run_for = random.uniform(0.8, 1.6)
        load = asyncio.create_task(
            _load(gw.url, time.monotonic() + run_for + 0.3, answered, clicks, round_no)
        )
        await asyncio.sleep(run_for)
        await asyncio.to_thread(gw.kill9)  # mid-load: requests are in flight
        await load
    assert time.monotonic() - started < 60

    # One restart more: the store opens cleanly after the last kill.
    gw = GatewayProcess(config, db, tmp_path / "gateway.log")
    gw.start()
    gw.stop()
    assert len(answered) > 100 and clicks, (len(answered), len(clicks))
    print(f"answered: {len(answered)} conversions, {len(clicks)} clicks")
    with sqlite3.connect(db) as conn:
        stored_clicks = {r[0] for r in conn.execute("SELECT click_id FROM clicks")}
        conversions = {
            r[0]: r[1] for r in conn.execute("SELECT conversion_id, status FROM conversions")
        }
        per_conversion: dict[str, int] = {}
        for conv, n in conn.execute("SELECT conversion_id, COUNT(*) FROM deliveries GROUP BY 1"):
            per_conversion[conv] = n
    missing_clicks = [c for c in clicks if c not in stored_clicks]
    assert not missing_clicks, f"{len(missing_clicks)} answered clicks lost"
    lost = [t for t, (_, body) in answered.items() if body["conversion_id"] not in conversions]
    assert not lost, f"{len(lost)} of {len(answered)} answered conversions lost"
    for txid, (_, body) in answered.items():
        if body["status"] == "accepted":
            assert per_conversion.get(body["conversion_id"], 0) >= body["postbacks"], txid
