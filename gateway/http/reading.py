"""Reading a request's body: JSON and forms, every way a client gets it wrong a 4xx.

Decoders raise more than their documented error on hostile input (JSON nested
thousands deep raises ``RecursionError``; a form with an unknown charset
``LookupError``; a multipart body without a boundary ``ValueError``), and an
exception that escapes a handler answers "internal error; retry", which a
network retries for ever.  So each reader returns the value or a ``Reject``
naming the field, and "internal error" stays for the server's own faults.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.refusal import Reject

__all__ = ("decode_json", "read_form")

_decode = msgspec.json.decode


def decode_json(raw: bytes) -> Any | Reject:
    """The JSON value of ``raw``, or a 400 naming ``body``."""
    try:
        return _decode(raw)
    except msgspec.DecodeError as exc:
        return Reject(400, f"malformed JSON: {exc}", "body")
    except RecursionError:
        return Reject(400, "malformed JSON: nested too deeply", "body")


async def read_form(request: web.BaseRequest) -> dict[str, str] | Reject:
    """A form body's text fields (files are ignored), or a 400/415 naming the field."""
    try:
        form = await request.post()
    except LookupError:
        return Reject(415, "unsupported charset", "Content-Type")
    except UnicodeDecodeError:
        return Reject(400, "form body is not valid text in its charset", "body")
    except (ValueError, AssertionError) as exc:  # multipart without a usable boundary, ...
        if isinstance(exc, web.HTTPException):
            raise
        return Reject(400, "malformed form body", "Content-Type")
    return {k: v for k, v in form.items() if isinstance(v, str)}
