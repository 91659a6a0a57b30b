"""Value formatting and modifiers: the slow paths both twins share.

The compiled core handles ``str`` and ``int`` itself and calls into here for
the rest (floats in exponent form, ``Decimal``, modifiers, the random token),
so every rule about *what* text a value becomes has exactly one definition.
"""

from __future__ import annotations

import hashlib
import random
from decimal import Decimal
from typing import Final

from ._parse import Modifier

__all__ = ("apply_modifiers", "random_text", "value_text")

_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_rng: Final = random.Random()  # a cache-buster, not a secret: speed over unpredictability


def value_text(key: str, value: object) -> str | None:
    """The text of one value, or ``None`` when it is missing."""
    if value is None:
        return None
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        raise TypeError(f"{{{key}}}: bool is not a renderable value")
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float_text(key, value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{{{key}}}: {value} is not a finite number")
        return format(value, "f")
    raise TypeError(
        f"{{{key}}}: expected str, int, float, Decimal or None, not {type(value).__name__}"
    )


def float_text(key: str, value: float) -> str:
    """Shortest round-trip decimal, in plain notation (never ``1e-07``)."""
    text = float.__repr__(value)
    if "e" in text:
        return format(Decimal(text), "f")
    if text[-1] in "fn":  # inf, -inf, nan
        raise ValueError(f"{{{key}}}: {text} is not a finite number")
    return text


def apply_modifiers(text: str, modifiers: tuple[Modifier, ...]) -> str:
    """Apply modifiers left to right to a present value's text."""
    for modifier in modifiers:
        name = modifier.name
        if name == "md5":
            text = hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
        elif name == "sha1":
            text = hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()
        elif name == "sha256":
            text = hashlib.sha256(text.encode("utf-8")).hexdigest()
        elif name == "upper":
            text = text.translate(_UPPER)
        elif name == "lower":
            text = text.translate(_LOWER)
        elif name == "map":
            assert modifier.data is not None
            table, default = modifier.data
            found = table.get(text)
            if found is not None:
                text = found
            elif default is not None:
                text = default
        else:  # pragma: no cover - the parser admits only known names
            raise AssertionError(name)
    return text


def random_text() -> str:
    """A fresh non-negative integer for the ``{random}`` cache-buster."""
    return int.__repr__(_rng.getrandbits(32))
