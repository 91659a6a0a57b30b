"""A URL is read one way: compiler, ``check``, dispatcher and both clients agree
on the host, or the URL is refused.

The issue's cases (a backslash before a token, a stored URL whose host is not
the template's) plus a hypothesis property over generated hosts: IPv4
spellings, IPv6 with embedded IPv4, IDNA forms, backslashes, user info.
Whatever compiles must be dialled exactly where the compiled host says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fastrender import TemplateError
from gateway.clock import VirtualClock
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import TransportError
from gateway.dispatch.transport.factory import make_transport
from gateway.dispatch.transport.redirects import send
from gateway.dispatch.transport.ssrf import literal_address
from gateway.dispatch.transport.urls import InvalidURL, split_url
from gateway.metrics import Metrics
from gateway.rules import RuleSpec, compile_rule
from gateway.store.sqlite import SQLiteStore
from tests.gateway_proc import ROOT
from tests.security_helpers import OK, Counting
from tests.sinks import new_delivery


def _rule(template: str):  # type: ignore[no-untyped-def]
    return compile_rule(
        RuleSpec(),
        url=template,
        name="r",
        traffic_source="t",
        method="GET",
        secrets=[],
        answer_rule=None,
        max_click_age=None,
    )


@pytest.mark.parametrize(
    "template",
    [
        "http://11.0.0.1:33233\\{var:h|raw}/x",
        "http://ts.example\\{externalid}/pb",
        "http://ts.example\\@127.0.0.1/pb?c={externalid}",
        "http://a@b@ts.example/pb?c={externalid}",
        "http://ts.exa mple/pb?c={externalid}",
        "http://ts.example%2f/pb?c={externalid}",
    ],
)
def test_ambiguous_authority_is_a_compile_error(template: str) -> None:
    with pytest.raises((ValueError, TemplateError)):
        _rule(template)


def test_check_refuses_a_backslash_before_the_first_token(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        '[[traffic_sources]]\nname = "a"\npostback = "http://11.0.0.1:33233\\\\{var:h|raw}/x"\n'
        '[[traffic_sources]]\nname = "b"\npostback = "http://ts.example\\\\{externalid}/pb"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert out.count("backslash in the URL") == 2, out


@pytest.mark.parametrize(
    ("path", "host"),
    [
        ("{a}:{p}\\@{b}:{p}/x", "{a}"),  # stored before the compile check: readers disagree
        ("{b}:{p}/x", "{a}"),  # a host that is not the template's
    ],
)
async def test_a_url_whose_host_is_not_the_templates_is_refused(
    tmp_path: Path, transport_kind: str, path: str, host: str
) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    settings = DeliverySettings(transport=transport_kind, allow_private_targets=True)
    clock = VirtualClock(1_800_000_000.0)
    dispatcher = Dispatcher(settings, store, Metrics(), clock)
    await dispatcher.start()
    try:
        async with Counting(answer=OK) as listeners:
            names = {"a": "127.0.0.1", "b": "127.0.0.2", "p": str(listeners.port)}
            url = "http://" + path.format(**names)
            d = new_delivery(url, now=clock.now(), host=host.format(**names))
            result = await store.commit_batch([], [], [d])
            dispatcher.submit(result.deliveries)
            await dispatcher.wait_idle()
            row = await store.get_delivery(result.deliveries[0].delivery_id)
            assert row is not None and row.status == "failed", row
            assert row.last_reason and (
                "invalid URL" in row.last_reason or "blocked" in row.last_reason
            )
        assert listeners.connections == 0
    finally:
        await dispatcher.stop(timeout=1.0)
        await store.close()


# -- the property --------------------------------------------------------------

_LOOPBACKS = (0x7F000001, 0x7F000002, 0x7F000003)


def _ipv4_spellings(value: int) -> st.SearchStrategy[str]:
    a, b, c, d = value.to_bytes(4, "big")
    forms = [
        f"{a}.{b}.{c}.{d}",
        str(value),
        hex(value),
        f"0{value:o}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"0x{a:x}.{b}.{c}.{d}",
        f"0{a:o}.{b}.{c}.{d}",
        "".join(chr(0xFF10 + int(ch)) if ch.isdigit() else "．" for ch in f"{a}.{b}.{c}.{d}"),
    ]
    return st.sampled_from(forms)


_V4 = st.sampled_from(_LOOPBACKS).flatmap(_ipv4_spellings)
_V6 = st.sampled_from(_LOOPBACKS).map(lambda v: f"[::ffff:{ipaddress.IPv4Address(v)}]") | st.just(
    "[::1]"
)
_NAMES = st.sampled_from(
    ["ⓛⓞⓒⓐⓛⓗⓞⓢⓣ", "ｌｏｃａｌｈｏｓｔ", "LocalHost", "pb.example", "PB.Example.", "bücher.example"]
)
_SIMPLE = _V4 | _V6 | _NAMES
_HOSTS = (
    _SIMPLE
    | st.tuples(_SIMPLE, _SIMPLE).map(lambda p: f"{p[0]}\\@{p[1]}")
    | st.tuples(_SIMPLE, _SIMPLE).map(lambda p: f"{p[0]}@{p[1]}")
    | st.tuples(st.sampled_from(["u", "u:p", "a@b", "u\\"]), _SIMPLE).map(lambda p: "@".join(p))
    | st.tuples(_SIMPLE, st.sampled_from(["\\", "\\x", "%2e", " ", "\t"])).map("".join)
)


async def _dial(host: str, kind: str) -> None:
    async with Counting(answer=OK) as listeners:
        template = f"http://{host}:{listeners.port}/pb?c={{externalid}}"
        try:
            rule = _rule(template)
        except (ValueError, TemplateError):
            return  # refused at compile time: it never reaches a client
        url = rule.render([{"externalid": "x"}])[0][0]
        assert split_url(url).host == rule.host  # what check shows is what is read
        literal = literal_address(rule.host)
        resolve = {} if literal is not None else {rule.host: f"127.0.0.3:{listeners.port}"}
        settings = DeliverySettings(
            transport=kind, allow_private_targets=True, resolve=resolve, timeout=3.0
        )
        client = make_transport(msgspec.structs.replace(settings))
        try:
            await send(client, "GET", url, None, {}, 3.0)
        except TransportError:
            assert listeners.connections == 0, (host, listeners.seen)
            return
        finally:
            await client.close()
        expected = "127.0.0.3" if literal is None else str(literal)
        if literal is not None and literal.version == 6 and literal.ipv4_mapped is not None:
            expected = str(literal.ipv4_mapped)
        seen = [s.removeprefix("::ffff:") for s in listeners.seen]
        assert seen == [expected], (host, rule.host, listeners.seen)


@pytest.mark.parametrize("kind", ["aiohttp", "lean"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host=_HOSTS)
def test_compiled_host_check_and_dial_agree(kind: str, host: str) -> None:
    asyncio.run(_dial(host, kind))


def test_invalid_url_is_a_value_error() -> None:
    assert issubclass(InvalidURL, ValueError)
