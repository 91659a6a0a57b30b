"""Click ids: URL-safe, 96 random bits, and the creation time inside.

Layout: 6 bytes of milliseconds since the Unix epoch (big-endian, so ids sort
by time) + 12 random bytes, base64url without padding: 24 characters from
``[A-Za-z0-9_-]``.  Because the time travels in the id, the attribution
window is checked before any store lookup, and a forged or mangled id is
rejected by shape alone.
"""

from __future__ import annotations

import base64
import binascii
import os

__all__ = ("LENGTH", "created_at", "new_click_id")

LENGTH = 24
_RANDOM_BYTES = 12  # 96 bits: the contract asks for at least 80
_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def new_click_id(now: float) -> str:
    millis = int(now * 1000).to_bytes(6, "big")
    return base64.urlsafe_b64encode(millis + os.urandom(_RANDOM_BYTES)).decode("ascii")


def created_at(click_id: str) -> float | None:
    """The creation time (Unix seconds) of one of our ids, or None if it is not one."""
    if len(click_id) != LENGTH or not click_id.isascii():
        return None
    raw = click_id.encode("ascii")
    if not _ALPHABET.issuperset(raw):
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw)
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(decoded[:6], "big") / 1000.0
