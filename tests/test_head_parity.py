"""Property: ``read_plain_head`` accepts only heads that aiohttp reads the same way.

The hot lane answers a head itself when ``gateway.http.head.read_plain_head``
calls it plain, and hands everything else to aiohttp's parser, so None is
always safe.  What must never happen is a PlainHead for a head that aiohttp's
parser (the compiled ``aiohttp._http_parser.HttpRequestParser``, llhttp, which
``web.Server`` uses) would refuse or read differently: another method,
target, HTTP minor, header list or keep-alive answer, or a body, an upgrade.
The generated heads mix plain ones with hostile bytes; the example tests pin
down heads the lane must take, so the property cannot pass on None alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.streams import EMPTY_PAYLOAD
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.http import wire
from gateway.http.head import MAX_HEADERS, PlainHead, read_plain_head

try:
    from aiohttp._http_parser import HttpRequestParser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - aiohttp built without its C extensions
    HttpRequestParser = None

pytestmark = pytest.mark.skipif(
    HttpRequestParser is None, reason="aiohttp's C parser (llhttp) is not built"
)

SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: the server's limits (front.GatewayRunner with the default config)
LINE = 16384
FIELD = wire.MAX_HEADER_FIELD
SERVER = (LINE, FIELD)
_CRLF2 = b"\r\n\r\n"


def aiohttp_reads(head: bytes, line_limit: int = LINE, field_limit: int = FIELD) -> Any:
    """(messages, upgraded, tail) from aiohttp's parser for ``head`` and its blank line."""
    parser = HttpRequestParser(
        mock.Mock(),
        mock.Mock(),
        2**16,
        max_line_size=line_limit,
        max_field_size=field_limit,
    )
    return parser.feed_data(head + _CRLF2)


def assert_same_reading(head: bytes, plain: PlainHead, line_limit: int, field_limit: int) -> None:
    """aiohttp reads ``head`` as ``plain`` says: one bodiless GET, the same in every field."""
    try:
        messages, upgraded, tail = aiohttp_reads(head, line_limit, field_limit)
    except BadHttpMessage as exc:
        raise AssertionError(f"plain to the lane, refused by aiohttp: {exc!r}") from exc
    assert len(messages) == 1 and not upgraded and tail == b"", (messages, upgraded, tail)
    message, payload = messages[0]
    assert payload is EMPTY_PAYLOAD  # no body: no Content-Length, no chunks
    assert not message.upgrade and not message.chunked
    assert message.method == "GET"
    assert message.path == plain.target
    assert (message.version.major, message.version.minor) == (1, plain.minor)
    assert (not message.should_close) == plain.keep_alive
    # HotRequest keeps the headers in a CIMultiDict: names as sent, values as aiohttp has them
    assert [name for name, _ in plain.headers] == [n.decode() for n, _ in message.raw_headers]
    assert [(n.lower(), v) for n, v in plain.headers] == [
        (n.lower(), v) for n, v in message.headers.items()
    ]


# ----------------------------------------------------------------------------- strategies

_URL_CHARS = "abcXYZ019-._~!$&'()*+,;=:@/?%"
_HOSTILE_CHARS = ' \t\x00\x01\x7f#"<>\\^`{|}[]é\u2028'
_METHODS = ["GET"] * 6 + ["get", "Get", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "PRI", "GE"]
_TARGETS = [
    "/postback?cid=1&txid=t1",
    "/click/abc",
    "/",
    "//x",
    "/%zz",
    "/%00",
    "/a%20b",
    "/x#frag",
    "/x?y#z",
    "/?",
    "*",
    "",
    "http://h/postback",
    "postback",
    "/a b",
    "/\x7f",
    "/é",
    "/\x00",
]
_VERSIONS = (
    ["HTTP/1.1"] * 4
    + ["HTTP/1.0"] * 2
    + [
        "HTTP/1.2",
        "HTTP/1.9",
        "HTTP/2.0",
        "HTTP/0.9",
        "HTTP/3.0",
        "http/1.1",
        "Http/1.1",
        "HTTP/1.01",
        "HTTP/1",
        "HTTP/11",
        "HTTP/1.1 ",
        "HTTP/1.1\t",
        "HTTP /1.1",
    ]
)
_NAMES = [
    "Host",
    "host",
    "HOST",
    "User-Agent",
    "Accept",
    "Connection",
    "connection",
    "CONNECTION",
    "Proxy-Connection",
    "Keep-Alive",
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "transfer-encoding",
    "TE",
    "Trailer",
    "Expect",
    "Upgrade",
    "Sec-WebSocket-Key1",
    "Sec-WebSocket-Key",
    "Content-Type",
    "Content-Encoding",
    "ETag",
    "Max-Forwards",
    "Server",
    "X-Forwarded-For",
    "Cookie",
    "Host ",
    " Host",
    "Ho st",
    "X\x00",
    "é",
    "",
    "X@Y",
    "X:Y",
    "X\tY",
]
_VALUES = [
    "x",
    "example.com:8080",
    "keep-alive",
    "Keep-Alive",
    "close",
    "CLOSE",
    "Close ",
    "upgrade",
    "Upgrade",
    "keep-alive, close",
    "close, keep-alive",
    "keep-alive, upgrade",
    "keep-alive,",
    "te",
    "chunked",
    "gzip, chunked",
    "0",
    "5",
    "-1",
    "100-continue",
    "websocket",
    "h2c",
    "gzip",
    "",
    " ",
    "\t",
    "  padded\t ",
    "x\x00y",
    "x\x01y",
    "x\x7fy",
    "é",
    "curl/8.5.0",
    "*/*",
]
_OWS = st.sampled_from(["", " ", " ", "  ", "\t", " \t"])
_LINE_ENDS = st.sampled_from(["\r\n"] * 12 + ["\n", "\r", "\r\r\n", "\n\r"])

_target = st.one_of(
    st.sampled_from(_TARGETS),
    st.text(_URL_CHARS, max_size=24).map(lambda s: "/" + s),
    st.text(_URL_CHARS + _HOSTILE_CHARS, max_size=16).map(lambda s: "/" + s),
)
_name = st.one_of(
    st.sampled_from(_NAMES),
    st.text("abcXYZ019-!#$%&'*+.^_`|~", min_size=1, max_size=10),
    st.text('abX-:;()[]{}/\\"@ \x00\x7fé', min_size=1, max_size=6),
)
_value = st.one_of(
    st.sampled_from(_VALUES),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16),
    st.text(st.characters(max_codepoint=0x2FF), max_size=8),
)
_header = st.one_of(
    st.builds(
        lambda name, ows, value, trail: f"{name}:{ows}{value}{trail}",
        _name,
        _OWS,
        _value,
        _OWS,
    ),
    st.builds(lambda name, value: f"{name} :{value}", _name, _value),  # space before the colon
    st.builds(lambda ows, value: f"{ows or ' '}{value}", _OWS, _value),  # obs-fold
    _value,  # no colon at all
)
_request_line = st.builds(
    lambda lead, method, sp1, target, sp2, version: f"{lead}{method}{sp1}{target}{sp2}{version}",
    st.sampled_from([""] * 10 + [" ", "\t", "\r\n"]),
    st.sampled_from(_METHODS),
    st.sampled_from([" "] * 8 + ["  ", "\t"]),
    _target,
    st.sampled_from([" "] * 8 + ["  ", "\t"]),
    st.sampled_from(_VERSIONS),
)


@st.composite
def _built_head(draw: st.DrawFn) -> bytes:
    lines = [draw(_request_line)]
    if draw(st.integers(0, 4)):  # mostly a Host first, as clients send it
        lines.append("Host: " + draw(st.sampled_from(["x", "example.com", "", "a b"])))
    lines += draw(st.lists(_header, max_size=6))
    ends = [draw(_LINE_ENDS) for _ in lines[1:]]
    text = lines[0] + "".join(end + line for end, line in zip(ends, lines[1:], strict=True))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with a few bytes inserted, replaced or removed somewhere."""
    head = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(head)))
        insert = draw(
            st.one_of(
                st.sampled_from(
                    [b"\x00", b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b"\x80", b"\xff"]
                ),
                st.binary(max_size=3),
            )
        )
        drop = draw(st.integers(0, 2))
        head[at : at + drop] = insert
    return bytes(head)


_plain_name = st.text("abcdefXYZ-", min_size=1, max_size=12).filter(
    lambda n: (
        n.lower()
        not in {
            "host",
            "connection",
            "proxy-connection",
            "content-length",
            "transfer-encoding",
            "expect",
            "upgrade",
            "sec-websocket-key1",
        }
    )
)


@st.composite
def _plain_head(draw: st.DrawFn) -> bytes:
    """A head the lane must take: a GET of a URL-character target, 1.0 or 1.1, a Host,
    token names with visible-ASCII values, at most one Connection: close or keep-alive."""
    target = "/" + draw(st.text(_URL_CHARS, max_size=40))
    minor = draw(st.integers(0, 1))
    lines = [f"GET {target} HTTP/1.{minor}", "Host: " + draw(st.sampled_from(["x", "a.b:80"]))]
    names = draw(st.lists(_plain_name, max_size=8, unique_by=str.lower))
    for name in names:
        value = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20))
        lines.append(f"{name}: {value}")
    connection = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive", "CLOSE"]))
    if connection is not None:
        lines.insert(draw(st.integers(1, len(lines))), f"Connection: {connection}")
    return "\r\n".join(lines).encode("ascii")


def _padded(head: bytes, size: int) -> bytes:
    """``head``'s target or last header value padded so that line is ``size`` bytes long."""
    lines = head.split(b"\r\n")
    at = len(lines) - 1
    line = lines[at]
    if at == 0:
        method, target, version = line.split(b" ")
        pad = size - len(line)
        lines[0] = b" ".join((method, target + b"a" * max(pad, 0), version))
    else:
        lines[at] = line + b"b" * max(size - len(line), 0)
    return b"\r\n".join(lines)


_limits = st.sampled_from([SERVER] * 3 + [(40, 24), (64, 40), (24, 40)])


@st.composite
def _near_limits(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A plain head with its request line, a header line, or two header names in a row
    (aiohttp counts them together) a byte or two from a limit."""
    line_limit, field_limit = draw(_limits)
    head = draw(_plain_head())
    if draw(st.booleans()):
        first = draw(st.integers(1, field_limit))
        second = max(field_limit - first + draw(st.integers(-3, 3)), 1)
        names = b"\r\nA%s: x\r\nB%s: y" % (b"a" * (first - 1), b"b" * (second - 1))
        return head + names, line_limit, field_limit
    last_is_header = b"\r\n" in head
    limit = field_limit if last_is_header else line_limit
    return _padded(head, limit + draw(st.integers(-3, 3))), line_limit, field_limit


_TWISTS = ["version", "method", "target", "header", "risky header", "ending", "no host"]


@st.composite
def _twisted(draw: st.DrawFn) -> bytes:
    """A plain head with one or two things changed: its version, method or target, an
    added header (often one that means a body, an upgrade or a close), a line ending,
    its Host gone.  Most such heads are a byte away from plain, where a reader slips."""
    first, *lines = draw(_plain_head()).decode("ascii").split("\r\n")
    method, target, version = first.split(" ")
    ends = ["\r\n"] * len(lines)
    for twist in draw(st.lists(st.sampled_from(_TWISTS), min_size=1, max_size=2)):
        at = draw(st.integers(0, len(lines)))
        if twist == "version":
            version = draw(st.sampled_from(_VERSIONS))
        elif twist == "method":
            method = draw(st.sampled_from(_METHODS))
        elif twist == "target":
            target = draw(_target)
        elif twist == "header":
            lines.insert(at, draw(_header))
            ends.insert(at, "\r\n")
        elif twist == "risky header":
            name, value = draw(st.sampled_from(_NAMES)), draw(st.sampled_from(_VALUES))
            lines.insert(at, f"{name}:{draw(_OWS)}{value}")
            ends.insert(at, "\r\n")
        elif twist == "ending" and lines:
            ends[min(at, len(lines) - 1)] = draw(_LINE_ENDS)
        elif twist == "no host":
            ends = [e for e, line in zip(ends, lines, strict=True) if line[:5].lower() != "host:"]
            lines = [line for line in lines if line[:5].lower() != "host:"]
    text = f"{method} {target} {version}"
    text += "".join(end + line for end, line in zip(ends, lines, strict=True))
    return text.encode("utf-8", "surrogatepass")


_any_head = st.one_of(
    _twisted(),
    _twisted(),
    _twisted(),
    _built_head(),
    _mutated(_built_head()),
    _plain_head(),
    _mutated(_plain_head()),
    st.binary(max_size=80),
    st.binary(max_size=60).map(lambda b: b"GET /" + b),
)


#: two header names in a row, each under the field limit, longer than it together
_TWO_LONG_NAMES = b"GET /x HTTP/1.1\r\nHost: a\r\n%s: x\r\n%s: y" % (b"N" * 4100, b"M" * 4100)


def _as_the_lane_sees_it(head: bytes) -> bytes:
    """``head`` up to its first blank line, as ``HotConnection._next`` cuts it."""
    whole = head + _CRLF2
    return whole[: whole.find(_CRLF2)]


# ----------------------------------------------------------------------------- properties


@SETTINGS
@given(_any_head, _limits)
@example(b"GET /postback HTTP/1.1", SERVER)  # 1.1 without Host: aiohttp's 400
@example(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b", SERVER)  # a duplicate singleton
@example(b"GET /x HTTP/1.1\r\nHost: a\r\nUser-Agent: a\r\nUser-Agent: b", SERVER)
@example(b"GET /x HTTP/1.1\r\nHost: a\r\nProxy-Connection: close", SERVER)  # llhttp: close
@example(b"GET /x HTTP/1.0\r\nProxy-Connection: keep-alive", SERVER)  # llhttp: keep-alive
@example(b"GET /x HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key1: k", SERVER)  # aiohttp refuses
@example(_TWO_LONG_NAMES, SERVER)  # aiohttp's 431: it adds up the two names
@example(b"GET /x HTTP/1.1\r\nHost: a\r\nAaaaaaaaaaaaa: x\r\nBbbbbbbbbbbbb: y", (40, 24))
def test_a_plain_head_is_one_aiohttp_reads_the_same_way(
    head: bytes, limits: tuple[int, int]
) -> None:
    head = _as_the_lane_sees_it(head)
    line_limit, field_limit = limits
    plain = read_plain_head(head, line_limit, field_limit)
    if plain is not None:
        assert_same_reading(head, plain, line_limit, field_limit)


@SETTINGS
@given(_plain_head())
def test_plain_heads_are_taken_by_the_lane(head: bytes) -> None:
    plain = read_plain_head(head, LINE, FIELD)
    assert plain is not None, head
    assert_same_reading(head, plain, LINE, FIELD)


@SETTINGS
@given(_near_limits())
def test_a_head_near_a_limit_is_taken_only_as_aiohttp_reads_it(
    case: tuple[bytes, int, int],
) -> None:
    head, line_limit, field_limit = case
    plain = read_plain_head(head, line_limit, field_limit)
    if plain is not None:
        assert_same_reading(head, plain, line_limit, field_limit)


def test_heads_at_the_servers_limits() -> None:
    base = b"GET /postback?cid=1 HTTP/1.1\r\nHost: x"
    for size in (LINE - 2, LINE - 1, LINE, LINE + 1):
        head = _padded(base.split(b"\r\n")[0], size) + b"\r\nHost: x"
        plain = read_plain_head(head, LINE, FIELD)
        if plain is not None:
            assert_same_reading(head, plain, LINE, FIELD)
    assert read_plain_head(_padded(base.split(b"\r\n")[0], 200) + b"\r\nHost: x", LINE, FIELD)
    for size in (FIELD - 2, FIELD - 1, FIELD, FIELD + 1):
        head = _padded(base, size)
        plain = read_plain_head(head, LINE, FIELD)
        if plain is not None:
            assert_same_reading(head, plain, LINE, FIELD)
    many = base + b"".join(b"\r\nX-%d: v" % i for i in range(MAX_HEADERS - 2))
    assert read_plain_head(many, LINE, FIELD) is not None
    assert read_plain_head(many + b"\r\nX-more: v", LINE, FIELD) is None


def _grid() -> Iterator[bytes]:
    """Every listed method, target and version in an otherwise plain head, and every listed
    header name with every listed value (once, and twice) in 1.0 and 1.1: random draws
    reach a given pair rarely, and a pair is where a reader slips (``Transfer-Encoding``,
    ``HTTP/1.2``)."""
    for method in _METHODS:
        yield f"{method} /postback HTTP/1.1\r\nHost: x".encode()
    for target in _TARGETS:
        yield f"GET {target} HTTP/1.1\r\nHost: x".encode()
    for version in _VERSIONS:
        yield f"GET /postback {version}\r\nHost: x".encode()
        yield f"GET /postback {version}".encode()
    for name in _NAMES:
        for value in _VALUES:
            for minor in (0, 1):
                head = f"GET /postback?cid=1 HTTP/1.{minor}\r\nHost: x\r\n{name}: {value}"
                yield head.encode()
                yield f"{head}\r\n{name}:{value}".encode()


def test_each_listed_part_in_a_plain_head_is_taken_only_as_aiohttp_reads_it() -> None:
    taken = 0
    for head in _grid():
        plain = read_plain_head(head, LINE, FIELD)
        if plain is not None:
            try:
                assert_same_reading(head, plain, LINE, FIELD)
            except AssertionError as exc:
                raise AssertionError(f"{head!r}: {exc}") from exc
            taken += 1
    assert taken > 500  # the grid is mostly plain heads, not only refusals


# ----------------------------------------------------------------------------- examples

_TYPICAL = [
    # curl
    (
        b"GET /postback?cid=abc&txid=t1&payout=1.5 HTTP/1.1\r\n"
        b"Host: gw.example.com:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*",
        1,
        True,
    ),
    # wrk
    (b"GET /click/c1?sub1=x HTTP/1.1\r\nHost: 127.0.0.1:8080", 1, True),
    # ab and other HTTP/1.0 clients, with and without keep-alive
    (b"GET /postback?cid=1 HTTP/1.0\r\nHost: x\r\nConnection: Keep-Alive", 0, True),
    (b"GET /postback?cid=1 HTTP/1.0\r\nUser-Agent: ApacheBench/2.3", 0, False),
    # a tracker's server, closing, with a tab and trailing space around a value
    (
        b"GET /postback?clickid=%7Bx%7D HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        b"X-Forwarded-For:\t10.0.0.1 \r\nAccept-Encoding: gzip, deflate",
        1,
        False,
    ),
]


@pytest.mark.parametrize(("head", "minor", "keep_alive"), _TYPICAL)
def test_typical_client_heads_are_taken_by_the_lane(
    head: bytes, minor: int, keep_alive: bool
) -> None:
    plain = read_plain_head(head, LINE, FIELD)
    assert plain is not None
    assert (plain.minor, plain.keep_alive) == (minor, keep_alive)
    assert_same_reading(head, plain, LINE, FIELD)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /postback HTTP/1.1",  # aiohttp: Missing 'Host' header
        b"GET /x HTTP/1.1\r\nHost: a\r\nhost: b",  # aiohttp: Duplicate 'Host'
        b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nContent-Type: b",
        b"GET /x HTTP/1.1\r\nHost: a\r\nProxy-Connection: close",  # llhttp reads it as Connection
        b"GET /x HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key1: k",  # aiohttp: Invalid HTTP header
        _TWO_LONG_NAMES,  # aiohttp: LineTooLong, the two names counted as one
    ],
)
def test_heads_aiohttp_reads_otherwise_are_left_to_it(head: bytes) -> None:
    assert read_plain_head(head, LINE, FIELD) is None
