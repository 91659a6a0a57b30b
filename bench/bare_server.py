"""The ceiling for bench/intake_wrk.sh: aiohttp + uvloop, parse the query, answer 200.

Does what intake does before the store (read the same parameters from the
multidict, check the payout is a number) and nothing after it.
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation

import uvloop
from aiohttp import web


async def postback(request: web.Request) -> web.Response:
    q = request.query
    cid = q.get("cid") or q.get("clickid") or q.get("click_id") or q.get("subid")
    payout = q.get("payout") or q.get("sum") or q.get("amount") or "0"
    try:
        Decimal(payout)
    except InvalidOperation:
        return web.json_response({"error": "payout", "field": "payout"}, status=400)
    body = b'{"status":"accepted","conversion_id":"%s","postbacks":1}' % (cid or "").encode()
    return web.Response(body=body, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/postback", postback)
    app.router.add_get("/health", health)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
