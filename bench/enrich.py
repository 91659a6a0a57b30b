"""``python -m bench enrich``: what visit enrichment costs a click.

Two parts, one run:

1. *Steps*, in process: the per-click cost of each enrichment step (a
   user-agent parse, a cached user-agent hit, a geo lookup of a new address,
   a cached one, the client address behind a trusted proxy, the whole
   ``visit_tokens``), each the median of several timed loops.
2. *Clicks per second*, end to end: two ``python -m gateway serve`` processes
   with the same config but ``[enrich]`` on in one and off in the other, both
   behind a trusted proxy (``X-Forwarded-For``), loaded by ``wrk`` in
   interleaved rounds (off, on, on, off, …) so that a neighbour's load hits
   both alike; the figure is the median of the per-round ratios.

The traffic mix: user agents drawn Zipf-like from real browser strings (desktop
Chrome/Edge/Firefox/Safari, iPhone Safari, Android Chrome on many devices,
Samsung Internet, Facebook and Instagram in-app, a few bots), 5 % of them made
unique (an in-app build number), and an address per click drawn at random from
public IPv4 space, so the geo cache almost never hits.  Loopback only; every
wrk run is bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from multidict import CIMultiDict, CIMultiDictProxy

from bench.procs import spawn_gateway
from gateway.enrich.base import Enrichers, Visit
from gateway.enrich.geo import default_geo_dir, open_geo
from gateway.enrich.useragent import UserAgentEnricher, _parse, _resolver
from gateway.intake.client_address import client_address
from gateway.tokens import visit_tokens

T = TypeVar("T")

__all__ = ("USER_AGENTS", "main", "step_costs", "user_agent_mix")

_CHROME_DEVICES = (
    "SM-S918B",
    "SM-A546B",
    "SM-G991B",
    "Pixel 7",
    "Pixel 8 Pro",
    "M2101K6G",
    "CPH2451",
    "moto g(30)",
    "V2207",
    "RMX3630",
)
#: Real user-agent strings, most common first.
USER_AGENTS: tuple[str, ...] = (
    *(
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{v}.0.0.0 Safari/537.36"
        for v in (124, 123, 122, 121)
    ),
    *(
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) AppleWebKit/605.1.15 "
        f"(KHTML, like Gecko) Version/{v.replace('_', '.')} Mobile/15E148 Safari/604.1"
        for v in ("17_4_1", "17_3", "16_6", "17_5")
    ),
    *(
        f"Mozilla/5.0 (Linux; Android 14; {d}) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/124.0.6367.82 Mobile Safari/537.36"
        for d in _CHROME_DEVICES
    ),
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,2;FBMD/iPhone;FBSN/iOS;FBSV/17.3;FBSS/3;"
    "FBID/phone;FBLC/en_US;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 Instagram "
    "312.0.0.32.112 Android (33/13; 420dpi; 1080x2400; Google/google; Pixel 7; panther; "
    "panther; en_US; 548323740)",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
)
#: Share of clicks whose user agent is new (an in-app build number): cache misses.
UNIQUE_SHARE = 0.05


def user_agent_mix(n: int, seed: int = 1) -> list[str]:
    """``n`` user agents, Zipf-weighted over USER_AGENTS, UNIQUE_SHARE made unique."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(USER_AGENTS))]
    out = rng.choices(USER_AGENTS, weights, k=n)
    for i in range(n):
        if rng.random() < UNIQUE_SHARE:
            out[i] = f"{out[i]} [FBAN/FB4A;FBAV/{rng.randrange(10**9)}.0.0.0;]"
    return out


def public_ipv4(rng: random.Random) -> str:
    while True:
        a = rng.randint(1, 223)
        if a not in (10, 100, 127, 169, 172, 192):  # skips the private-looking blocks
            return f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"


def _per_item_us(fn: Callable[[T], object], items: Sequence[T], repeats: int = 5) -> float:
    """Median over ``repeats`` of the microseconds ``fn`` takes per item."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            fn(item)
        times.append((time.perf_counter() - started) / len(items) * 1e6)
    return statistics.median(times)


def step_costs(geo_dir: Path, n: int = 5000) -> dict[str, float]:
    """Microseconds per click of each enrichment step (medians)."""
    rng = random.Random(7)
    agents = user_agent_mix(n)
    visits = [Visit(ip=public_ipv4(rng), user_agent=a) for a in agents]
    ua = UserAgentEnricher()
    geo, note = open_geo(geo_dir)
    if geo is None:
        raise RuntimeError(note)
    resolver = _resolver()
    costs: dict[str, float] = {}
    costs["user agent, parse (cache miss)"] = _per_item_us(
        lambda a: _parse(resolver, a), agents[:500], 3
    )
    for v in visits:
        ua.tokens(v)
    costs["user agent, cached"] = _per_item_us(ua.tokens, visits)
    fresh = [public_ipv4(rng) for _ in range(n)]
    costs["geo, new address (city + ASN)"] = _per_item_us(geo._find, fresh)
    for v in visits:
        geo.tokens(v)
    costs["geo, cached address"] = _per_item_us(geo.tokens, visits)
    nets = [ipaddress.ip_network("127.0.0.0/8")]
    headers = CIMultiDictProxy(CIMultiDict({"X-Forwarded-For": "203.0.113.9, 127.0.0.2"}))
    costs["client address, trusted proxy + XFF"] = _per_item_us(
        lambda _: client_address("127.0.0.1", headers, nets), visits
    )
    both = Enrichers([ua, geo])
    costs["visit_tokens, enrichment off"] = _per_item_us(
        lambda v: visit_tokens(v, None, 1024), visits
    )
    # each repeat gets new addresses (a cached repeat would flatter the figure)
    new = [[Visit(ip=public_ipv4(rng), user_agent=v.user_agent) for v in visits] for _ in range(5)]
    times = []
    for batch in new:
        started = time.perf_counter()
        for v in batch:
            visit_tokens(v, both, 1024)
        times.append((time.perf_counter() - started) / len(batch) * 1e6)
    costs["visit_tokens, on (the mix, new addresses)"] = statistics.median(times)
    geo.close()
    return costs


_LUA = """
-- one click per request: a user agent from the mix, a new public address (XFF)
local agents = {%s}
local n = #agents
local i = 0
math.randomseed(%d)
local function octet1()
  while true do
    local a = math.random(1, 223)
    if a ~= 10 and a ~= 100 and a ~= 127 and a ~= 169 and a ~= 172 and a ~= 192 then
      return a
    end
  end
end
request = function()
  i = i + 1
  local ip = octet1() .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "."
    .. math.random(1, 254)
  wrk.headers["User-Agent"] = agents[(i %% n) + 1]
  wrk.headers["X-Forwarded-For"] = ip
  wrk.headers["Accept-Language"] = "en-US,en;q=0.9"
  return wrk.format("GET", "/click/c?ext=" .. i .. "&zone=z" .. (i %% 50))
end
"""

_CONFIG = """
[server]
trusted_proxies = ["127.0.0.0/8"]

[enrich]
user_agent = {on}
geo = {on}
geo_dir = "{geo}"

[batch]
max_wait_ms = 2.0
max_size = 2000

[delivery]
allow_private_targets = true

[[traffic_sources]]
name = "ts"
click_id_param = "ext"
variables = ["zone"]
postback = "http://127.0.0.1:9/pb?c={{externalid}}&co={{country}}&os={{os}}"

[[campaigns]]
id = "c"
traffic_source = "ts"
offer_url = "https://offer.example/lp?s={{click.id}}&co={{country}}&d={{device}}"
"""


def _cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, script: Path, seconds: float, connections: int, pid: int) -> tuple[float, float]:
    """Clicks per second and the gateway's CPU microseconds per click, one wrk run."""
    cpu = _cpu_seconds(pid)
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(script),
            url + "/click/c",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    cpu = _cpu_seconds(pid) - cpu
    if "Non-2xx or 3xx" in done.stdout:
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    total = re.search(r"(\d+) requests in", done.stdout)
    if rate is None or total is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{done.stdout}")
    return float(rate.group(1)), cpu / max(1, int(total.group(1))) * 1e6


def clicks_per_second(
    geo_dir: Path, rounds: int, seconds: float, connections: int, work: Path
) -> dict[str, object]:
    """Interleaved wrk rounds against an enrichment-off and an -on gateway."""
    agents = user_agent_mix(2000, seed=3)
    script = work / "clicks.lua"
    script.write_text(_LUA % (",".join(json.dumps(a) for a in agents), 11))
    children = {}
    try:
        for name, on in (("off", "false"), ("on", "true")):
            config = work / f"{name}.toml"
            config.write_text(_CONFIG.format(on=on, geo=geo_dir))
            children[name] = spawn_gateway(
                str(config), str(work / f"{name}.sqlite"), str(work / f"{name}.log")
            )
        for child in children.values():  # warm-up: caches, connection pools, the GC
            _wrk(child.url, script, 2, connections, child.proc.pid)
        per_round: list[dict[str, float]] = []
        for r in range(rounds):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            got: dict[str, float] = {}
            for name in order:
                child = children[name]
                got[name], got[f"{name}_cpu_us"] = _wrk(
                    child.url, script, seconds, connections, child.proc.pid
                )
            per_round.append(got)
            print(
                f"  round {r + 1}: off {got['off']:.0f}/s ({got['off_cpu_us']:.1f} µs CPU a "
                f"click), on {got['on']:.0f}/s ({got['on_cpu_us']:.1f} µs); ratio "
                f"{got['on'] / got['off']:.3f}, CPU {got['off_cpu_us'] / got['on_cpu_us']:.3f}",
                file=sys.stderr,
            )
    finally:
        for child in children.values():
            child.stop()
    ratios = [g["on"] / g["off"] for g in per_round]
    cpu_ratios = [g["off_cpu_us"] / g["on_cpu_us"] for g in per_round]
    return {
        "rounds": per_round,
        "ratios": ratios,
        "median_ratio": statistics.median(ratios),
        "cpu_ratios": cpu_ratios,
        "median_cpu_ratio": statistics.median(cpu_ratios),
        "median_off_cpu_us": statistics.median(g["off_cpu_us"] for g in per_round),
        "median_on_cpu_us": statistics.median(g["on_cpu_us"] for g in per_round),
        "median_off": statistics.median(g["off"] for g in per_round),
        "median_on": statistics.median(g["on"] for g in per_round),
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench enrich", description=__doc__)
    parser.add_argument("--geo-dir", help="installed geo data (default: as the gateway finds it)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--steps-only", action="store_true")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    geo_dir = Path(args.geo_dir) if args.geo_dir else default_geo_dir()
    if not (geo_dir / "manifest.json").exists():
        print(f"no geo data in {geo_dir}: run python -m gateway geo install", file=sys.stderr)
        return 2
    result: dict[str, object] = {"machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()}"}
    steps = step_costs(geo_dir)
    result["steps_us"] = steps
    for name, us in steps.items():
        print(f"{name:42s} {us:8.2f} µs")
    if not args.steps_only:
        if shutil.which("wrk") is None:
            print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            e2e = clicks_per_second(geo_dir, args.rounds, args.seconds, args.connections, Path(tmp))
        result["clicks"] = e2e
        print(
            f"clicks/s: off {e2e['median_off']:.0f}, on {e2e['median_on']:.0f}; "
            f"median ratio on/off {e2e['median_ratio']:.3f} over {args.rounds} rounds; "
            f"CPU a click off {e2e['median_off_cpu_us']:.1f} µs, "
            f"on {e2e['median_on_cpu_us']:.1f} µs, "
            f"median CPU ratio off/on {e2e['median_cpu_ratio']:.3f} (clicks/s the CPU allows)"
        )
    if args.json:
        print(json.dumps(result))
    return 0
