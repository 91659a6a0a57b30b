"""The default HTTP client: a lean HTTP/1.1 client on ``asyncio.Protocol``, one
hop a call (``[delivery] transport = "lean"``; ``"aiohttp"`` is the other).

Postbacks are tiny requests whose answers are a few bytes, so most of a
general client's work (cookie jars, multidict headers, streaming readers,
tracing) is overhead.  This one does what a production HTTP/1.1 client must
and nothing else: the wire format and its limits (``wire``), the keep-alive
pool, SSRF-checked dialling and TLS with verification, SNI and session
resumption (``pool``), and one timeout per phase here: connect (each of TCP
and the TLS handshake), the first byte of the answer, and the whole request.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Mapping
from urllib.parse import quote

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import USER_AGENT, Answer, TransportError
from gateway.dispatch.transport.body import decompressed
from gateway.dispatch.transport.deadlines import Deadlines
from gateway.dispatch.transport.pool import Key, Pool
from gateway.dispatch.transport.redirects import check_hop
from gateway.dispatch.transport.ssrf import AddressPolicy
from gateway.dispatch.transport.wire import Closed, Conn, read_response

__all__ = ("LeanTransport",)

_UNSAFE = re.compile(r"[^\x21-\x7e]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PATH_START = re.compile(r"[/?#]")


class LeanTransport:
    """The lean client: one :class:`Pool` per process."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self.policy = AddressPolicy.from_settings(settings)
        self.pool = Pool(settings, self.policy)
        self._cap = settings.body_prefix_bytes
        self._prefixes: dict[tuple[str, str], tuple[Key, str, bytes]] = {}
        self._deadlines = Deadlines()  # the whole-request timeouts

    async def close(self) -> None:
        self.pool.close()
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
            loop = asyncio.get_running_loop()
            task = asyncio.current_task(loop)  # with its loop: no second getpid()
            assert task is not None, "exchange() runs in a task"
            deadlines = self._deadlines
            deadlines.begin(task, loop.time() + timeout)
            try:
                status, head, prefix = await self._exchange(method, url, body, headers, timeout)
            except BaseException as exc:
                if deadlines.end(task) and isinstance(exc, asyncio.CancelledError):
                    raise TimeoutError from None  # the deadline's own cancellation
                raise
            deadlines.end(task)
            return Answer(
                status=status,
                headers=head,
                body_prefix=decompressed(head.get("content-encoding"), prefix, self._cap),
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
        except Closed as exc:
            raise TransportError(
                f"connection closed before an answer ({exc})",
                elapsed=time.perf_counter() - started,
                final_url=url,
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"{type(exc).__name__}: {exc}",
                elapsed=time.perf_counter() - started,
                final_url=url,
            ) from exc

    # -- one request/response ----------------------------------------------------

    async def _exchange(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        key, request = self._request_bytes(method, url, body, headers)
        s = self._settings
        connect_timeout = min(s.connect_timeout, timeout)
        first_byte = s.first_byte_timeout
        pool = self.pool
        for _ in range(2):  # a pooled connection the peer just closed: once more, on a new one
            # an idle connection without a coroutine; dialling or waiting for a slot with one
            conn = pool.take_idle(key) or await pool.acquire(key, connect_timeout)
            reused = conn.used
            if conn.buf:  # it spoke before we did: not an answer to this request
                pool.discard(conn)
                raise TransportError("bad answer: bytes arrived before the request was sent")
            conn.send(request)
            try:
                if first_byte is not None and first_byte < timeout:
                    status, head, prefix, keep = await self._read_with_first_byte(
                        conn, method, first_byte
                    )
                else:
                    status, head, prefix, keep = await read_response(conn, method, self._cap)
            except Closed:
                pool.discard(conn)
                if reused and not conn.got:
                    continue
                raise
            except BaseException:
                pool.discard(conn)
                raise
            if not conn.session_kept and key[0] == "https":
                pool.keep_session(conn)  # after an answer: TLS 1.3 tickets come late
            if keep:
                pool.release(conn)
            else:
                pool.discard(conn)
            return status, head, prefix
        raise Closed("closed twice before an answer")

    async def _read_with_first_byte(
        self, conn: Conn, method: str, first_byte: float
    ) -> tuple[int, dict[str, str], bytes, bool]:
        """``read_response`` with its wait for the first byte bounded on its own."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_byte
        try:
            async with asyncio.timeout_at(deadline) as cm:
                while not conn.got:
                    await conn.more()
                cm.reschedule(None)  # the first byte is in: only the whole timeout is left
                return await read_response(conn, method, self._cap)
        except TimeoutError:
            if conn.got:
                raise
            raise TransportError(f"no answer within {first_byte:g} s (first byte)") from None

    def _request_bytes(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[Key, bytes]:
        """The pool key and the request's bytes; the URL's fixed part is kept per origin."""
        scheme_end = url.find("://")
        found = _PATH_START.search(url, scheme_end + 3) if scheme_end > 0 else None
        slash = -1 if found is None else found.start()
        origin = url if slash < 0 else url[:slash]
        cached = self._prefixes.get((method, origin))
        if cached is None:
            cached = self._origin(method, origin, url)
        key, verb, host_lines = cached
        target = "/" if slash < 0 else url[slash:]
        hash_at = target.find("#")
        if hash_at >= 0:
            target = target[:hash_at]
        if not target.startswith("/"):
            target = "/" + target
        if _UNSAFE.search(target):
            target = quote(target, safe="!#$%&'()*+,-./:;=?@[]^_`{|}~")
        if headers or body is not None:
            extra = []
            for name, value in headers.items():
                if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
                    raise TransportError(f"header {name!r} not allowed", final=True)
                extra.append(f"{name}: {value}\r\n")
            if body is not None:
                extra.append(f"Content-Length: {len(body)}\r\n")
            try:
                lines = "".join(extra).encode("latin-1")
            except UnicodeEncodeError as exc:
                raise TransportError("header value not Latin-1", final=True) from exc
            head = f"{verb}{target} HTTP/1.1\r\n".encode("latin-1") + host_lines
            head = head[:-2] + lines + b"\r\n"
            return key, head + body if body else head
        return key, f"{verb}{target} HTTP/1.1\r\n".encode("latin-1") + host_lines

    def _origin(self, method: str, origin: str, url: str) -> tuple[Key, str, bytes]:
        """Parse and check one origin once: its key, and the head lines it always sends."""
        try:
            parts = check_hop(origin, self.policy)  # the one reading of a URL (urls.py)
        except TransportError as exc:
            exc.final_url = url
            raise
        if not _TOKEN.fullmatch(method):
            raise TransportError(f"invalid method {method!r}", final=True, final_url=url)
        scheme, host, port, host_header = parts.scheme, parts.host, parts.port, parts.host_header
        lines = f"Host: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n\r\n".encode("latin-1")
        entry = ((scheme, host, port), f"{method} ", lines)
        if len(self._prefixes) >= 4096:
            self._prefixes.clear()
        self._prefixes[(method, origin)] = entry
        return entry
