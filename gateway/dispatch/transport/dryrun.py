"""The dry-run transport: chosen when ``[delivery] dry_run`` is on, it sends nothing.

The dispatcher stores dry-run deliveries before it would call a transport, so
this one is never asked in normal operation; it is here so that no HTTP
client (no pool, no resolver, no socket) exists at all in dry-run mode, and
anything that does ask (``test-postback``, a replay) gets a final refusal
instead of a request leaving the machine.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.dispatch.transport.base import Answer, TransportError

__all__ = ("DRY_RUN_REASON", "DryRunTransport")

DRY_RUN_REASON = "dry run: nothing is sent ([delivery] dry_run = true)"


class DryRunTransport:
    async def exchange(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        raise TransportError(DRY_RUN_REASON, final=True)

    async def close(self) -> None:
        return None
