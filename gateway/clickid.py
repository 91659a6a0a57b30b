"""Click ids: URL-safe, 96 random bits, and the creation time inside.

Layout: 6 bytes of milliseconds since the Unix epoch (big-endian, so ids sort
by time) + 12 random bytes, base64url without padding: 24 characters from
``[A-Za-z0-9_-]``.  Because the time travels in the id, the attribution
window is checked before any store lookup, and a forged or mangled id is
rejected by shape alone.
"""

from __future__ import annotations

import base64
import os
import re

__all__ = ("LENGTH", "created_at", "new_click_id", "new_click_ids")

LENGTH = 24
_RANDOM_BYTES = 12  # 96 bits: the contract asks for at least 80
_SHAPE = re.compile(r"[A-Za-z0-9_-]{24}")
_DIGITS = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}


def new_click_id(now: float) -> str:
    millis = int(now * 1000).to_bytes(6, "big")
    return base64.urlsafe_b64encode(millis + os.urandom(_RANDOM_BYTES)).decode("ascii")


def new_click_ids(now: float, count: int) -> list[str]:
    """``count`` ids for the same moment, from one ``os.urandom`` call (a group commit).

    Two base64 calls for the lot, not one per id: 6 and 12 bytes are whole
    3-byte groups, so the time's 8 digits and each id's 16 random digits are
    slices of the encoded blocks, the same as encoding each id alone.
    """
    prefix = base64.urlsafe_b64encode(int(now * 1000).to_bytes(6, "big")).decode("ascii")
    noise = base64.urlsafe_b64encode(os.urandom(_RANDOM_BYTES * count)).decode("ascii")
    return [prefix + noise[i : i + 16] for i in range(0, 16 * count, 16)]


def created_at(click_id: str) -> float | None:
    """The creation time (Unix seconds) of one of our ids, or None if it is not one."""
    if len(click_id) != LENGTH or _SHAPE.fullmatch(click_id) is None:
        return None
    millis = 0
    for char in click_id[:8]:  # 8 base64 digits = the 48-bit time, exactly
        millis = (millis << 6) | _DIGITS[char]
    return millis / 1000.0
