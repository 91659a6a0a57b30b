"""The console in a real browser: Debian's chromium driven by playwright.

A real gateway process on loopback with a real sink.  The browser logs in,
watches a live counter move while the test sends conversions, searches a
delivery, opens it, retries it, fixes and replays it after a SIGHUP reload,
tests a postback, and visits every page; no page may show a secret, and the
browser may request nothing outside the gateway (every request is recorded;
chromium also resolves no name but 127.0.0.1).

With ``GATEWAY_CONSOLE_SCREENSHOTS=docs/console`` it saves a PNG of each page
(the pictures in ``docs/console.md``).  Skipped, saying why, where chromium or
playwright is missing; ``.ci/run`` installs both, so CI always runs it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.gateway_proc import GatewayProcess
from tests.sinks import Sink

CHROMIUM = "/usr/bin/chromium"
#: set by .ci/run: there, a missing browser is a failure, not a skip
REQUIRED = os.environ.get("GATEWAY_CONSOLE_REQUIRE_BROWSER") == "1"


def _absent(why: str) -> None:
    if REQUIRED:
        raise RuntimeError(f"GATEWAY_CONSOLE_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why, allow_module_level=True)


try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # pragma: no cover - CI installs it
    _absent("playwright is not installed (pip install playwright==1.64.1)")
if shutil.which(CHROMIUM) is None:  # pragma: no cover - CI installs it
    _absent(f"no {CHROMIUM} (apt-get install chromium); the console's browser tests need it")

ONE_LOOP = True  # one gateway process and one browser for the module
TOKEN = "browser-api-token-0123456789abcdef"
KEY = "KEYbrowser-secret-0123456789"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
SHOTS = os.environ.get("GATEWAY_CONSOLE_SCREENSHOTS")


def config_text(port: int, fixed: str = "") -> str:
    return f"""
api_token = "{TOKEN}"
[batch]
max_wait_ms = 1.0

[delivery]
allow_private_targets = true
timeout = 2.0

[[traffic_sources]]
name = "hand"
[[traffic_sources.postbacks]]
name = "hand:sale"
url = "http://127.0.0.1:{port}/ok?c={{externalid}}&p={{payout}}&key={KEY}{fixed}"
secret_params = ["key"]

[[traffic_sources]]
name = "dead"
[[traffic_sources.postbacks]]
name = "dead:sale"
url = "http://127.0.0.1:{port}/status/404?c={{externalid}}"

[[campaigns]]
id = "spring"
name = "Spring sale"
traffic_source = "hand"
offer_url = "http://127.0.0.1:{port}/ok?sub={{click.id}}"
"""


class Browser:
    def __init__(self, page: Page, gateway: GatewayProcess) -> None:
        self.page = page
        self.gateway = gateway
        self.requests: list[str] = []
        self.errors: list[str] = []  # CSP refusals and script errors, from the console
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def visit(self, path: str) -> str:
        await self.page.goto(self.gateway.url + path)
        return await self.page.content()

    async def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Browser, Sink, GatewayProcess, Path]]:
    async with Sink() as sink:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(config_text(sink.port))
        gw = GatewayProcess(cfg, tmp_path / "gw.sqlite", tmp_path / "gw.log")
        await asyncio.to_thread(gw.start)
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=ARGS
                )
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                page = await context.new_page()
                page.set_default_timeout(15_000)
                yield Browser(page, gw), sink, gw, cfg
                await browser.close()
        finally:
            await asyncio.to_thread(gw.stop)


async def _convert(gw: GatewayProcess, n: int, prefix: str, source: str = "hand") -> None:
    items = [
        {
            "externalid": f"{prefix}-{i}",
            "traffic_source": source,
            "txid": f"{prefix}-tx{i}",
            "payout": "1.5",
        }
        for i in range(n)
    ]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            gw.url + "/api/conversions",
            json=items,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as resp:
            assert resp.status == 200, await resp.text()


async def _hits(sink: Sink, needle: str, n: int) -> list[str]:
    for _ in range(200):
        found = [h.path_qs for h in sink.hits if needle in h.path_qs]
        if len(found) >= n:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{needle}: {[h.path_qs for h in sink.hits]}")


async def test_the_console_end_to_end(
    stack: tuple[Browser, Sink, GatewayProcess, Path],
) -> None:
    b, sink, gw, cfg = stack
    page = b.page
    # -- log in ---------------------------------------------------------------
    await b.visit("/console")
    assert page.url.endswith("/console/login")
    await b.shot("login")
    await page.fill("input[name=token]", "wrong")
    await page.click("button[type=submit]")
    await expect(page.locator("p.error")).to_contain_text("wrong API token")
    await page.fill("input[name=token]", TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Overview")
    cookies = await page.context.cookies()
    [cookie] = [c for c in cookies if c["name"] == "gateway_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # -- the live counter moves while conversions arrive ----------------------
    received = page.locator("#card-received b")
    await expect(received).to_have_text("0")
    await _convert(gw, 3, "live")
    await expect(received).to_have_text("3", timeout=10_000)
    await _hits(sink, "c=live-", 3)
    await expect(page.locator("#card-delivered b")).to_have_text("3", timeout=10_000)
    await expect(page.locator('tr[data-source="hand"] td[data-col="received"]').first).to_have_text(
        "3"
    )
    p50 = page.locator('tr[data-source="hand"] td[data-col="p50"]').first
    await expect(p50).to_contain_text(" ms")  # end-to-end latency on loopback: milliseconds
    await expect(page.locator("#chart canvas")).to_have_count(1)  # uPlot drew the chart
    await expect(page.locator("#chart .u-legend")).to_contain_text("delivered")
    await b.shot("overview")
    # -- search the log, open a delivery --------------------------------------
    await page.click("nav >> text=Deliveries")
    await page.fill("input[name=externalid]", "live-1")
    await page.click("form.search button")
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("key=***")
    await b.shot("deliveries")
    await rows.first.locator("a").first.click()
    await expect(page.locator("h1")).to_contain_text("Delivery ")
    delivery_url = page.url
    await expect(page.locator("table").nth(1)).to_contain_text("delivered")
    await b.shot("delivery")
    # -- retry: sent once more, as it was --------------------------------------
    await page.click("text=Retry as it was sent")
    await expect(page.locator("p.notice")).to_contain_text("requeued 1")
    await _hits(sink, "c=live-1&", 2)
    # -- a broken config is refused, and the config page says why -------------
    cfg.write_text(config_text(sink.port).replace('name = "dead"', "name = 7"))
    gw.signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    await b.visit("/console/config")
    await expect(page.locator("#reload")).to_contain_text("refused")
    await expect(page.locator("#reload")).to_contain_text("traffic_sources[1]")
    # -- fix the config, reload, fix-and-replay with its dry run ---------------
    cfg.write_text(config_text(sink.port, fixed="&v=2"))
    gw.signal(signal.SIGHUP)
    await asyncio.sleep(1.0)
    await b.visit("/console/config")
    await expect(page.locator("#reload")).to_contain_text("accepted")
    await page.goto(delivery_url)
    await expect(page.locator("table").nth(1)).to_contain_text("delivered", timeout=10_000)
    await page.click("text=Fix and replay: show the new rendering first")
    await expect(page.locator("h1")).to_contain_text("dry run")
    await expect(page.locator(".diff-new")).to_contain_text("v=2")
    await expect(page.locator(".diff-old")).not_to_contain_text("v=2")
    await b.shot("replay-dry-run")
    assert not [h for h in sink.hits if "v=2" in h.path_qs]  # a dry run sends nothing
    await page.click("text=Replay with the new rendering")
    await expect(page.locator("p.notice")).to_contain_text("re-rendered 1, queued 1")
    [sent] = await _hits(sink, "v=2", 1)
    assert "c=live-1&" in sent and KEY in sent  # the real request has the key; pages never
    # -- test a postback against the sink -------------------------------------
    await page.click("nav >> text=Test a postback")
    await page.fill("input[name=source]", "hand")
    await page.fill("textarea[name=values]", "externalid=from-the-form\npayout=4")
    await page.click("form.stack button")
    await expect(page.locator("#result")).to_contain_text("delivered")
    await expect(page.locator("#result")).to_contain_text("key=***")
    await _hits(sink, "c=from-the-form", 1)
    await b.shot("test-postback")
    # -- the other pages -------------------------------------------------------
    for path, name, expected in (
        ("/console/hosts", "hosts", "success (1 h)"),
        ("/console/catalog", "catalog", "exoclick"),
        (
            "/console/catalog?preset=exoclick&campaign=spring&base_url=https://gw.example",
            "catalog-preset",
            "https://gw.example/click/spring?",
        ),
        ("/console/config", "config", "hand:sale"),
    ):
        text = await b.visit(path)
        assert expected in text, (path, text[-2000:])
        await b.shot(name)
    # -- bulk replay by filter: the count first, then the replay --------------
    await _convert(gw, 2, "dead", source="dead")
    await _hits(sink, "c=dead-", 2)
    await b.visit("/console/deliveries?status=failed&traffic_source=dead")
    await expect(page.locator("tbody tr")).to_have_count(2)
    await page.click("text=Replay every failed delivery matching these filters")
    await expect(page.locator("#count")).to_contain_text("2 failed deliveries match")
    await b.shot("bulk-replay")
    await page.click("text=Replay these 2")
    await expect(page.locator("#count")).to_contain_text("Requeued 2")
    await _hits(sink, "c=dead-", 4)
    # -- no secret on any page, nothing requested outside the gateway ----------
    for path in ("/console", "/console/deliveries", "/console/config", "/console/test"):
        text = await b.visit(path)
        assert KEY not in text and TOKEN not in text, path
    assert b.requests, "no request recorded"
    outside = [u for u in b.requests if not u.startswith(gw.url + "/")]
    assert not outside, outside
    # the 401 of the wrong token and the favicon's 404 are answers, not errors of ours
    assert not [x for x in b.errors if not x.startswith("Failed to load resource")], b.errors
    # -- log out: the console is closed again ---------------------------------
    await page.click("nav form.logout button")
    assert page.url.endswith("/console/login")
    await b.visit("/console/deliveries")
    assert page.url.endswith("/console/login")
