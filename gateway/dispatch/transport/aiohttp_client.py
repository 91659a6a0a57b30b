"""The outbound HTTP seam: one pooled client, redirects checked hop by hop.

Retry logic sees only :class:`Answer` and :class:`TransportError`, never
aiohttp types, so a leaner client can replace this one later.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway import constants
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.ssrf import (
    AddressPolicy,
    blocked_dials,
    literal_address,
    parse_resolve,
)

__all__ = ("AiohttpTransport", "Answer", "Transport", "TransportError")

log = logging.getLogger(__name__)

_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_USER_AGENT = "postback-gateway/0.1"


class Answer(msgspec.Struct, kw_only=True, gc=False):  # never in a cycle: untracked
    """What a destination answered (after redirects)."""

    status: int
    #: Response headers; ``.get()`` with a lower-case name must work (a dict with
    #: lower-case keys, or aiohttp's case-insensitive view, not copied per answer).
    headers: Mapping[str, str]
    body_prefix: bytes
    elapsed: float  # seconds, all hops
    final_url: str
    redirects: int = 0


class TransportError(Exception):
    """No HTTP answer: connect error, timeout, reset, or a refused destination.

    ``final`` marks errors that retrying cannot fix (a blocked address, a
    malformed URL); the others are retried.
    """

    def __init__(self, reason: str, *, final: bool = False, elapsed: float = 0.0,
                 final_url: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.elapsed = elapsed
        self.final_url = final_url


class Transport(Protocol):
    async def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        """One request with redirects followed; raise TransportError when no answer."""
        ...

    async def close(self) -> None: ...


class _GuardedResolver(AbstractResolver):
    """The system resolver behind ``resolve`` overrides (curl --resolve).

    It does not judge addresses: the socket factory checks what is dialled.
    """

    def __init__(self, overrides: dict[tuple[str, int | None], tuple[str, int]]) -> None:
        self._overrides = overrides
        self._system = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key = host.lower().rstrip(".")
        target = self._overrides.get((key, port)) or self._overrides.get((key, None))
        if target is None:
            return await self._system.resolve(host, port, family)
        address, target_port = target
        ip = literal_address(address)
        if ip is None:
            return await self._system.resolve(address, target_port, family)
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [ResolveResult(hostname=host, host=str(ip), port=target_port, family=fam,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        await self._system.close()


class AiohttpTransport:
    """aiohttp's client with a pool per process, a per-host cap and the SSRF guard."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self.policy = AddressPolicy.from_settings(settings)
        self._overrides = parse_resolve(settings.resolve)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        s = self._settings
        tls: ssl.SSLContext | bool = True  # aiohttp's default: verify against the system CAs
        if s.ca_file:
            tls = ssl.create_default_context()  # the system CAs...
            tls.load_verify_locations(cafile=s.ca_file)  # ...and the extra ones
        connector = aiohttp.TCPConnector(
            ssl=tls,
            limit=s.max_connections,
            limit_per_host=s.max_connections_per_host,
            resolver=_GuardedResolver(self._overrides),
            socket_factory=self.policy.socket_factory,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # each send() sets its own deadline
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry cookies between destinations
            trust_env=False,
            headers={"User-Agent": _USER_AGENT},
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        session = self._session or self._open()
        started = time.perf_counter()
        deadline = started + timeout
        seen = blocked_dials.set([])
        current = url
        cap = self._settings.body_prefix_bytes
        try:
            for hop in range(constants.MAX_REDIRECTS + 1):
                target = self._check_url(current, started)
                if hop == 0:  # the usual case: one immutable timeout object per value
                    client_timeout = self._timeouts.get(timeout)
                    if client_timeout is None:
                        client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(
                            total=timeout
                        )
                else:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        raise TimeoutError
                    client_timeout = aiohttp.ClientTimeout(total=left)
                # inline, not a helper coroutine: one frame less per I/O wake-up
                async with session.request(
                    method, target, data=body, headers=headers or None,
                    allow_redirects=False, timeout=client_timeout,
                ) as resp:
                    content = resp.content
                    prefix = await content.read(cap)
                    while len(prefix) < cap and not content.at_eof():
                        chunk = await content.read(cap - len(prefix))
                        if not chunk:
                            break
                        prefix += chunk
                    # Leaving the block releases the connection; aiohttp closes it
                    # instead of draining when the body was longer than the cap.
                    status = resp.status
                    resp_headers = resp.headers  # case-insensitive, parsed already
                location = resp_headers.get("location") if status in _REDIRECTS else None
                if location and hop < constants.MAX_REDIRECTS:
                    current = str(target.join(URL(location)))
                    if status == 303 or (status in (301, 302) and method == "POST"):
                        method, body = "GET", None
                    continue
                return Answer(status=status, headers=resp_headers, body_prefix=prefix,
                              elapsed=time.perf_counter() - started, final_url=current,
                              redirects=hop)
            raise AssertionError("unreachable")  # the loop returns on its last hop
        except TransportError:
            raise
        except TimeoutError as exc:
            raise TransportError(f"timeout after {timeout:g} s", elapsed=timeout,
                                 final_url=current) from exc
        except aiohttp.ClientConnectorError as exc:
            elapsed = time.perf_counter() - started
            blocked = ", ".join(blocked_dials.get() or [])
            if blocked:
                raise TransportError(f"blocked destination: {blocked}", final=True,
                                     elapsed=elapsed, final_url=current) from exc
            raise TransportError(f"connect error: {exc.os_error.strerror or exc.os_error}",
                                 elapsed=elapsed, final_url=current) from exc
        except aiohttp.InvalidURL as exc:
            raise TransportError(f"invalid URL: {exc}", final=True, final_url=current) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}".rstrip(": "),
                                 elapsed=time.perf_counter() - started,
                                 final_url=current) from exc
        finally:
            blocked_dials.reset(seen)

    def _check_url(self, url: str, started: float) -> URL:
        try:
            target = URL(url, encoded=True)
        except (ValueError, TypeError) as exc:
            raise TransportError(f"invalid URL: {exc}", final=True, final_url=url) from exc
        if target.scheme not in ("http", "https") or not target.raw_host:
            raise TransportError(f"unsupported URL (scheme {target.scheme!r})", final=True,
                                 elapsed=time.perf_counter() - started, final_url=url)
        reason = self.policy.check_host(target.raw_host)
        if reason is not None:
            raise TransportError(f"blocked destination: {target.raw_host} ({reason})",
                                 final=True, elapsed=time.perf_counter() - started,
                                 final_url=url)
        return target
