"""The aiohttp client: one pooled ``ClientSession`` per process, one hop a call.

The SSRF check at dial time is a socket factory handed to aiohttp's
connector, so it judges the address actually dialled, whatever aiohttp
resolved; ``blocked_dials`` lets an SSRF refusal be told apart from an
ordinary connect error after aiohttp wraps both.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import USER_AGENT, Answer, TransportError
from gateway.dispatch.transport.redirects import check_hop
from gateway.dispatch.transport.ssrf import (
    AddressPolicy,
    blocked_dials,
    literal_address,
    parse_resolve,
)
from gateway.dispatch.transport.tls import client_context
from gateway.dispatch.transport.urls import URLParts

__all__ = ("AiohttpTransport",)

log = logging.getLogger(__name__)

#: Timeout objects kept per value (immutable): the usual attempt reuses one.
_MAX_TIMEOUTS = 16


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
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=target_port,
                family=fam,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        await self._system.close()


def _as_yarl(parts: URLParts) -> URL:
    path, _, query = parts.target.partition("?")
    user, _, password = parts.userinfo.partition(":")
    return URL.build(
        scheme=parts.scheme,
        user=user or None,
        password=password or None,
        host=f"[{parts.host}]" if ":" in parts.host else parts.host,
        port=parts.port,
        path=path,
        query_string=query,
        encoded=True,
    )


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
        connector = aiohttp.TCPConnector(
            ssl=client_context(s.ca_file),
            limit=s.max_connections,
            limit_per_host=s.max_connections_per_host,
            resolver=_GuardedResolver(self._overrides),
            socket_factory=self.policy.socket_factory,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # each exchange sets its own
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry cookies between destinations
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def exchange(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        session = self._session or self._open()
        started = time.perf_counter()
        seen = blocked_dials.set([])
        cap = self._settings.body_prefix_bytes
        try:
            # Read the one way (urls.split_url), then handed to aiohttp built from
            # those parts, so aiohttp dials the host the guard judged.
            target = _as_yarl(check_hop(url, self.policy))
            client_timeout = self._timeouts.get(timeout)
            if client_timeout is None:
                client_timeout = aiohttp.ClientTimeout(total=timeout)
                if len(self._timeouts) < _MAX_TIMEOUTS:  # redirect hops' budgets vary
                    self._timeouts[timeout] = client_timeout
            # inline, not a helper coroutine: one frame less per I/O wake-up
            async with session.request(
                method,
                target,
                data=body,
                headers=headers or None,
                allow_redirects=False,
                timeout=client_timeout,
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
            return Answer(
                status=status,
                headers=resp_headers,
                body_prefix=prefix,
                elapsed=time.perf_counter() - started,
                final_url=url,
            )
        except TransportError as exc:
            exc.elapsed = exc.elapsed or time.perf_counter() - started
            raise
        except TimeoutError as exc:
            raise TransportError(
                f"timeout after {timeout:g} s", elapsed=timeout, final_url=url, timed_out=True
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            elapsed = time.perf_counter() - started
            blocked = ", ".join(blocked_dials.get() or [])
            if blocked:
                raise TransportError(
                    f"blocked destination: {blocked}", final=True, elapsed=elapsed, final_url=url
                ) from exc
            raise TransportError(
                f"connect error: {exc.os_error.strerror or exc.os_error}",
                elapsed=elapsed,
                final_url=url,
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise TransportError(f"invalid URL: {exc}", final=True, final_url=url) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"{type(exc).__name__}: {exc}".rstrip(": "),
                elapsed=time.perf_counter() - started,
                final_url=url,
            ) from exc
        finally:
            blocked_dials.reset(seen)
