"""Test utilities shared by ``tests/`` and ``bench/``.  Not for use outside this project.

The two implementations are reached here directly (everything else goes
through the selector in ``__init__``) because the test suite and the
benchmarks compare them side by side in one process.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, Protocol

import pytest

from ._errors import TemplateError

__all__ = (
    "FastrenderAPI",
    "FastrenderImplementation",
    "PlanAPI",
    "add_options",
    "c_available",
    "fastrender_module",
    "implementation_params",
    "pytest_addoption",
    "pytest_generate_tests",
)

NO_C_EXTENSIONS_OPTION = "--no-c-extensions"


class PlanAPI(Protocol):
    """What a compiled plan offers, whichever twin built it."""

    @property
    def template(self) -> str: ...

    @property
    def tokens(self) -> tuple[str, ...]: ...

    def render(self, values: Mapping[str, object]) -> str: ...

    def render_many(self, many: Iterable[Mapping[str, object]]) -> list[str]: ...


class FastrenderAPI(Protocol):
    """The module surface both ``_plan_c`` and ``_plan_py`` expose."""

    TemplateError: type[TemplateError]

    def compile_template(
        self, template: str, *, dialect: str = ..., unknown: str = ...
    ) -> PlanAPI: ...


@dataclasses.dataclass(frozen=True)
class FastrenderImplementation:
    """One of the two twins; ``str`` gives the short id used in test names."""

    is_pure_python: bool

    def __str__(self) -> str:
        return "py" if self.is_pure_python else "c"

    @property
    def module_name(self) -> str:
        return "_fastrender._plan_py" if self.is_pure_python else "_fastrender._plan_c"

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def api(self) -> FastrenderAPI:
        return self.module  # type: ignore[no-any-return, unused-ignore]


def add_options(parser: pytest.Parser) -> None:
    """Register ``--no-c-extensions`` once, whichever conftest gets there first."""
    try:
        parser.addoption(
            NO_C_EXTENSIONS_OPTION,
            action="store_true",
            help="skip the compiled _fastrender runs",
        )
    except ValueError:  # tests/ and bench/ both loaded in one run
        pass


def implementation_params(config: pytest.Config) -> list[Any]:
    """``pytest.param`` per available twin: c (marked ``c_extension``) unless
    deselected, then py."""
    params: list[Any] = [pytest.param(FastrenderImplementation(True), id="py")]
    if not config.getoption(NO_C_EXTENSIONS_OPTION):
        params.insert(
            0,
            pytest.param(FastrenderImplementation(False), id="c", marks=pytest.mark.c_extension),
        )
    return params


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``fastrender_implementation`` over the available twins."""
    if "fastrender_implementation" in metafunc.fixturenames:
        metafunc.parametrize(
            "fastrender_implementation", implementation_params(metafunc.config), scope="session"
        )


@pytest.fixture(scope="session")
def fastrender_module(fastrender_implementation: FastrenderImplementation) -> FastrenderAPI:
    return fastrender_implementation.api


def c_available() -> bool:
    """Whether the compiled twin can be imported here."""
    try:
        importlib.import_module("_fastrender._plan_c")
    except ImportError:
        return False
    return True
