"""The lean client's connections: dialling (SSRF, TLS) and the keep-alive pool.

Connections are kept per (scheme, host, port) under the per-host cap.  An
idle one is reused newest first (the one least likely to have been closed by
the peer), leaves the pool as soon as the peer closes it, and is closed by
us after ``idle_timeout`` seconds; past ``max_connections`` open in all, the
oldest idle ones go first.  Every address dialled (DNS answers, ``resolve``
overrides, literals) passes the SSRF policy, and TLS sessions are resumed
per host name (``tls.ResumingContext``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import TransportError
from gateway.dispatch.transport.ssrf import AddressPolicy, literal_address, parse_resolve
from gateway.dispatch.transport.tls import ResumingContext, client_context
from gateway.dispatch.transport.wire import Conn

__all__ = ("Key", "Pool")

log = logging.getLogger(__name__)

Key = tuple[str, str, int]  # scheme, host, port

#: An address that does not answer (a broken IPv6 route) gets this long when
#: another one is left to try, so it cannot eat the whole connect budget.
_PER_ADDRESS_CONNECT = 2.0


class Pool:
    """Open connections by key: idle ones, counts under the cap, waiters for a slot."""

    def __init__(self, settings: DeliverySettings, policy: AddressPolicy) -> None:
        self._settings = settings
        self._policy = policy
        self._overrides = parse_resolve(settings.resolve)
        self._per_host = settings.max_connections_per_host
        self._idle: dict[Key, list[Conn]] = {}
        self._open: dict[Key, int] = {}
        self._waiters: dict[Key, deque[asyncio.Future[None]]] = {}
        self.conns: set[Conn] = set()  # every open connection, idle or in use
        self._ssl: ResumingContext | None = None
        self._sweep: asyncio.TimerHandle | None = None

    # -- taking and giving back ---------------------------------------------------

    async def acquire(self, key: Key, connect_timeout: float) -> Conn:
        """An idle connection for ``key``, or a new one once the cap allows."""
        conn = self.take_idle(key)
        if conn is not None:
            return conn
        while self._open.get(key, 0) >= self._per_host:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(key, deque()).append(waiter)
            try:
                await waiter
            finally:
                waiters = self._waiters.get(key)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(key, None)
            conn = self.take_idle(key)
            if conn is not None:
                return conn
        self._open[key] = self._open.get(key, 0) + 1
        try:
            conn = await self._connect(key, connect_timeout)
        except BaseException:
            self._forget(key)
            raise
        self.conns.add(conn)
        conn.on_lost = self._lost
        if len(self.conns) > self._settings.max_connections:
            self._evict_oldest()
        return conn

    def release(self, conn: Conn) -> None:
        """``conn`` answered cleanly and may carry another request."""
        loop = conn.loop
        assert loop is not None
        conn.idle_since = loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweep is None:
            self._sweep = loop.call_later(self._settings.idle_timeout, self._expire)
        self._wake_one(conn.key)

    def discard(self, conn: Conn) -> None:
        """Close ``conn`` (broken, unfinished, or told to close) and free its slot."""
        conn.abort() if conn.buf else conn.close()
        self._drop(conn)

    def take_idle(self, key: Key) -> Conn | None:
        """The newest idle connection fit for a request, or None."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            conn.idle_since = -1.0
            if not conn.eof and not conn.buf:
                return conn
            self.discard(conn)  # closed meanwhile, or it spoke unasked: not trusted
        return None

    def _drop(self, conn: Conn) -> None:
        if conn in self.conns:
            self.conns.discard(conn)
            if conn.idle_since >= 0:
                idle = self._idle.get(conn.key)
                if idle is not None and conn in idle:
                    idle.remove(conn)
                conn.idle_since = -1.0
            self._forget(conn.key)

    def _forget(self, key: Key) -> None:
        left = self._open.get(key, 1) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)
            if not self._idle.get(key):
                self._idle.pop(key, None)
        self._wake_one(key)

    def _lost(self, conn: Conn) -> None:
        """The peer closed a pooled connection."""
        self._drop(conn)

    def _wake_one(self, key: Key) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _expire(self) -> None:
        """Close connections idle for longer than ``idle_timeout``; look again later."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        limit = loop.time() - self._settings.idle_timeout
        oldest = float("inf")
        for idle in list(self._idle.values()):
            for conn in list(idle):
                if conn.idle_since <= limit:
                    self.discard(conn)
                else:
                    oldest = min(oldest, conn.idle_since)
        if oldest != float("inf"):
            delay = oldest - limit
            self._sweep = loop.call_later(max(delay, 0.05), self._expire)

    def _evict_oldest(self) -> None:
        """Over ``max_connections`` in all: close the longest-idle connection, if any."""
        candidates = [c for idle in self._idle.values() for c in idle]
        if candidates:
            self.discard(min(candidates, key=lambda c: c.idle_since))

    def idle_count(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        for conn in list(self.conns):
            conn.close()
        self.conns.clear()
        self._idle.clear()
        self._open.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    # -- dialling -----------------------------------------------------------------

    async def _connect(self, key: Key, timeout: float) -> Conn:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        target = self._overrides.get((host, port)) or self._overrides.get((host, None))
        dial_host, dial_port = target if target is not None else (host, port)
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(dial_host, dial_port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise TransportError(f"DNS timeout after {timeout:g} s for {dial_host}") from None
        except socket.gaierror as exc:
            raise TransportError(f"DNS error for {dial_host}: {exc.strerror or exc}") from exc
        blocked: list[str] = []
        last: OSError | None = None
        for n, (family, type_, proto, _, sockaddr) in enumerate(infos):
            address = str(sockaddr[0]).split("%", 1)[0]
            ip = literal_address(address)
            reason = "unparseable" if ip is None else self._policy.check(ip)
            if reason is not None:  # the address actually dialled is what counts
                blocked.append(f"{address} ({reason})")
                continue
            sock = socket.socket(family, type_, proto)
            sock.setblocking(False)
            wait = min(timeout, _PER_ADDRESS_CONNECT) if n < len(infos) - 1 else timeout
            try:
                async with asyncio.timeout(wait):
                    await loop.sock_connect(sock, sockaddr)
            except TimeoutError:
                sock.close()
                last = OSError(f"connect timeout after {wait:g} s to {address}")
                continue
            except OSError as exc:
                sock.close()
                last = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return await self._wrap(key, sock, timeout)
        if blocked and last is None:
            log.warning("refused to connect to %s: %s", host, ", ".join(blocked))
            raise TransportError(f"blocked destination: {', '.join(blocked)}", final=True)
        detail = (last.strerror or str(last)) if last is not None else "no address"
        raise TransportError(f"connect error: {detail}")

    async def _wrap(self, key: Key, sock: socket.socket, timeout: float) -> Conn:
        """The protocol on a connected socket; for https, the TLS handshake first."""
        scheme, host, _ = key
        loop = asyncio.get_running_loop()
        if scheme != "https":
            try:
                _, conn = await loop.create_connection(lambda: Conn(key), sock=sock)
            except BaseException:
                sock.close()
                raise
            return conn
        if self._ssl is None:
            self._ssl = client_context(self._settings.ca_file)
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: Conn(key),
                    sock=sock,
                    ssl=self._ssl,
                    server_hostname=host,  # SNI and the name the certificate must carry
                    ssl_handshake_timeout=timeout + 1.0,  # ours fires first, with the reason
                )
        except TimeoutError:
            sock.close()
            raise TransportError(f"TLS handshake timeout after {timeout:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise TransportError(f"TLS certificate refused: {exc.verify_message}") from exc
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise TransportError(f"TLS handshake failed: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return conn

    def keep_session(self, conn: Conn) -> None:
        """Remember the TLS session ``conn`` holds, so the next connection resumes it."""
        conn.session_kept = True
        if self._ssl is None or conn.transport is None:
            return
        sslobj = conn.transport.get_extra_info("ssl_object")
        if isinstance(sslobj, ssl.SSLObject):
            self._ssl.keep(conn.key[1], sslobj)
