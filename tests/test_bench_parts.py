"""The load tester's parts, each against real processes on loopback.

The sink and the ceiling run as ``python -m bench.sink`` / ``bench.ceiling``
children, exactly as ``bench run`` starts them; the load generator and the
expected-URL model are driven against them.
"""

from __future__ import annotations

import asyncio
import random
import tomllib
from collections.abc import Iterator

import aiohttp
import msgspec
import pytest

from _fastrender._plan_py import compile_template
from bench import configgen, expect
from bench.cli import main
from bench.load import Outcome, Request, run_load
from bench.procs import Child, spawn_server
from bench.report import percentile
from bench.runner import ListSource
from bench.sink import Record, Records


@pytest.fixture
def sink_factory() -> Iterator[object]:
    children: list[Child] = []

    def start(*args: str) -> Child:
        child = spawn_server("sink", "bench.sink", list(args))
        children.append(child)
        return child

    yield start
    for child in children:
        child.stop()


async def _records(sink: Child) -> Records:
    async with aiohttp.ClientSession() as session, session.get(sink.url + "/_records") as answer:
        return msgspec.json.decode(await answer.read(), type=Records)


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(aiohttp.client.URL(url, encoded=True)) as answer:
            return answer.status, await answer.read()


async def test_sink_records_the_raw_target(sink_factory) -> None:
    sink = sink_factory()
    status, body = await _get(sink.url + "/ts1/pb?cid=a%20b%26c&p=1.50&u=%C3%BC")
    assert (status, body) == (200, b"OK")
    records = await _records(sink)
    assert [(r.method, r.target) for r in records.records] == [
        ("GET", "/ts1/pb?cid=a%20b%26c&p=1.50&u=%C3%BC")
    ]
    assert records.records[0].host == sink.url.removeprefix("http://")


async def test_sink_failures_are_bounded_per_url(sink_factory) -> None:
    sink = sink_factory("--fail-rate", "1.0", "--max-fails", "2")
    answers = [(await _get(sink.url + "/x?n=1"))[0] for _ in range(3)]
    assert answers[0] in (429, 500) and answers[1] in (429, 500)
    assert answers[2] == 200  # the third attempt always gets through
    records = await _records(sink)
    assert records.refused == 2 and len(records.records) == 1


async def test_sink_disconnects(sink_factory) -> None:
    sink = sink_factory("--disconnect-rate", "1.0", "--max-fails", "4")
    with pytest.raises(aiohttp.ClientError):  # (aiohttp may retry a GET once by itself)
        await _get(sink.url + "/y")
    while (await _records(sink)).disconnected < 4:
        with pytest.raises(aiohttp.ClientError):
            await _get(sink.url + "/y")
    assert (await _get(sink.url + "/y"))[0] == 200
    assert (await _records(sink)).disconnected == 4


async def test_sink_can_lie(sink_factory) -> None:
    dropping = sink_factory("--drop-rate", "1.0")
    assert (await _get(dropping.url + "/z"))[0] == 200
    assert (await _records(dropping)).records == []
    altering = sink_factory("--alter-rate", "1.0")
    await _get(altering.url + "/z?a=1")
    assert [r.target for r in (await _records(altering)).records] == ["/z?a=1x"]


async def test_ceiling_parses_like_the_gateway() -> None:
    with spawn_server("ceiling", "bench.ceiling", []) as ceiling:
        status, body = await _get(ceiling.url + "/postback?cid=abc&payout=1.5&txid=t1&status=sale")
        assert status == 200 and msgspec.json.decode(body)["status"] == "accepted"
        status, body = await _get(ceiling.url + "/postback?cid=abc&status=nonsense")
        assert status == 400 and msgspec.json.decode(body)["field"] == "status"
        assert (await _get(ceiling.url + "/postback?payout=1"))[0] == 400


async def test_load_count_and_fixed_rate(sink_factory) -> None:
    sink = sink_factory()
    requests = [Request(method="GET", target=f"/load?i={i}") for i in range(60)]
    result = await run_load(sink.url, ListSource(requests), concurrency=4, rate=200.0, count=60)
    assert result.sent == 60 and result.statuses == {200: 60}
    assert 0.25 < result.elapsed < 2.0  # 60 requests at 200/s: about 0.3 s
    assert len(result.latencies) == 60
    targets = sorted(r.target for r in (await _records(sink)).records)
    assert targets == sorted(r.target for r in requests)


async def test_load_stops_at_duration(sink_factory) -> None:
    sink = sink_factory()
    requests = [Request(method="GET", target=f"/d?i={i}") for i in range(100_000)]
    result = await run_load(sink.url, ListSource(requests), concurrency=8, duration=0.5)
    assert 0 < result.sent < 100_000 and result.elapsed < 2.0


async def test_load_reports_connection_errors() -> None:
    requests = [Request(method="GET", target="/")] * 3
    result = await run_load(
        "http://127.0.0.1:9", ListSource(requests), concurrency=1, count=3, timeout=2.0
    )
    assert result.sent == 3 and sum(result.errors.values()) == 3 and not result.latencies


def test_percentile_nearest_rank() -> None:
    sample = [float(i) for i in range(1, 101)]
    assert percentile(sample, 50) == 50 and percentile(sample, 99) == 99
    assert percentile(sample, 100) == 100 and percentile([], 50) == 0.0
    assert percentile([3.0], 99) == 3.0


def _answer(source: expect.ConversionSource, request: Request, status: int = 200) -> None:
    source.answered(Outcome(request=request, status=status, latency=0.0, answered_at=1.0))


async def test_expected_urls_follow_the_chains() -> None:
    sources = expect.make_sources(4, "http://127.0.0.1:5555")
    clicks = expect.make_clicks(sources, 16, random.Random(3))
    for i, click in enumerate(clicks):
        click.click_id = f"CL{i}"
    model = expect.ConversionSource(clicks, budget=200, dup=0.3, update=0.3, seed=5)
    sent = []
    while (request := await model.next_request()) is not None:
        sent.append(request)
        _answer(model, request)
    assert len(sent) == 200
    kinds = model.kinds()
    assert kinds["duplicate"] > 0 and kinds["update"] > 0
    expected = model.expected()
    assert len(expected) == kinds["new"] + kinds["update"]
    # independent of the model's own rendering: each URL carries its key and status
    for chain in model.chains:
        for step in chain.steps:
            if step.expected_url is None:
                continue
            assert chain.click.source.template.split("?")[0].split("{")[0] in step.expected_url
            plan = compile_template(chain.click.source.template)
            assert step.expected_url == plan.render(chain.values(step.status))


async def test_a_refused_step_ends_its_chain() -> None:
    sources = expect.make_sources(1, "http://127.0.0.1:5555")
    clicks = expect.make_clicks(sources, 1, random.Random(1))
    clicks[0].click_id = "CL"
    model = expect.ConversionSource(clicks, budget=None, dup=0.0, update=1.0, seed=1)
    first = await model.next_request()
    assert first is not None and first.target.endswith("status=pending")
    _answer(model, first, status=500)
    assert model.expected() == {} and not model.ready


def test_compare_counts_lost_duplicated_wrong() -> None:
    expected = {"http://h:1/a?x=1": 10.0, "http://h:1/b": 10.0, "http://h:1/c": 10.0}
    records = [
        Record(10.5, "GET", "h:1", "/a?x=1", ""),
        Record(10.2, "GET", "h:1", "/b", ""),
        Record(10.9, "GET", "h:1", "/b", ""),
        Record(11.0, "GET", "h:1", "/a?x=2", ""),
    ]
    verdict = expect.compare(expected, records)
    assert verdict.lost == ["http://h:1/c"]
    assert verdict.duplicated == {"http://h:1/b": 1}
    assert verdict.wrong == ["http://h:1/a?x=2"]
    assert sorted(round(x, 3) for x in verdict.e2e) == [0.2, 0.5]
    assert not verdict.ok


def test_generated_config_is_valid_for_the_gateway() -> None:
    config_mod = pytest.importorskip("gateway.config")
    sources = expect.make_sources(6, "http://127.0.0.1:5555")
    text = configgen.render_config(sources)
    config, problems = config_mod.validate(tomllib.loads(text))
    assert config is not None, problems
    assert [p for p in problems if p.level == "error"] == []
    assert config.delivery.allow_private_targets
    assert list(config.delivery.schedule) == list(configgen.RETRY_SCHEDULE)
    assert sorted(config.campaigns) == sorted(s.campaign_id for s in sources)


async def test_sink_keeps_up_with_concurrent_load(sink_factory) -> None:
    sink = sink_factory("--fail-rate", "0.2")
    requests = [Request(method="GET", target=f"/c?i={i}") for i in range(300)]
    result = await run_load(sink.url, ListSource(requests), concurrency=16, count=300)
    assert result.sent == 300 and not result.errors
    records = await _records(sink)
    assert len(records.records) + records.refused == 300
    await asyncio.sleep(0)


def test_config_command_prints_a_valid_config(capsys: pytest.CaptureFixture[str]) -> None:
    config_mod = pytest.importorskip("gateway.config")
    assert main(["config", "--sources", "2", "--sink-port", "4321"]) == 0
    text = capsys.readouterr().out
    config, problems = config_mod.validate(tomllib.loads(text))
    assert config is not None, problems
    assert "http://127.0.0.1:4321/ts1/" in text
