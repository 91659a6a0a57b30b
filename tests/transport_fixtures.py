"""The transport fixture: every client the factory offers, one suite for all.

Imported by ``conftest.py``; a new client is one more entry in ``KINDS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import msgspec
import pytest

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import Transport
from gateway.dispatch.transport.factory import make_transport

__all__ = ("KINDS", "MakeTransport", "make_client", "transport_kind")

#: ``[delivery] transport`` values; each test taking the fixture runs once per entry.
KINDS = ("aiohttp", "lean")

MakeTransport = Callable[[DeliverySettings], Transport]


@pytest.fixture(params=KINDS)
def transport_kind(request: pytest.FixtureRequest) -> str:
    """The client under test, by its ``[delivery] transport`` name."""
    return str(request.param)


@pytest.fixture
async def make_client(transport_kind: str) -> AsyncIterator[MakeTransport]:
    """``make(settings)``: that client built by the factory; closed after the test."""
    made: list[Transport] = []

    def make(settings: DeliverySettings) -> Transport:
        client = make_transport(msgspec.structs.replace(settings, transport=transport_kind))
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
