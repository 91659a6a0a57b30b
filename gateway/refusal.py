"""A refused input: what is wrong and which field, the one shape of every 4xx body.

Intake, the delivery API and the postback tester all refuse input the same
way, so clients read one error shape: ``{"error": ..., "field": ...}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ("BadInput", "Reject", "error_body")


def error_body(error: str, field: str | None) -> dict[str, Any]:
    """The JSON body of every refusal: never the request echoed, always the field."""
    return {"error": error, "field": field}


class Reject:
    """A 4xx answer as a value (the hot path returns it, no raise): status, message, field."""

    __slots__ = ("code", "error", "field")

    def __init__(self, code: int, error: str, field: str | None = None) -> None:
        self.code = code
        self.error = error
        self.field = field

    def body(self) -> dict[str, Any]:
        return error_body(self.error, self.field)


class BadInput(ValueError):
    """A refusal raised from deep inside a handler (the API's and the tester's parsers)."""

    def __init__(self, error: str, field: str | None, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.field = field
        self.status = status

    def body(self) -> dict[str, Any]:
        return error_body(self.error, self.field)
