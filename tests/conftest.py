"""Shared fixtures: the two ``_fastrender`` implementations, side by side."""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any, Protocol

import pytest


class FastrenderAPI(Protocol):
    TemplateError: type[ValueError]

    def compile_template(self, template: str, *, dialect: str = ..., unknown: str = ...) -> Any: ...


@dataclasses.dataclass(frozen=True)
class FastrenderImplementation:
    is_pure_python: bool

    def __str__(self) -> str:
        return "py" if self.is_pure_python else "c"

    @property
    def module(self) -> ModuleType:
        name = "_fastrender._plan_py" if self.is_pure_python else "_fastrender._plan_c"
        return importlib.import_module(name)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-c-extensions", action="store_true", help="skip the compiled _fastrender runs"
    )


def _implementations(config: pytest.Config) -> list[Any]:
    params = [pytest.param(FastrenderImplementation(True), id="py")]
    if not config.getoption("--no-c-extensions"):
        params.insert(
            0,
            pytest.param(FastrenderImplementation(False), id="c", marks=pytest.mark.c_extension),
        )
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fastrender_implementation" in metafunc.fixturenames:
        metafunc.parametrize(
            "fastrender_implementation", _implementations(metafunc.config), scope="session"
        )


@pytest.fixture(scope="session")
def fastrender_module(fastrender_implementation: FastrenderImplementation) -> FastrenderAPI:
    return fastrender_implementation.module  # type: ignore[return-value]
