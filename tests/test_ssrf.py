"""The SSRF guard: every blocked range, the odd IPv4 spellings, and the check
at dial time through a real aiohttp client against loopback sinks."""

from __future__ import annotations

import ipaddress

import msgspec
import pytest
from sinks import Sink

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import TransportError
from gateway.dispatch.transport.factory import make_transport
from gateway.dispatch.transport.redirects import send
from gateway.dispatch.transport.ssrf import (
    AddressPolicy,
    blocked_reason,
    literal_address,
    parse_resolve,
)

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.0.1",
    "100.64.0.1",
    "100.127.255.255",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.1.2.3",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::192.168.0.1",
    "64:ff9b:1::a00:1",
    "2002:7f00:1::",
    "2002:c0a8:101::1",
    "2001:0::1",
    "2001:db8::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%1",
    "fec0::1",
    "ff02::1",
    "::127.0.0.1",
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "192.167.255.255",
    "11.0.0.1",
    "2606:4700:4700::1111",
    "2a00:1450::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]

ODD_LOOPBACK = [
    "0x7f.1",
    "2130706433",
    "127.1",
    "0177.0.0.1",
    "0x7f000001",
    "0177.1",
    "127.0.1",
    "0x7F.0.0.1",
    "017700000001",
    "127.0.0.1.",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_addresses(address: str) -> None:
    ip = literal_address(address)
    assert ip is not None
    assert blocked_reason(ip) is not None
    assert AddressPolicy().check(ip) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert blocked_reason(ip) is None


@pytest.mark.parametrize("spelling", ODD_LOOPBACK)
def test_odd_ipv4_spellings_mean_loopback(spelling: str) -> None:
    assert literal_address(spelling) == ipaddress.IPv4Address("127.0.0.1")
    assert AddressPolicy().check_host(spelling) == "loopback"


@pytest.mark.parametrize("spelling", ["0xa9.0xfe.0xa9.0xfe", "2852039166", "0251.0376.0251.0376"])
def test_odd_spellings_of_the_metadata_address(spelling: str) -> None:
    assert AddressPolicy().check_host(spelling) == "link-local"


def test_reasons_name_the_range() -> None:
    assert blocked_reason(ipaddress.ip_address("::ffff:10.0.0.1")) == "ipv4-mapped private"
    assert blocked_reason(ipaddress.ip_address("64:ff9b::7f00:1")) == "nat64 loopback"
    assert blocked_reason(ipaddress.ip_address("100.64.1.1")) == "cgnat"
    assert blocked_reason(ipaddress.ip_address("255.255.255.255")) == "broadcast"


def test_host_names_are_not_literals() -> None:
    for host in ("example.com", "localhost", "0x7g.1", "1.2.3.4.5", ""):
        assert literal_address(host) is None


def test_policy_allowlist_and_allow_private() -> None:
    loop = ipaddress.ip_address("127.0.0.1")
    assert AddressPolicy(allow_private=True).check(loop) is None
    allow = AddressPolicy(allowed_networks=["127.0.0.0/8"])
    assert allow.check(loop) is None
    assert allow.check(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert allow.check(ipaddress.ip_address("10.0.0.1")) == "private"
    assert allow.check(ipaddress.ip_address("::1")) == "loopback"


def test_parse_resolve() -> None:
    assert parse_resolve({"a.example:443": "127.0.0.1:9000", "b.example": "[::1]:81"}) == {
        ("a.example", 443): ("127.0.0.1", 9000),
        ("b.example", None): ("::1", 81),
    }
    with pytest.raises(ValueError, match="needs a port"):
        parse_resolve({"a.example": "127.0.0.1"})


# -- at dial time, through the real client ------------------------------------


@pytest.fixture
def kind(transport_kind: str) -> str:
    """Each client in turn (the shared ``transport_kind`` fixture)."""
    return transport_kind


async def _send(settings: DeliverySettings, url: str, kind: str) -> int:
    transport = make_transport(msgspec.structs.replace(settings, transport=kind))
    try:
        answer = await send(transport, "GET", url, None, {}, 5.0)
        return answer.status
    finally:
        await transport.close()


async def test_loopback_literal_is_refused_by_default(kind: str) -> None:
    async with Sink() as sink:
        with pytest.raises(TransportError) as info:
            await _send(DeliverySettings(), sink.url("/ok"), kind)
        assert info.value.final and "loopback" in info.value.reason
        assert sink.hits == []


@pytest.mark.parametrize("host", ["0x7f.1", "2130706433", "127.1", "0177.0.0.1"])
async def test_odd_spelling_urls_are_refused(host: str, kind: str) -> None:
    async with Sink() as sink:
        with pytest.raises(TransportError) as info:
            await _send(DeliverySettings(), sink.url("/ok", host=host), kind)
        assert info.value.final
        assert sink.hits == []


async def test_host_name_resolving_to_loopback_is_refused_at_dial(kind: str) -> None:
    """``localhost`` is no literal: the socket factory sees the resolved address."""
    async with Sink() as sink:
        with pytest.raises(TransportError) as info:
            await _send(DeliverySettings(), sink.url("/ok", host="localhost"), kind)
        assert info.value.final and "blocked destination" in info.value.reason
        assert sink.hits == []


async def test_resolve_override_is_checked_after_mapping(kind: str) -> None:
    async with Sink() as sink:
        resolve = {"postback.example": f"127.0.0.1:{sink.port}"}
        with pytest.raises(TransportError) as info:
            await _send(DeliverySettings(resolve=resolve), "http://postback.example/ok", kind)
        assert info.value.final and "127.0.0.1" in info.value.reason
        allowed = DeliverySettings(resolve=resolve, allowed_networks=["127.0.0.0/8"])
        assert await _send(allowed, "http://postback.example/ok", kind) == 200
        assert sink.hits[0].headers["Host"] == "postback.example"


async def test_allow_private_reaches_a_loopback_sink(kind: str) -> None:
    async with Sink() as sink:
        settings = DeliverySettings(allow_private_targets=True)
        assert await _send(settings, sink.url("/ok", host="localhost"), kind) == 200
        # Both clients read an odd spelling the one way (urls.split_url): 127.0.0.1.
        assert await _send(settings, sink.url("/ok", host="2130706433"), kind) == 200
        assert sink.count() == 2
        assert sink.hits[1].headers["Host"] == f"127.0.0.1:{sink.port}"


async def test_redirect_to_blocked_address_is_refused(kind: str) -> None:
    """An allowed first hop cannot bounce the request to a private address."""
    async with Sink() as sink:
        settings = DeliverySettings(
            resolve={"public.example": f"127.0.0.1:{sink.port}"},
            allowed_networks=["127.0.0.1/32"],
        )
        for target in (
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            f"http://127.0.0.2:{sink.port}/ok",
            "http://[::ffff:192.168.0.1]/",
        ):
            with pytest.raises(TransportError) as info:
                await _send(settings, f"http://public.example/redirect?to={target}", kind)
            assert info.value.final, target
        assert sink.count("/ok") == 0


async def test_non_http_schemes_are_refused(kind: str) -> None:
    with pytest.raises(TransportError) as info:
        await _send(DeliverySettings(allow_private_targets=True), "file:///etc/passwd", kind)
    assert info.value.final


def test_docs_print_the_registry_table() -> None:
    """docs/security.md shows every row of the one table, so the two never drift."""
    from pathlib import Path  # noqa: PLC0415

    from gateway.dispatch.transport.registry import V4_ROWS, V6_ROWS  # noqa: PLC0415

    text = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    for block, reason, rfc in (*V4_ROWS, *V6_ROWS):
        assert f"| `{block}` | {reason} | {rfc} |" in text, block
