"""Every JSON answer and every refusal leaves through here: one body shape, one encoder."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.http.answer import JSONResponse
from gateway.intake.decide import Outcome
from gateway.refusal import BadInput, Reject, error_body

__all__ = (
    "OUTCOME_STATUS",
    "bad_input_response",
    "error_response",
    "json_response",
    "reject_response",
)

_encode = msgspec.json.encode

#: The HTTP status each conversion outcome answers with (spec/gateway.md).
OUTCOME_STATUS: dict[Outcome, int] = {
    "accepted": 200,
    "duplicate": 200,
    "unattributed": 202,
    "conflict": 409,
    "forbidden": 403,
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return JSONResponse(_encode(body), status)


def error_response(status: int, error: str, field: str | None = None) -> web.Response:
    return JSONResponse(_encode(error_body(error, field)), status)


def reject_response(reject: Reject) -> web.Response:
    return JSONResponse(_encode(reject.body()), reject.code)


def bad_input_response(exc: BadInput) -> web.Response:
    return JSONResponse(_encode(exc.body()), exc.status)
