"""Types of the compiled plan; it mirrors ``_plan_py`` (tests/test_fastrender_stub.py checks)."""

from collections.abc import Iterable, Mapping
from typing import final

from ._errors import TemplateError as TemplateError
from ._parse import Slot

__all__ = ("Plan", "TemplateError", "compile_template")

@final
class Plan:
    """A compiled template: literal pieces around resolved slots."""

    @property
    def template(self) -> str: ...
    @property
    def tokens(self) -> tuple[str, ...]: ...
    def __init__(self, template: str, pieces: tuple[str, ...], slots: tuple[Slot, ...]) -> None: ...
    def render(self, values: Mapping[str, object], /) -> str: ...
    def render_many(self, many: Iterable[Mapping[str, object]], /) -> list[str]: ...

def compile_template(
    template: str, *, dialect: str = "clickflare", unknown: str = "error"
) -> Plan: ...
