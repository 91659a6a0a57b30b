"""The one exception both implementations raise for a bad template."""

from __future__ import annotations

__all__ = ("TemplateError",)


class TemplateError(ValueError):
    """A template that cannot compile; ``position`` is the 0-based offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position

    def __reduce__(self) -> tuple[type[TemplateError], tuple[str, int]]:
        return (type(self), (str(self), self.position))
