"""HTTP/1.1 on the wire for the lean client: one connection, and reading one answer.

Everything a destination sends is untrusted, so every read is bounded: the
head by size and line count, a chunk-size line by length, the body by the
delivery log's prefix cap (past it the connection is closed, not drained).
A response that breaks the protocol raises :class:`TransportError` with the
reason the delivery log shows; the connection is then never reused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from gateway.dispatch.transport.base import TransportError

__all__ = (
    "MAX_HEAD_BYTES",
    "MAX_HEAD_LINES",
    "Closed",
    "Conn",
    "read_response",
)

#: The response head (status line and headers) may not exceed these.
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_HEAD_LINES: Final = 100
#: A chunk-size line (with extensions) or a trailer line longer than this is refused.
_MAX_LINE: Final = 4096
#: Interim (1xx) answers skipped before the real one; more is a server in a loop.
_MAX_INTERIM: Final = 8
_NO_BODY: Final = frozenset((204, 304))


class Closed(ConnectionResetError):
    """The peer closed the connection (before or during an answer)."""


class Conn(asyncio.Protocol):
    """One connection; a reader awaits :meth:`more` for the next bytes."""

    __slots__ = (
        "_waiter",
        "buf",
        "loop",
        "eof",
        "error",
        "got",
        "idle_since",
        "key",
        "on_lost",
        "session_kept",
        "transport",
        "used",
    )

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        #: Its loop, kept: asking for the running loop costs a getpid() system call.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.buf = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.used = False  # has carried a request
        self.session_kept = False  # its TLS session was handed to the pool (once: it costs)
        self.got = 0  # bytes received since the current request was written
        self.idle_since = -1.0  # loop time it went back to the pool; -1 while in use
        #: The pool's hook: a pooled connection the peer closes leaves the pool at once.
        self.on_lost: Callable[[Conn], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.got += len(data)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self.on_lost is not None and self.idle_since >= 0:
            self.on_lost(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def more(self) -> asyncio.Future[None]:
        """What to await for more bytes; raises :class:`Closed` when the peer is gone.

        A future, not a coroutine: each wake-up of a reader passes through one
        frame less.
        """
        if self.eof:
            raise Closed(str(self.error or "connection closed by peer"))
        assert self.loop is not None
        waiter = self._waiter = self.loop.create_future()
        return waiter

    def send(self, data: bytes) -> None:
        """Write a request; what arrives from now on answers it."""
        assert self.transport is not None
        self.got = 0
        self.used = True
        self.transport.write(data)

    def fully_written(self) -> bool:
        """Whether the request left our buffers (an early answer may come before)."""
        return self.transport is not None and not self.transport.get_write_buffer_size()

    def close(self) -> None:
        self.eof = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.eof = True
        if self.transport is not None:
            self.transport.abort()


def _broken(reason: str) -> TransportError:
    return TransportError(f"bad answer: {reason}")


def _parse_head(conn: Conn, end: int) -> tuple[int, str, list[str]]:
    """The head ending at ``end`` in the buffer, taken out of it: status,
    version and the header lines; bounded."""
    if end > MAX_HEAD_BYTES:
        raise _broken(f"response head over {MAX_HEAD_BYTES} bytes")
    lines = conn.buf[:end].decode("latin-1").split("\r\n")
    del conn.buf[: end + 4]
    if len(lines) > MAX_HEAD_LINES:
        raise _broken(f"more than {MAX_HEAD_LINES} header lines")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if (
        version not in ("HTTP/1.1", "HTTP/1.0")
        or len(code) != 3
        or not code.isdigit()
        or rest[3:4] not in ("", " ")
    ):
        raise _broken(f"malformed status line {status_line[:80]!r}")
    return int(code), version, lines


def _headers(lines: list[str]) -> dict[str, str]:
    head: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name or "\t" in name:
            raise _broken(f"malformed header line {line[:80]!r}")
        name = name.lower()
        value = value.strip(" \t")
        if name in head:  # repeated: one comma-separated value, as RFC 9110 allows
            if name == "content-length" and head[name] != value:
                raise _broken("conflicting Content-Length headers")
            if name != "content-length":
                head[name] = f"{head[name]}, {value}"
        else:
            head[name] = value
    return head


async def read_response(
    conn: Conn, method: str, cap: int
) -> tuple[int, dict[str, str], bytes, bool]:
    """One answer on ``conn``: status, headers (lower-case names), at most ``cap``
    body bytes, and whether the connection may carry another request."""
    for _ in range(_MAX_INTERIM + 1):
        # the wait for a head, inline (no helper coroutine): one frame less per wake-up
        end = conn.buf.find(b"\r\n\r\n")
        while end < 0:
            if len(conn.buf) > MAX_HEAD_BYTES:
                raise _broken(f"response head over {MAX_HEAD_BYTES} bytes")
            start = max(0, len(conn.buf) - 3)  # the terminator may straddle two reads
            try:
                await conn.more()
            except Closed:
                if conn.got:
                    raise _broken(f"connection closed mid-head after {conn.got} bytes") from None
                raise
            end = conn.buf.find(b"\r\n\r\n", start)
        status, version, lines = _parse_head(conn, end)
        if status >= 200:
            break
        if status == 101:
            raise _broken("101 Switching Protocols to a request that asked for no upgrade")
        # 100 Continue, 103 Early Hints: the real answer follows
    else:
        raise _broken(f"more than {_MAX_INTERIM} interim (1xx) answers")
    head = _headers(lines)
    keep = (
        version == "HTTP/1.1"
        and "close" not in head.get("connection", "").lower()
        and conn.fully_written()
    )
    if method == "HEAD" or status in _NO_BODY:
        return status, head, b"", keep and not conn.buf
    coding = head.get("transfer-encoding")
    if coding is not None:
        if coding.lower().rsplit(",", 1)[-1].strip() == "chunked":
            prefix, done = await _chunked(conn, cap)
            # a Content-Length beside it is ignored, and such a peer not trusted again
            keep = keep and done and "content-length" not in head
            return status, head, prefix, keep and not conn.buf
        return status, head, await _until_close(conn, cap), False
    length = head.get("content-length")
    if length is not None:
        if not length.isdigit() or len(length) > 18:
            raise _broken(f"malformed Content-Length {length[:40]!r}")
        n = int(length)
        want = min(n, cap)
        while len(conn.buf) < want:
            try:
                await conn.more()
            except Closed:
                raise _broken(
                    f"connection closed after {len(conn.buf)} of {n} body bytes"
                ) from None
        prefix = bytes(conn.buf[:want])
        del conn.buf[:want]
        return status, head, prefix, keep and n <= cap and not conn.buf
    return status, head, await _until_close(conn, cap), False


async def _until_close(conn: Conn, cap: int) -> bytes:
    """A body delimited by the end of the connection, up to ``cap`` bytes."""
    while len(conn.buf) < cap and not conn.eof:
        try:
            await conn.more()
        except Closed:
            break
    return bytes(conn.buf[:cap])


async def _line(conn: Conn) -> bytes:
    end = conn.buf.find(b"\r\n")
    while end < 0:
        if len(conn.buf) > _MAX_LINE:
            raise _broken(f"chunk line over {_MAX_LINE} bytes")
        try:
            await conn.more()
        except Closed:
            raise _broken("connection closed mid-body (chunked)") from None
        end = conn.buf.find(b"\r\n")
    if end > _MAX_LINE:
        raise _broken(f"chunk line over {_MAX_LINE} bytes")
    line = bytes(conn.buf[:end])
    del conn.buf[: end + 2]
    return line


async def _chunked(conn: Conn, cap: int) -> tuple[bytes, bool]:
    """The first ``cap`` bytes of a chunked body; True when it ended within them."""
    out = bytearray()
    while True:
        size_text = (await _line(conn)).split(b";", 1)[0].strip()
        try:
            if not size_text or len(size_text) > 16:
                raise ValueError(size_text)
            size = int(size_text, 16)  # int() takes "+", "_" and "0x": the grammar does not
            if not size_text.isalnum() or size_text[:2].lower() == b"0x":
                raise ValueError(size_text)
        except ValueError:
            raise _broken(f"malformed chunk size {size_text[:20]!r}") from None
        if size == 0:
            for _ in range(MAX_HEAD_LINES):  # trailers, then the empty line
                if not await _line(conn):
                    return bytes(out), True
            raise _broken(f"more than {MAX_HEAD_LINES} trailer lines")
        room = cap - len(out)
        if size > room:  # past the cap: what fits, then the connection goes
            while len(conn.buf) < room:
                try:
                    await conn.more()
                except Closed:
                    raise _broken("connection closed mid-body (chunked)") from None
            out += conn.buf[:room]
            return bytes(out), False
        while len(conn.buf) < size + 2:
            try:
                await conn.more()
            except Closed:
                raise _broken("connection closed mid-body (chunked)") from None
        if conn.buf[size : size + 2] != b"\r\n":
            raise _broken("chunk not followed by CRLF")
        out += conn.buf[:size]
        del conn.buf[: size + 2]
