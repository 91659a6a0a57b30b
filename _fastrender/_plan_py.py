"""The pure-Python renderer: the reference twin of ``_plan_c``.

Selected with ``FASTRENDER_NO_EXTENSIONS=1`` or where the extension is not
built.  It must produce byte-identical output to the compiled plan; the test
suite checks that with hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from ._errors import TemplateError
from ._parse import Slot, parse
from ._values import apply_modifiers, random_text, value_text

__all__ = ("Plan", "TemplateError", "compile_template")

_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
# Bytes that stay encoded even under |raw: never valid anywhere in a URL.
_NEVER_RAW: Final = (
    frozenset(range(0x21)) | {0x7F} | frozenset(b'"<>\\^`{|}') | frozenset(range(0x80, 0x100))
)
_QUOTED: Final = tuple(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256))
_QUOTED_RAW: Final = tuple(f"%{b:02X}" if b in _NEVER_RAW else chr(b) for b in range(256))
_is_unreserved: Final = re.compile(r"[A-Za-z0-9\-._~]*").fullmatch


def _quote(text: str) -> str:
    if _is_unreserved(text):
        return text
    table = _QUOTED
    return "".join([table[b] for b in text.encode("utf-8")])


def _quote_raw(text: str) -> str:
    table = _QUOTED_RAW
    return "".join([table[b] for b in text.encode("utf-8")])


def _getter(values: Mapping[str, object]) -> Callable[[str], object]:
    try:
        return values.get
    except AttributeError:
        raise TypeError(
            f"values must be a mapping of token names, not {type(values).__name__}"
        ) from None


def _slot_text(slot: Slot, value: object) -> str:
    text = value_text(slot.key, value)
    if text is None:
        if not slot.is_random:
            return ""
        text = random_text()
    if slot.modifiers:
        text = apply_modifiers(text, slot.modifiers)
    return _quote_raw(text) if slot.raw else _quote(text)


class Plan:
    """A compiled template: literal pieces around resolved slots."""

    __slots__ = ("_pieces", "_slots", "_template", "_tokens")

    def __init__(self, template: str, pieces: tuple[str, ...], slots: tuple[Slot, ...]) -> None:
        self._template = template
        self._tokens: tuple[str, ...] = tuple(slot.key for slot in slots)
        self._pieces = pieces
        self._slots = slots

    @property
    def template(self) -> str:
        """The source text."""
        return self._template

    @property
    def tokens(self) -> tuple[str, ...]:
        """Canonical token names, one per slot, in order of appearance."""
        return self._tokens

    def __repr__(self) -> str:
        return f"<Plan {self._template!r}>"

    def __reduce__(self) -> tuple[type[Plan], tuple[str, tuple[str, ...], tuple[Slot, ...]]]:
        return (type(self), (self._template, self._pieces, self._slots))

    def render(self, values: Mapping[str, object], /) -> str:
        """The URL for one set of values."""
        pieces = self._pieces
        if not self._slots:
            return pieces[0]
        get = _getter(values)
        parts = [pieces[0]]
        for slot, piece in zip(self._slots, pieces[1:], strict=True):
            parts.append(_slot_text(slot, get(slot.key)))
            parts.append(piece)
        return "".join(parts)

    def render_many(self, many: Iterable[Mapping[str, object]], /) -> list[str]:
        """The URLs for a batch of value sets, in order."""
        render = self.render
        return [render(values) for values in many]


def compile_template(template: str, *, dialect: str = "clickflare", unknown: str = "error") -> Plan:
    """Compile ``template`` into a plan, or raise :class:`TemplateError`."""
    parsed = parse(template, dialect, unknown)
    # A str subclass is stored as plain str, so both twins hand back the same type.
    return Plan(str.__str__(template), parsed.pieces, parsed.slots)
