"""Scale-out faults with real processes on one PostgreSQL (spec: Durability).

Two gateway processes share a database; the sink stands for the network.
- kill -9 one of them with deliveries in flight: every conversion answered
  2xx is stored and delivered at least once, the survivor taking over the
  dead one's deliveries when their leases lapse; doubles only from what was
  in flight.
- one conversion sent to both at once is accepted once.
- PostgreSQL stopped under load: intake answers 503, never a false 2xx, and
  comes back by itself when the server does.
Skipped without a PostgreSQL server (``GATEWAY_TEST_PG_DSN``; .ci/run has one).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.store import open_store
from tests.gateway_proc import GatewayProcess, free_port
from tests.sinks import Sink
from tests.store_fixtures import fresh_pg_url, pg_skip_reason

ONE_LOOP = True  # real processes: once is enough

LEASE = 2.0
CONFIG = """
[batch]
max_wait_ms = 1.0

[store]
lease = {lease}

[delivery]
allow_private_targets = true
max_connections_per_host = 16
schedule = [0.5]
max_attempts = 5

[[traffic_sources]]
name = "ts"
postback = "{sink}?c={{externalid}}"

[[campaigns]]
id = "camp"
traffic_source = "ts"
offer_url = "https://offer.example/?sub={{click.id}}"
"""


def _pg_url() -> str:
    url = fresh_pg_url()
    if url is None:
        pytest.skip(pg_skip_reason())
    return url


def _config(tmp_path: Path, sink_url: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(lease=LEASE, sink=sink_url))
    return path


async def _convert(
    session: aiohttp.ClientSession, click_base: str, conv_base: str, name: str
) -> tuple[int, dict[str, Any] | None]:
    """A click on one process, its conversion on (maybe) another: (status, body)."""
    async with session.get(
        f"{click_base}/click/camp", params={"externalid": name}, allow_redirects=False
    ) as resp:
        if resp.status != 302:
            return resp.status, None
        click_id = resp.headers["Location"].split("sub=")[1]
    async with session.get(
        f"{conv_base}/postback", params={"cid": click_id, "txid": name, "status": "approved"}
    ) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def _load(
    bases: list[str], stop_at: float, answered: dict[str, int], prefix: str, workers: int = 12
) -> None:
    """Conversions until ``stop_at`` through every live base; 2xx answers kept by name."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def worker(w: int) -> None:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                name = f"{prefix}{w}-{n}"
                click_base = bases[(w + n) % len(bases)]
                conv_base = bases[(w + n + 1) % len(bases)]
                try:
                    status, body = await _convert(session, click_base, conv_base, name)
                except (TimeoutError, aiohttp.ClientError, ConnectionError):
                    await asyncio.sleep(0.01)
                    continue
                if 200 <= status < 300 and body is not None:
                    answered[name] = int(body.get("postbacks", 0))

        await asyncio.gather(*(worker(w) for w in range(workers)))


async def _wait_delivered(sink: Sink, names: list[str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        hit = {h.path_qs.split("c=")[-1] for h in sink.hits}
        missing = [n for n in names if n not in hit]
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_kill9_one_of_two_every_answered_conversion_is_delivered(tmp_path: Path) -> None:
    url = _pg_url()
    async with Sink() as sink:
        config = _config(tmp_path, sink.url("/slow") + "?delay=0.3&x=1")
        a = GatewayProcess(config, url, tmp_path / "a.log")
        b = GatewayProcess(config, url, tmp_path / "b.log")
        a.start()
        b.start()
        try:
            answered: dict[str, int] = {}
            load = asyncio.create_task(
                _load([a.url, b.url], time.monotonic() + 1.5, answered, "k", workers=12)
            )
            await asyncio.sleep(1.2)  # slow network: A has attempts in flight
            await asyncio.to_thread(a.kill9)
            await load
            # B alone for a while: its own conversions, and A's leases lapse
            await _load([b.url], time.monotonic() + 1.0, answered, "s", workers=6)
            queued = [n for n, postbacks in answered.items() if postbacks]
            assert len(queued) > 50, len(queued)
            missing = await _wait_delivered(sink, queued, timeout=4 * LEASE + 20)
            assert not missing, f"{len(missing)} of {len(queued)} answered, never delivered"
            sent = Counter(h.path_qs.split("c=")[-1] for h in sink.hits)
            doubles = sum(n - 1 for n in sent.values() if n > 1)
            # only A's attempts under way (or unrecorded) at the kill can go twice:
            # at most its per-host slots plus one attempt-log group
            assert doubles <= 16 + 64, doubles
            print(f"answered {len(answered)}, delivered all, {doubles} sent twice")
        finally:
            a.stop()
            b.stop()


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_one_conversion_to_two_processes_at_once_is_accepted_once(tmp_path: Path) -> None:
    url = _pg_url()
    async with Sink() as sink:
        config = _config(tmp_path, sink.url("/ok"))
        a = GatewayProcess(config, url, tmp_path / "a.log")
        b = GatewayProcess(config, url, tmp_path / "b.log")
        a.start()
        b.start()
        try:
            async with aiohttp.ClientSession() as session:
                for i in range(30):
                    async with session.get(
                        f"{a.url}/click/camp", params={"externalid": f"d{i}"}, allow_redirects=False
                    ) as resp:
                        click_id = resp.headers["Location"].split("sub=")[1]
                    params = {"cid": click_id, "txid": f"t{i}", "status": "approved"}

                    async def send(base: str, params: dict[str, str] = params) -> Any:
                        async with session.get(f"{base}/postback", params=params) as resp:
                            assert resp.status == 200
                            return await resp.json()

                    bodies = await asyncio.gather(send(a.url), send(b.url))
                    accepted = [x for x in bodies if x["status"] == "accepted"]
                    assert len(accepted) == 1, bodies
            store = open_store(url)
            await store.open()
            try:
                counts = await store.counts()  # type: ignore[attr-defined]
            finally:
                await store.close()
            assert counts["conversions"] == 30 and counts["deliveries"] == 30, counts
        finally:
            a.stop()
            b.stop()


class _Cluster:
    """A PostgreSQL cluster of this test's own, to stop and start under load."""

    def __init__(self, directory: Path) -> None:
        self.bin = Path(os.environ.get("GATEWAY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
        self.dir = directory
        self.port = free_port()
        self.root = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.root:  # PostgreSQL refuses to run as root: as its own user
            command = ["su", "postgres", "-c", " ".join(f"'{a}'" for a in command)]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if not (self.bin / "initdb").exists():
            pytest.skip(f"no PostgreSQL binaries in {self.bin} (GATEWAY_TEST_PG_BIN)")
        self.dir.mkdir(mode=0o700)
        if self.root:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_postgresql_restarted_under_load_no_false_2xx_and_recovery(tmp_path: Path) -> None:
    if not os.environ.get("GATEWAY_TEST_PG_DSN"):
        pytest.skip(pg_skip_reason())
    top = Path(tempfile.mkdtemp(prefix="gw-pg-restart-"))
    top.chmod(0o755)  # the postgres user goes through it
    cluster = _Cluster(top / "pg")
    try:
        cluster.init()
        cluster.start()
        async with Sink() as sink:
            gw = GatewayProcess(_config(tmp_path, sink.url("/ok")), cluster.url, tmp_path / "g.log")
            gw.start()
            try:
                answered: dict[str, int] = {}
                statuses: Counter[int] = Counter()
                stop_at = time.monotonic() + 6.0
                load = asyncio.create_task(_load([gw.url], stop_at, answered, "p", workers=6))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(cluster.stop)
                down_from = len(answered)
                async with aiohttp.ClientSession() as session:
                    for i in range(10):  # while it is down: 503, never 2xx
                        status, _ = await _convert(session, gw.url, gw.url, f"down{i}")
                        statuses[status] += 1
                assert set(statuses) <= {503}, statuses
                await asyncio.sleep(1.0)
                await asyncio.to_thread(cluster.start)
                await load
                assert len(answered) > down_from  # it came back by itself
                after = {}
                await _load([gw.url], time.monotonic() + 1.0, after, "q", workers=2)
                assert after, "no 2xx after PostgreSQL came back"
                missing = await _wait_delivered(sink, [n for n, p in answered.items() if p], 20)
                assert not missing, f"{len(missing)} answered 2xx but not stored and delivered"
            finally:
                gw.stop()
    finally:
        try:
            cluster.stop()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(cluster.dir.parent, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc: no procps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _clicks_counted(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_clicks_total{")
    )


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_workers_share_one_port_metrics_add_up_and_a_dead_worker_comes_back(
    tmp_path: Path,
) -> None:
    url = _pg_url()
    async with Sink() as sink:
        gw = GatewayProcess(_config(tmp_path, sink.url("/ok")), url, tmp_path / "w.log", workers=2)
        gw.start()
        try:
            assert gw.proc is not None
            deadline = time.monotonic() + 10
            while len(workers := _children(gw.proc.pid)) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert len(workers) == 2, workers
            n = 60
            # a new connection per request: the kernel spreads them over both workers
            for i in range(n):
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(
                        f"{gw.url}/click/camp",
                        params={"externalid": f"m{i}"},
                        allow_redirects=False,
                    ) as resp,
                ):
                    assert resp.status == 302
            scrapes = []
            for _ in range(12):  # whichever worker answers, it counts them all
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{gw.url}/metrics") as resp,
                ):
                    scrapes.append(_clicks_counted(await resp.text()))
            assert scrapes == [n] * 12, scrapes
            os.kill(workers[0], 9)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                now = _children(gw.proc.pid)
                if len(now) == 2 and workers[0] not in now:
                    break
                await asyncio.sleep(0.1)
            assert len(now) == 2 and workers[0] not in now, now
            assert "died (signal 9); starting it again" in gw.log()
            await asyncio.sleep(1.5)  # the new worker listens
            async with aiohttp.ClientSession() as session:
                for _ in range(10):
                    async with session.get(f"{gw.url}/health") as resp:
                        assert resp.status == 200
                async with session.get(f"{gw.url}/metrics") as resp:
                    assert _clicks_counted(await resp.text()) == n  # the dead one's still count
            gw.signal(15)
            assert await asyncio.to_thread(gw.wait, 40) == 0
            assert "all workers stopped" in gw.log()
        finally:
            gw.stop()


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    gw = GatewayProcess(None, tmp_path / "g.sqlite", tmp_path / "s.log", workers=2)
    with pytest.raises(RuntimeError, match="gateway exited 2"):
        gw.start()
    assert "a SQLite file has one writing process" in gw.log()
