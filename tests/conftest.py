"""Shared fixtures: the two ``_fastrender`` implementations, side by side.

The facade itself lives in ``_fastrender._testing`` so that ``bench/`` uses
the same one without a top-level conftest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop

from _fastrender._testing import (
    FastrenderAPI,
    FastrenderImplementation,
    add_options,
    implementation_params,
)

__all__ = ("FastrenderAPI", "FastrenderImplementation")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fastrender_implementation" in metafunc.fixturenames:
        metafunc.parametrize(
            "fastrender_implementation", implementation_params(metafunc.config), scope="session"
        )


@pytest.fixture(scope="session")
def fastrender_module(fastrender_implementation: FastrenderImplementation) -> FastrenderAPI:
    return fastrender_implementation.api



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
