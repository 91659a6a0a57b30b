"""``POST /api/postbacks/test``: render one rule with given values, send it once.

Request body (JSON object, every field optional but one of source/campaign)::

    {"source": "exoclick",            # a traffic source's name, or
     "campaign": "c1",                # a campaign id (its rules: the source's and its own)
     "rule": 0,                       # index or name; default: the first the status fires
     "values": {"externalid": "abc", "payout": "2.50", "status": "approved"}}

Answer ``200`` with what was sent (the display URL, secrets as ``***``) and
what came back: ``status_code``, ``latency_ms``, ``body_excerpt``,
``outcome`` (``delivered`` / ``rejected`` / ``retry``) and ``reason``, judged
as the dispatcher would. Nothing is stored. Bad input answers ``400
{"error", "field"}``; an unknown source, campaign or rule name ``404``.
Under ``/api``, so the bearer token applies when the config sets one
(the app's middleware checks it before this handler runs).
"""

from __future__ import annotations

from aiohttp import web

from gateway.http.errors import bad_input_response, json_response
from gateway.http.reading import decode_json
from gateway.http.state import STATE
from gateway.refusal import BadInput, Reject
from gateway.testpostback import parse_request, plan_and_send

__all__ = ("test_postback",)


async def test_postback(request: web.Request) -> web.Response:
    config = request.app[STATE].config  # the live config (swapped whole on SIGHUP)
    try:
        raw = decode_json(await request.read())
        if isinstance(raw, Reject):
            raise BadInput(raw.error, raw.field, raw.code)
        result = await plan_and_send(config, parse_request(raw))
    except BadInput as exc:
        return bad_input_response(exc)
    return json_response(result)
