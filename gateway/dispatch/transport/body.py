"""An answer's body as text, the way the network meant it, for every client.

Answer rules match text (ExoClick's ``ERROR:``), so the bytes must become the
text a browser would show: a ``Content-Encoding`` the client did not undo
(gzip, deflate; bounded to the prefix the log keeps) is undone, a byte-order
mark is dropped (UTF-8, UTF-16), and a declared charset is honoured.  aiohttp
decompresses on its own; the lean client calls :func:`decompressed`.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Mapping
from typing import Final

__all__ = ("answer_text", "decompressed")

_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decompressed(encoding: str | None, raw: bytes, cap: int) -> bytes:
    """``raw`` with its gzip/deflate ``Content-Encoding`` undone, at most ``cap``
    bytes out; ``raw`` as is for other encodings or a stream that does not inflate
    (a prefix of a longer body inflates as far as it goes)."""
    if not encoding or not raw:
        return raw
    name = encoding.strip().lower()
    if name in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif name == "deflate":
        wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS  # zlib or raw
    else:
        return raw
    try:
        return zlib.decompressobj(wbits).decompress(raw, cap)
    except zlib.error:
        return raw


def answer_text(body: bytes, headers: Mapping[str, str]) -> str:
    """The body prefix as text: BOM first, then the declared charset, else UTF-8."""
    if body.isascii():
        return body.decode("ascii")
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace")
    charset = _charset(headers.get("content-type", ""))
    if charset is not None:
        try:
            return body.decode(charset, "replace")
        except LookupError:
            pass
    return body.decode("utf-8", "replace")


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None
