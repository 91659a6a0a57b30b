"""The ceiling: a bare aiohttp + uvloop endpoint that does the least a gateway could.

It parses a conversion exactly as the contract asks (parameter aliases, a
status word, a payout number), answers the same JSON shape, and stores
nothing.  The benchmark sends it the same requests as the gateway, in its own
process on the same machine, so ``gateway rps / ceiling rps`` says what the
gateway's durability and delivery cost on top of HTTP itself.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence

import msgspec
from aiohttp import web

from bench.procs import run_loop, serve_app

__all__ = ("build_app", "main")

_CLICK = ("cid", "clickid", "click_id", "subid")
_PAYOUT = ("payout", "sum", "amount")
_TXID = ("txid", "transaction_id", "tid")
_STATUS = {
    **dict.fromkeys(("approved", "approve", "confirmed", "sale", "success", "ok"), "approved"),
    **dict.fromkeys(("pending", "lead", "hold"), "pending"),
    **dict.fromkeys(
        ("rejected", "declined", "decline", "cancelled", "trash", "fail", "chargeback"), "rejected"
    ),
}


class _Answer(msgspec.Struct):
    status: str
    conversion_id: str
    postbacks: int


class _Error(msgspec.Struct):
    error: str
    field: str


_encode = msgspec.json.encode


def _first(query: object, names: Sequence[str]) -> str | None:
    for name in names:
        value = query.get(name)  # type: ignore[attr-defined]
        if value is not None:
            return str(value)
    return None


def _bad(field: str, error: str) -> web.Response:
    body = _encode(_Error(error, field))
    return web.Response(status=400, body=body, content_type="application/json")


async def _postback(request: web.Request) -> web.Response:
    query = request.query
    if request.method == "POST" and request.can_read_body:
        query = await request.post()  # type: ignore[assignment]
    click = _first(query, _CLICK)
    if not click:
        return _bad("cid", "a click id is required")
    payout = _first(query, _PAYOUT)
    if payout is not None:
        try:
            float(payout)
        except ValueError:
            return _bad("payout", "not a number")
    status = _STATUS.get((_first(query, ("status",)) or "approved").lower())
    if status is None:
        return _bad("status", "unknown status word")
    _first(query, _TXID)
    number = next(request.app[_COUNTER])
    body = _encode(_Answer("accepted", f"c{number}", 0))
    return web.Response(body=body, content_type="application/json")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


_COUNTER: web.AppKey[itertools.count[int]] = web.AppKey("counter")


def build_app() -> web.Application:
    app = web.Application()
    app[_COUNTER] = itertools.count(1)
    app.router.add_route("GET", "/postback", _postback)
    app.router.add_route("POST", "/postback", _postback)
    app.router.add_get("/health", _health)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    args = parser.parse_args(argv)
    run_loop(lambda: serve_app(build_app(), args.host, args.port))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
