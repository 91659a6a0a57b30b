"""The client address behind trusted proxies: rightmost untrusted hop, never a
client-written one."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.intake.client_address import client_address, forwarded_hops

NETS = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def h(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_no_setting_means_the_peer() -> None:
    assert client_address("10.1.1.1", h(("X-Forwarded-For", "8.8.8.8")), []) == "10.1.1.1"


def test_untrusted_peer_header_ignored() -> None:
    assert client_address("192.0.2.1", h(("X-Forwarded-For", "8.8.8.8")), NETS) == "192.0.2.1"


def test_rightmost_untrusted_hop() -> None:
    xff = h(("X-Forwarded-For", "1.1.1.1, 8.8.8.8, 10.0.0.2"))
    assert client_address("10.0.0.1", xff, NETS) == "8.8.8.8"
    two_lines = h(("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "8.8.4.4, 10.9.9.9"))
    assert client_address("10.0.0.1", two_lines, NETS) == "8.8.4.4"


def test_forwarded_wins_and_its_forms() -> None:
    headers = h(
        ("Forwarded", 'for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"'),
        ("X-Forwarded-For", "8.8.8.8"),
    )
    assert forwarded_hops(headers) == ["192.0.2.60", '"[2001:db8::1]:4711"']
    assert client_address("10.0.0.1", headers, NETS) == "2001:db8::1"
    assert client_address("10.0.0.1", h(("Forwarded", "for=192.0.2.7:80")), NETS) == "192.0.2.7"


def test_unparseable_hop_ends_the_chain_at_the_last_proxy() -> None:
    headers = h(("X-Forwarded-For", "8.8.8.8, unknown, 10.0.0.5"))
    assert client_address("10.0.0.1", headers, NETS) == "10.0.0.5"
    assert client_address("10.0.0.1", h(), NETS) == "10.0.0.1"


def test_ipv4_mapped_peer() -> None:
    xff = h(("X-Forwarded-For", "8.8.8.8"))
    assert client_address("::ffff:10.0.0.1", xff, NETS) == "8.8.8.8"


addresses = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), st.text(max_size=20)
)


@given(st.lists(addresses, max_size=5), st.ip_addresses(v=4).filter(lambda a: a.is_global))
def test_client_written_hops_never_matter(forged: list[str], real: ipaddress.IPv4Address) -> None:
    """Whatever the visitor puts left of the hop our proxy appended, the answer is that hop."""
    chain = ", ".join([*(f.replace(",", "") for f in forged), str(real), "10.0.0.3"])
    got = client_address("10.0.0.1", h(("X-Forwarded-For", chain)), NETS)
    assert got == str(real)
