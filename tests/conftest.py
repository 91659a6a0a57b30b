"""Shared fixtures: the two ``_fastrender`` implementations, side by side.

The facade itself lives in ``_fastrender._testing`` so that ``bench/`` uses
the same one without a top-level conftest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop

# The c/py implementation hooks and the ``fastrender_module`` fixture, shared with bench/.
from _fastrender._testing import (  # noqa: F401 - pytest finds hooks and fixtures by name
    FastrenderAPI,
    FastrenderImplementation,
    fastrender_module,
    pytest_addoption,
    pytest_generate_tests,
)

__all__ = ("FastrenderAPI", "FastrenderImplementation")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on both loops: the stdlib one and uvloop, which serve uses.

    A module that shares one stand-in network or gateway process across its
    tests and counts what it saw sets ``ONE_LOOP = True`` and runs once.
    """
    if getattr(getattr(item, "module", None), "ONE_LOOP", False):
        return {"asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


# The transport fixture (aiohttp, lean): one suite that every client must pass.
from transport_fixtures import make_client, transport_kind  # noqa: E402, F401

# The store backends: ``store`` (open, empty) and ``store_backend``, each test once per backend.
from tests.store_fixtures import store, store_backend  # noqa: E402, F401 - fixtures by name
