"""The checks around every handler: size limits, the API token, errors as JSON.

One middleware rather than three, and the hot routes (``http.front``) call
the same ``over_limits`` and ``failure`` so both paths answer alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.http.errors import error_response
from gateway.http.request import IntakeRequest
from gateway.http.state import AppState
from gateway.intake.batcher import Closed
from gateway.intake.guard import api_token_ok

__all__ = ("failure", "guard_middleware", "over_limits")

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def over_limits(state: AppState, request: IntakeRequest) -> web.Response | None:
    """413 for a query or declared body over the configured limits, else None."""
    limits = state.config.limits
    if len(request.raw_path) > limits.max_query_bytes + 256:
        return error_response(413, f"query too large (max {limits.max_query_bytes} bytes)", "query")
    length = request.content_length
    if length is not None and length > limits.max_body_bytes:
        return error_response(413, f"body too large (max {limits.max_body_bytes} bytes)", "body")
    return None


def failure(request: IntakeRequest, exc: Exception) -> web.Response:
    """The JSON answer for an exception out of a handler (never a traceback)."""
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return error_response(exc.status, exc.reason, "body" if exc.status == 413 else None)
    if isinstance(exc, Closed):
        return error_response(503, "shutting down; retry")
    transport = request.transport
    if transport is None or transport.is_closing():  # the client left mid-request
        log.info(
            "%s %s: client disconnected (%s)", request.method, request.path, type(exc).__name__
        )
        return error_response(400, "client disconnected")
    # a bug or a failed commit: logged, answered
    log.error("%s %s failed", request.method, request.path, exc_info=exc)
    return error_response(503, "internal error; retry")


def guard_middleware(state: AppState) -> Any:
    """Errors -> JSON, size limits (413), the bearer token on /api/* (401)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            refused = over_limits(state, request)
            if refused is not None:
                return refused
            if request.path.startswith("/api/") and not api_token_ok(
                state.config, request.headers.get("Authorization", "")
            ):
                return error_response(401, "missing or wrong bearer token", "Authorization")
            return await handler(request)
        except Exception as exc:
            return failure(request, exc)

    return guard
