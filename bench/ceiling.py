"""The ceiling: a bare aiohttp + uvloop endpoint that does the least a gateway could.

It parses a conversion exactly as the contract asks (parameter aliases, a
status word, a payout number), answers the same JSON shape, and stores
nothing.  With ``--relay URL`` it is a *relay*: before answering, it sends one
bare aiohttp GET to ``URL`` (the sink's unrecorded ``/_relay``) per
conversion, so it does the gateway's HTTP work in and out and nothing else.
The benchmark sends it the same requests as the gateway, in its own process
on the same machine, so ``gateway rps / ceiling rps`` says what the gateway's
durability and bookkeeping cost on top of HTTP itself.
"""

from __future__ import annotations

import argparse
import itertools
import ssl
import sys
from collections.abc import AsyncIterator, Sequence

import aiohttp
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
    txid = _first(query, _TXID)
    number = next(request.app[_COUNTER])
    relay = request.app.get(_RELAY)
    if relay is not None:
        session, url = relay
        async with session.get(f"{url}?cid={click}&txid={txid}&n={number}") as answer:
            await answer.read()
    body = _encode(_Answer("accepted", f"c{number}", 0))
    return web.Response(body=body, content_type="application/json")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


_COUNTER: web.AppKey[itertools.count[int]] = web.AppKey("counter")
_RELAY: web.AppKey[tuple[aiohttp.ClientSession, str]] = web.AppKey("relay")


def build_app(relay: str | None = None, ca_file: str | None = None) -> web.Application:
    """The endpoint; with ``relay``, one GET there per conversion (``ca_file``: for HTTPS)."""
    app = web.Application()
    app[_COUNTER] = itertools.count(1)
    if relay is not None:

        async def client(app: web.Application) -> AsyncIterator[None]:
            context = ssl.create_default_context(cafile=ca_file) if ca_file else None
            connector = aiohttp.TCPConnector(limit=512, limit_per_host=64, ssl=context or True)
            async with aiohttp.ClientSession(connector=connector) as session:
                app[_RELAY] = (session, relay)
                yield

        app.cleanup_ctx.append(client)
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
    parser.add_argument("--relay", help="GET this URL once per conversion before answering")
    parser.add_argument("--ca-file", help="extra CA (PEM) for an https --relay")
    args = parser.parse_args(argv)
    run_loop(lambda: serve_app(build_app(args.relay, args.ca_file), args.host, args.port))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
