"""A raw asyncio TCP server for adversarial transport tests: it plays a script
of bytes (well-formed or not), stalls, or hangs up, and records whether the
client closed each connection, so a test can tell a leaked socket.

Test helpers only; nothing in ``gateway`` imports this.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

__all__ = ("RawServer", "Script", "read_head")

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request head (up to the blank line), or b"" when the client left."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return b""


class RawServer:
    """``async with RawServer(script) as server``: ``server.url(path)``; every
    connection runs ``script``, then waits (bounded) for the client to close:
    a script that returns without closing is a server that stalls."""

    def __init__(self, script: Script, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._script = script
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0
        self.closed_by_client = 0
        self.requests: list[bytes] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def url(self, path: str = "/", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):  # their scripts end on the broken connection
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=2)
        for task in list(self._handlers):  # a script asleep: cancelled (asyncio logs it)
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.accepted += 1
        try:
            with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                await self._script(reader, writer)
            # the script is done: does the client close (or keep) the connection?
            try:
                while await asyncio.wait_for(reader.read(65536), 5.0):
                    pass
                self.closed_by_client += 1
            except (ConnectionError, ssl.SSLError):
                self.closed_by_client += 1  # reset by the client: closed too
            except TimeoutError:
                pass  # still open after 5 s: kept (or leaked)
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def all_closed(self, timeout: float = 2.0) -> bool:
        """Whether the client closed every connection it opened (within ``timeout``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.closed_by_client < self.accepted and loop.time() < end:
            await asyncio.sleep(0.01)
        return self.closed_by_client == self.accepted
