"""Decoding a TOML table into its struct without stopping at the first mistake.

msgspec stops at the first bad value of a struct and says where in its own
words (``Expected `float`, got `str` - at `$.delivery.timeout```).  Here each
table is decoded key by key: an unknown key is a problem with its path and a
did-you-mean, a bad value is a problem with its path in plain words, and the
key is dropped so the next one is still checked.  Nested tables are decoded
on their own, so a typo in ``[batch]`` hides nothing in ``[delivery]``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.config.lint import Problem

__all__ = ("decode_struct", "join", "plain_message")

_TYPES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "null": "nothing",
}
_EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_CONSTRAINT = re.compile(r"Expected `([^`]+)` (>=|<=|>|<) ([-\d.e]+)")
_ENUM = re.compile(r"Invalid enum(?:eration)? value (.+)")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_AT = " - at `$"


def _kind(name: str) -> str:
    words = [_TYPES.get(part.strip(), part.strip()) for part in name.split("|")]
    return " or ".join(dict.fromkeys(words))


def plain_message(message: str, choices: tuple[Any, ...] = ()) -> str:
    """msgspec's wording for people: no backticks, no ``$``, types in words."""
    if found := _MISSING.fullmatch(message):
        return f"missing: {found.group(1)!r} is required"
    if found := _CONSTRAINT.fullmatch(message):
        return f"must be {found.group(2)} {found.group(3)}"
    if found := _EXPECTED.fullmatch(message):
        expected, got = found.groups()
        if choices:
            return f"must be one of {', '.join(repr(c) for c in choices)}"
        return f"expected {_kind(expected)}, got {_kind(got)}"
    if found := _ENUM.fullmatch(message):
        value = found.group(1).strip("`")
        if choices:
            return f"{value} is not one of {', '.join(repr(c) for c in choices)}"
        return f"invalid value {value}"
    return message.replace("`", "")


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _where(location: str) -> tuple[str | None, str]:
    """``$.a[0].b`` -> (top key ``a``, the rest ``[0].b``)."""
    location = location.rstrip("`").lstrip(".")
    if not location:
        return None, ""
    found = re.match(r"([^.\[]+)(.*)", location)
    return (found.group(1), found.group(2)) if found else (None, location)


def _choices(kind: Any, key: str) -> tuple[Any, ...]:
    """A field's allowed values when its type is a Literal (for the message)."""
    try:
        info = msgspec.inspect.type_info(kind)
    except (TypeError, ValueError):
        return ()
    for field in getattr(info, "fields", ()):
        if field.name != key:
            continue
        types = getattr(field.type, "types", (field.type,))
        return tuple(v for t in types for v in getattr(t, "values", ()))
    return ()


def decode_struct(
    raw: Any,
    kind: Any,
    path: str,
    problems: list[Problem],
    nested: Mapping[str, Any] | None = None,
) -> Any:
    """``raw`` as a ``kind`` struct, every problem recorded, bad keys left out.

    ``nested`` names sub-tables (key -> struct type) decoded on their own.
    None only when the table is not a table or misses a required key.
    """
    if not isinstance(raw, dict):
        problems.append(Problem(path, f"must be a table, got {_kind(_toml_type(raw))}"))
        return None
    fields = kind.__struct_fields__
    data: dict[str, Any] = {}
    for key, value in raw.items():
        if key in fields:
            data[key] = value
            continue
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(Problem(join(path, key), f"unknown key{hint}"))
    subs: dict[str, Any] = {}
    for key, sub_kind in (nested or {}).items():
        if key in data:
            sub = decode_struct(data.pop(key), sub_kind, join(path, key), problems)
            if sub is not None:
                subs[key] = sub
    dropped: set[str] = set()
    for _ in range(len(data) + 1):
        try:
            value = msgspec.convert(data, kind)
        except msgspec.ValidationError as exc:
            message, _, location = str(exc).partition(_AT)
            key, rest = _where(location)
            if key is None or key not in data:  # a required key is missing
                missing = _MISSING.fullmatch(message)
                if missing is None or missing.group(1) not in dropped:  # else: said already
                    problems.append(Problem(path, plain_message(message)))
                return None
            dropped.add(key)
            choices = _choices(kind, key) if not rest else ()
            problems.append(Problem(join(path, key) + rest, plain_message(message, choices)))
            del data[key]
            continue
        return msgspec.structs.replace(value, **subs) if subs else value
    return None


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "array"
    return {str: "str", int: "int", float: "float"}.get(type(value), type(value).__name__)
