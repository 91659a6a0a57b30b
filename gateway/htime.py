"""``{htime}``: the click time sealed with the gateway's secret (``[server] secret``).

Format (docs/templates.md): 24 URL-safe base64 characters, no padding, of
18 bytes: the click's Unix time in seconds as 8 big-endian bytes XORed with a
keystream, then a 10-byte tag.  Keystream and tag are HMAC-SHA256 under keys
derived from the secret, and both are bound to the click id, which is unique
and random, so a keystream is never reused: the value hides the time, cannot
be forged or moved to another click, and is the same each time a click's
postbacks render.  :func:`open_htime` reads one back (for support and tests).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

__all__ = ("open_htime", "seal_htime")

_TAG = 10


@functools.lru_cache(maxsize=8)
def _keys(secret: str) -> tuple[bytes, bytes]:
    root = secret.encode()
    return (
        hmac.new(root, b"htime-stream", hashlib.sha256).digest(),
        hmac.new(root, b"htime-tag", hashlib.sha256).digest(),
    )


def _stream(key: bytes, click_id: str) -> int:
    return int.from_bytes(hmac.new(key, click_id.encode(), hashlib.sha256).digest()[:8])


def seal_htime(secret: str, click_id: str, when: float) -> str:
    stream, tag_key = _keys(secret)
    body = (int(when) ^ _stream(stream, click_id)).to_bytes(8)
    tag = hmac.new(tag_key, click_id.encode() + b"\x00" + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(body + tag[:_TAG]).decode().rstrip("=")


def open_htime(secret: str, click_id: str, sealed: str) -> int | None:
    """The click time ``sealed`` holds, or None if it is not this click's."""
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except ValueError:
        return None
    if len(raw) != 8 + _TAG:
        return None
    stream, tag_key = _keys(secret)
    body, tag = raw[:8], raw[8:]
    want = hmac.new(tag_key, click_id.encode() + b"\x00" + body, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, want[:_TAG]):
        return None
    return int.from_bytes(body) ^ _stream(stream, click_id)
