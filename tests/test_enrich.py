"""Visit enrichment: real user agents, a tiny MMDB, caller-passed values, {htime}."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.enrich.base import Enrichers, Visit
from gateway.enrich.geo import default_geo_dir, open_geo
from gateway.enrich.passed import PASSED_NAMES, merge_passed
from gateway.enrich.useragent import UserAgentEnricher
from gateway.htime import open_htime, seal_htime
from tests.geo_data import write_geo

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
)
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36"
)
FACEBOOK_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,2;FBMD/iPhone;FBSN/iOS;"
    "FBSV/17.3;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]"
)
INSTAGRAM_ANDROID = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 Instagram "
    "312.0.0.32.112 Android (33/13; 420dpi; 1080x2400; Google/google; Pixel 7; panther; "
    "panther; en_US; 548323740)"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(scope="module")
def ua() -> UserAgentEnricher:
    return UserAgentEnricher()


@pytest.mark.parametrize(
    ("agent", "want"),
    [
        (
            CHROME_WIN,
            {
                "device": "desktop",
                "browser": "Chrome",
                "browserversion": "124.0.0",
                "os": "Windows",
            },
        ),
        (
            IPHONE_SAFARI,
            {
                "device": "mobile",
                "browser": "Mobile Safari",
                "os": "iOS",
                "osversion": "17.4.1",
                "brand": "Apple",
                "model": "iPhone",
            },
        ),
        (
            SAMSUNG,
            {
                "device": "mobile",
                "browser": "Samsung Internet",
                "os": "Android",
                "osversion": "14",
                "brand": "Samsung",
                "model": "SM-S918B",
                "device_name": "Samsung SM-S918B",
            },
        ),
        (FACEBOOK_IOS, {"device": "mobile", "browser": "Facebook", "os": "iOS", "brand": "Apple"}),
        (
            INSTAGRAM_ANDROID,
            {"device": "mobile", "browser": "Instagram", "brand": "Google", "model": "Pixel 7"},
        ),
        (IPAD, {"device": "tablet", "os": "iOS", "model": "iPad"}),
        (GOOGLEBOT, {"device": "bot", "bot": "1", "browser": "Googlebot"}),
    ],
    ids=[
        "chrome-windows",
        "iphone-safari",
        "samsung-android",
        "facebook-inapp",
        "instagram-inapp",
        "ipad",
        "googlebot",
    ],
)
def test_real_user_agents(ua: UserAgentEnricher, agent: str, want: dict[str, str]) -> None:
    got = ua.tokens(Visit(user_agent=agent))
    assert {k: got.get(k) for k in want} == want
    if want["device"] != "bot":
        assert "bot" not in got


def test_user_agent_cached_by_string(ua: UserAgentEnricher) -> None:
    first = ua.tokens(Visit(user_agent=SAMSUNG))
    assert ua.tokens(Visit(user_agent=SAMSUNG)) is first
    assert ua.tokens(Visit()) == {}


@settings(deadline=None, max_examples=60)
@given(st.text(max_size=300))
def test_any_user_agent_parses_to_text(ua: UserAgentEnricher, agent: str) -> None:
    got = ua.tokens(Visit(user_agent=agent))
    assert all(isinstance(v, str) and v for v in got.values())


@pytest.fixture(scope="module")
def geo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_geo(tmp_path_factory.mktemp("geo"))


def test_geo_from_a_tiny_mmdb(geo_dir: Path) -> None:
    geo, note = open_geo(geo_dir)
    assert geo is not None, note
    assert "DB-IP" in note  # the attribution travels with every report
    assert dict(geo.tokens(Visit(ip="203.0.113.9"))) == {
        "country": "DE",
        "countryname": "Germany",
        "region": "Bavaria",
        "city": "Munich",
        "asn": "64500",
        "isp": "Example Mobile GmbH",
    }
    assert geo.tokens(Visit(ip="2001:db8::1"))["countryname"] == "Japan"
    assert geo.tokens(Visit(ip="::ffff:198.51.100.4"))["city"] == "Austin"  # IPv4-mapped
    assert "asn" not in geo.tokens(Visit(ip="198.51.100.4"))
    for nothing in ("10.0.0.1", "not-an-ip", "", "::1", "999.1.1.1"):
        assert geo.tokens(Visit(ip=nothing)) == {}
    assert [f.built for f in geo.files()][0] == "2026-01-01"
    geo.close()


def test_geo_missing_or_broken_says_so(tmp_path: Path) -> None:
    geo, note = open_geo(tmp_path / "nowhere")
    assert geo is None and "not installed" in note and "geo install" in note
    (tmp_path / "manifest.json").write_text("{not json")
    geo, note = open_geo(tmp_path)
    assert geo is None and "unreadable" in note
    (tmp_path / "manifest.json").write_text('{"city": {"files": {"4": "gone.mmdb"}}}')
    geo, note = open_geo(tmp_path)
    assert geo is None and "unreadable" in note


def test_default_geo_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GATEWAY_GEO_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_geo_dir() == tmp_path / "postback-gateway" / "geo"
    monkeypatch.setenv("GATEWAY_GEO_DIR", "/srv/geo")
    assert default_geo_dir() == Path("/srv/geo")


def test_enrichers_first_one_wins(geo_dir: Path, ua: UserAgentEnricher) -> None:
    geo, _ = open_geo(geo_dir)
    assert geo is not None
    both = Enrichers([ua, geo]).tokens(Visit(ip="203.0.113.1", user_agent=SAMSUNG))
    assert both["country"] == "DE" and both["brand"] == "Samsung"
    assert Enrichers([]).tokens(Visit(ip="203.0.113.1")) == {}


def test_passed_values_win_and_keep_country_consistent() -> None:
    detected = {"country": "DE", "countryname": "Germany", "os": "Android"}
    assert merge_passed(detected, {"country": "US"}) == {
        "country": "US",
        "countryname": "United States",
        "os": "Android",
    }
    assert "countryname" not in merge_passed(detected, {"country": "XX"})
    assert merge_passed(detected, {"os": "iOS"})["os"] == "iOS"
    assert PASSED_NAMES["os_name"] == "os" and PASSED_NAMES["country_code"] == "country"
    assert PASSED_NAMES["connection_type"] == "connection.type"


@settings(deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1), st.floats(0, 2**40))
def test_htime_round_trips_and_binds_to_the_click(secret: str, click: str, when: float) -> None:
    sealed = seal_htime(secret, click, when)
    assert len(sealed) == 24 and sealed.replace("-", "").replace("_", "").isalnum()
    assert open_htime(secret, click, sealed) == int(when)
    assert open_htime(secret, click + "x", sealed) is None
    assert open_htime(secret + "x", click, sealed) is None
    flipped = ("A" if sealed[0] != "A" else "B") + sealed[1:]
    assert open_htime(secret, click, flipped) is None


REAL = os.environ.get("GATEWAY_GEO_DIR")


@pytest.mark.skipif(
    not (REAL and (Path(REAL) / "manifest.json").exists())
    and not os.environ.get("GATEWAY_GEO_REQUIRED"),
    reason="real geo data not installed (python -m gateway geo install; CI does)",
)
def test_real_installed_data() -> None:
    """Against the installed DB-IP and ASN files: countries that do not move."""
    geo, note = open_geo(Path(REAL or "/nonexistent"))
    assert geo is not None, note
    for ip, country, asn in (
        ("8.8.8.8", "US", "15169"),  # Google
        ("1.1.1.1", "AU", "13335"),  # Cloudflare (APNIC research prefix)
        ("193.0.14.129", "NL", "25152"),  # k.root-servers.net, RIPE NCC
        ("2001:4860:4860::8888", None, "15169"),
    ):
        got = geo.tokens(Visit(ip=ip))
        if country is not None:
            assert got["country"] == country, (ip, dict(got))
            assert got["countryname"]
        assert got["asn"] == asn and got["isp"], (ip, dict(got))
    assert all(f.version and f.built != "?" for f in geo.files())
    geo.close()


def test_asn_csv_converts_to_mmdb(tmp_path: Path) -> None:
    """The install's conversion, on ranges shaped like @ip-location-db/asn's CSV."""
    import maxminddb  # noqa: PLC0415 - this test only

    from gateway.enrich.install import asn_csv_to_mmdb  # noqa: PLC0415 - this test only

    v4 = tmp_path / "asn-ipv4.csv"
    v4.write_text('1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."\n1.0.4.0,1.0.7.255,38803,Gtel\n')
    v6 = tmp_path / "asn-ipv6.csv"
    v6.write_text("2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64501,Example\nbad,row\n")
    assert asn_csv_to_mmdb([v4, v6], tmp_path / "asn.mmdb") == 3
    geo, _ = open_geo(tmp_path)  # no manifest: not an install
    assert geo is None
    with maxminddb.open_database(str(tmp_path / "asn.mmdb")) as reader:
        assert reader.get("1.0.5.9") == {
            "autonomous_system_number": 38803,
            "autonomous_system_organization": "Gtel",
        }
        assert reader.get("1.0.0.1")["autonomous_system_organization"] == "Cloudflare, Inc."
        assert reader.get("2001:db8::7")["autonomous_system_number"] == 64501
        assert reader.get("1.0.2.1") is None


def test_undecodable_user_agent_bytes(ua: UserAgentEnricher) -> None:
    """Header bytes that are not UTF-8 arrive as surrogates (found by the intake fuzz test)."""
    from gateway.tokens import visit_tokens  # noqa: PLC0415 - this test only

    raw = "Mozilla/5.0 \udc80\udcff (iPhone; CPU iPhone OS 17_4 like Mac OS X)"
    assert ua.tokens(Visit(user_agent=raw)) == {}  # the enricher alone: nothing, no error
    got = visit_tokens(Visit(user_agent=raw, ip="203.0.113.1\udc80"), ua, 1024)
    assert got["os"] == "iOS" and "\ufffd" in got["user_agent"]
    got["user_agent"].encode("utf-8")
