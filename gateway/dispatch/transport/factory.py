"""The one place that chooses the HTTP client (``[delivery] transport``)."""

from __future__ import annotations

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.aiohttp_client import AiohttpTransport
from gateway.dispatch.transport.base import Transport
from gateway.dispatch.transport.dryrun import DryRunTransport
from gateway.dispatch.transport.lean import LeanTransport

__all__ = ("make_transport",)


def make_transport(settings: DeliverySettings) -> Transport:
    """The configured client; a new client is one more branch here."""
    if settings.dry_run:
        return DryRunTransport()
    if settings.transport == "lean":
        return LeanTransport(settings)
    return AiohttpTransport(settings)
