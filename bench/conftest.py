"""Benchmark fixtures: the same c/py implementation facade the test suite uses.

These benchmarks run only when asked for (``pytest bench``; testpaths is
``tests``).  Timing needs ``--benchmark-enable`` because pyproject disables
pytest-benchmark by default, so a plain ``pytest bench`` just checks outputs:
``make bench`` runs them for real.
"""

from __future__ import annotations

import pytest

from _fastrender._testing import (
    FastrenderAPI,
    FastrenderImplementation,
    add_options,
    implementation_params,
)


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
