"""Shared fixtures: the two ``_fastrender`` implementations, side by side.

The facade itself lives in ``_fastrender._testing`` so that ``bench/`` uses
the same one without a top-level conftest.
"""

from __future__ import annotations

import pytest

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
