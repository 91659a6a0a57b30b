"""A lean HTTP/1.1 client on ``asyncio.Protocol``, behind the same ``Transport``
seam as the aiohttp one (select it with ``[delivery] transport = "lean"``), one
hop a call.

Postbacks are tiny GETs whose answers are a few bytes, so most of a general
client's work (cookie jars, multidict headers, streaming readers, tracing) is
overhead.  This one keeps a keep-alive pool per (scheme, host, port) under
the per-host cap, checks every dialled address with the SSRF policy, and
reads at most ``body_prefix_bytes`` of a body: a longer body closes the
connection instead of being drained.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import quote

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import USER_AGENT, Answer, TransportError
from gateway.dispatch.transport.redirects import check_hop
from gateway.dispatch.transport.ssrf import AddressPolicy, literal_address, parse_resolve
from gateway.dispatch.transport.tls import client_context

__all__ = ("LeanTransport",)

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\x21-\x7e]")
_MAX_HEAD = 64 * 1024
_PER_ADDRESS_CONNECT = 2.0  # seconds, when more addresses are left to try
Key = tuple[str, str, int]


class _Conn(asyncio.Protocol):
    """One connection; the reader waits on ``_waiter`` for more bytes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.used = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def more(self) -> None:
        """Wait for bytes (or the end); raise when the peer is gone."""
        if self.eof:
            raise ConnectionResetError(str(self.error or "connection closed by peer"))
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    def close(self) -> None:
        self.eof = True
        if self.transport is not None:
            self.transport.close()


class LeanTransport:
    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self.policy = AddressPolicy.from_settings(settings)
        self._overrides = parse_resolve(settings.resolve)
        self._idle: dict[Key, list[_Conn]] = {}
        self._open: dict[Key, int] = {}
        self._waiters: dict[Key, deque[asyncio.Future[None]]] = {}
        self._all: set[_Conn] = set()
        self._ssl: ssl.SSLContext | None = None

    async def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let transports finish closing

    # -- the seam ----------------------------------------------------------------

    async def exchange(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                status, head, prefix = await self._exchange(method, url, body, headers)
            return Answer(
                status=status,
                headers=head,
                body_prefix=prefix,
                elapsed=time.perf_counter() - started,
                final_url=url,
            )
        except TransportError as exc:
            exc.elapsed = exc.elapsed or time.perf_counter() - started
            exc.final_url = exc.final_url or url
            raise
        except TimeoutError as exc:
            raise TransportError(
                f"timeout after {timeout:g} s", elapsed=timeout, final_url=url, timed_out=True
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"{type(exc).__name__}: {exc}",
                elapsed=time.perf_counter() - started,
                final_url=url,
            ) from exc

    # -- one request/response ----------------------------------------------------

    async def _exchange(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        key, request = self._request_bytes(method, url, body, headers)
        for _ in range(2):  # a reused connection may have been closed by the peer: once more
            conn = await self._acquire(key)
            reused = conn.used
            conn.used = True
            try:
                assert conn.transport is not None
                conn.transport.write(request)
                status, head, prefix, keep = await self._read(conn, method)
            except ConnectionResetError:
                self._discard(key, conn)
                if reused and not conn.buf:
                    continue
                raise
            except BaseException:
                self._discard(key, conn)
                raise
            if keep:
                self._release(key, conn)
            else:
                self._discard(key, conn)
            return status, head, prefix
        raise ConnectionResetError("connection closed before an answer")

    def _request_bytes(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[Key, bytes]:
        parts = check_hop(url, self.policy)  # the one reading of a URL (urls.split_url)
        scheme, host, port, target = parts.scheme, parts.host, parts.port, parts.target
        if _UNSAFE.search(target):
            target = quote(target, safe="!#$%&'()*+,-./:;=?@[]^_`{|}~")
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {parts.host_header}",
            f"User-Agent: {USER_AGENT}",
        ]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise TransportError("header with a line break", final=True, final_url=url)
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise TransportError(
                "header not encodable as Latin-1", final=True, final_url=url
            ) from None
        return (scheme, host, port), head + body if body else head

    async def _read(self, conn: _Conn, method: str) -> tuple[int, dict[str, str], bytes, bool]:
        """Parse one response; return it and whether the connection can be reused."""
        cap = self._settings.body_prefix_bytes
        while True:
            end = conn.buf.find(b"\r\n\r\n")
            while end < 0:
                if len(conn.buf) > _MAX_HEAD:
                    raise ConnectionResetError("response head too large")
                await conn.more()
                end = conn.buf.find(b"\r\n\r\n")
            head_bytes = bytes(conn.buf[:end])
            del conn.buf[: end + 4]
            lines = head_bytes.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise ConnectionResetError(f"malformed status line {lines[0][:80]!r}")
            status = int(parts[1])
            head: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    head[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                continue  # 100 Continue and friends: the real answer follows
            break
        keep = parts[0] == "HTTP/1.1" and head.get("connection", "").lower() != "close"
        if method == "HEAD" or status in (204, 304):
            return status, head, b"", keep and not conn.buf
        if "chunked" in head.get("transfer-encoding", "").lower():
            prefix, done = await self._chunked(conn, cap)
            return status, head, prefix, keep and done and not conn.buf
        length = head.get("content-length")
        if length is not None and length.isdigit():
            n = int(length)
            want = min(n, cap)
            while len(conn.buf) < want:
                await conn.more()
            prefix = bytes(conn.buf[:want])
            del conn.buf[:want]
            return status, head, prefix, keep and n <= cap and not conn.buf
        while len(conn.buf) < cap and not conn.eof:  # read until close
            try:
                await conn.more()
            except ConnectionResetError:
                break
        return status, head, bytes(conn.buf[:cap]), False

    async def _chunked(self, conn: _Conn, cap: int) -> tuple[bytes, bool]:
        """The first ``cap`` bytes of a chunked body; True when it ended within them."""
        out = bytearray()
        while True:
            end = conn.buf.find(b"\r\n")
            while end < 0:
                await conn.more()
                end = conn.buf.find(b"\r\n")
            size_text = bytes(conn.buf[:end]).split(b";", 1)[0].strip()
            size = int(size_text, 16) if size_text else 0
            del conn.buf[: end + 2]
            if size == 0:
                while (trailer := conn.buf.find(b"\r\n")) != 0:  # trailers, then CRLF
                    if trailer < 0:
                        await conn.more()
                        continue
                    del conn.buf[: trailer + 2]
                del conn.buf[:2]
                return bytes(out[:cap]), True
            if len(out) + size > cap:
                while len(conn.buf) < cap - len(out):
                    await conn.more()
                out += conn.buf[: cap - len(out)]
                return bytes(out), False
            while len(conn.buf) < size + 2:
                await conn.more()
            out += conn.buf[:size]
            del conn.buf[: size + 2]

    # -- the pool ----------------------------------------------------------------

    def _take_idle(self, key: Key) -> _Conn | None:
        """A pooled connection still fit for a request; closed or dirty ones are dropped."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.eof and not conn.buf:
                return conn
            self._discard(key, conn)
        return None

    async def _acquire(self, key: Key) -> _Conn:
        conn = self._take_idle(key)
        if conn is not None:
            return conn
        while self._open.get(key, 0) >= self._settings.max_connections_per_host:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(key, deque()).append(waiter)
            try:
                await waiter
            finally:
                waiters = self._waiters.get(key)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
            conn = self._take_idle(key)
            if conn is not None:
                return conn
        self._open[key] = self._open.get(key, 0) + 1
        try:
            conn = await self._connect(key)
        except BaseException:
            self._open[key] -= 1
            self._wake_one(key)
            raise
        self._all.add(conn)
        return conn

    def _release(self, key: Key, conn: _Conn) -> None:
        self._idle.setdefault(key, []).append(conn)
        self._wake_one(key)

    def _discard(self, key: Key, conn: _Conn) -> None:
        conn.close()
        if conn in self._all:
            self._all.discard(conn)
            self._open[key] -= 1
        self._wake_one(key)

    def _wake_one(self, key: Key) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, key: Key) -> _Conn:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        target = self._overrides.get((host, port)) or self._overrides.get((host, None))
        dial_host, dial_port = target if target is not None else (host, port)
        infos = await loop.getaddrinfo(dial_host, dial_port, type=socket.SOCK_STREAM)
        blocked: list[str] = []
        last: OSError | None = None
        for n, (family, type_, proto, _, sockaddr) in enumerate(infos):
            address = str(sockaddr[0]).split("%", 1)[0]
            ip = literal_address(address)
            reason = "unparseable" if ip is None else self.policy.check(ip)
            if reason is not None:  # the address actually dialled is what counts
                blocked.append(f"{address} ({reason})")
                continue
            sock = socket.socket(family, type_, proto)
            sock.setblocking(False)
            # An address that does not answer (a broken IPv6 route) must not eat
            # the whole timeout while another one is left to try.
            wait = _PER_ADDRESS_CONNECT if n < len(infos) - 1 else None
            try:
                async with asyncio.timeout(wait):
                    await loop.sock_connect(sock, sockaddr)
            except TimeoutError:
                sock.close()
                last = OSError(f"connect to {address} timed out")
                continue
            except OSError as exc:
                sock.close()
                last = exc
                continue
            if scheme == "https" and self._ssl is None:
                self._ssl = client_context(self._settings.ca_file)
            try:
                _, conn = await loop.create_connection(
                    _Conn,
                    sock=sock,
                    ssl=self._ssl if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
            except BaseException:
                sock.close()
                raise
            return conn
        if blocked and last is None:
            log.warning("refused to connect to %s: %s", host, ", ".join(blocked))
            raise TransportError(f"blocked destination: {', '.join(blocked)}", final=True)
        detail = (last.strerror or str(last)) if last is not None else "no address"
        raise TransportError(f"connect error: {detail}")
