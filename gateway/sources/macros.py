"""Network macros left in a pasted postback URL: the commonest silent loss.

A network's docs show its own placeholders (``${SUBID}``, ``[clickid]``,
``{{ctoken}}``, ``%guid%``, ``{conversions_tracking}``...).  Left in a
postback they are sent literally, the network finds no such click, and the
conversion is lost without an error anywhere; ``check`` warns instead.

Each placeholder is reported once, as written: the outermost match wins, so
``${SUBID}`` is not also reported as ``{SUBID}``.  Our own tokens
(``{externalid}``, ``{var:zoneid}``, ``{payout|md5}``) and percent-encoded
bytes (``%20``, ``%C3%A9``) are never reported.
"""

from __future__ import annotations

import functools
import re

from _fastrender import TemplateError, compile_template
from gateway.sources import catalog

__all__ = ("find_leftover_macros", "placeholder_value")

# Delimited styles, outermost first: an earlier pattern's match hides any
# later match that overlaps it.
_DELIMITED = (
    re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"),  # ${SUBID}
    re.compile(r"\{\{[A-Za-z_][A-Za-z0-9_.]*\}\}"),  # {{ctoken}}
    re.compile(r"\[\[[A-Za-z_][A-Za-z0-9_]*\]\]"),  # [[subid]]
    re.compile(r"\{:[A-Za-z_][A-Za-z0-9_]*\}"),  # {:click_id}
    re.compile(r"\{![A-Za-z_][A-Za-z0-9_]*!\}"),  # {!tscode!}
    re.compile(r"\[=[A-Za-z_][A-Za-z0-9_]*=\]"),  # [=SID=]
    re.compile(r"##[A-Za-z_][A-Za-z0-9_]*(?:\([A-Za-z0-9_]*\))?##"),  # ##SUB_ID_SHORT(action)##
    re.compile(r"@@[A-Za-z_][A-Za-z0-9_\-]*@@"),  # @@CLICK-ID@@
    re.compile(r"_~[A-Za-z_][A-Za-z0-9_]*~_"),  # _~click_id~_
    re.compile(r"\[[A-Za-z_][A-Za-z0-9_]*\]"),  # [CLICK_ID], [clickid]
    re.compile(r"#[A-Za-z][A-Za-z0-9_]*#"),  # #s2#
)
# %guid%: at least three characters and one that is not hex, so percent-encoded
# text (%20, %C3%A9, %2Fab%) never reads as a macro.
_PERCENT = re.compile(r"%([A-Za-z_][A-Za-z0-9_]{2,})%")
_HEX = frozenset("0123456789abcdefABCDEF")
# {name} or {name:arg|mod}: a macro unless it compiles as one of our tokens.
_BRACE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.:|,=*\-]*\}")
# Bare words networks document as placeholders (no delimiters at all).
_BARE_WORDS = (
    "MFOXCLICKID",
    "startapp_click_id_placeholder",
    "impressionId",
    "conversionValue",
    "CLICK_ID",
    "REPLACE",
)


def _is_our_token(text: str) -> bool:
    """True when ``text`` is exactly one well-formed gateway token."""
    if not (text.startswith("{") and text.endswith("}")):
        return False
    try:
        plan = compile_template(text)
    except TemplateError:
        return False
    return len(plan.tokens) == 1


def _written_as_ours(text: str) -> bool:
    """``{carrier}`` is ours; ``{CLICKID}`` compiles too (names ignore case) but
    is EvaDav's click macro, and would send our click id instead of theirs."""
    return text == text.lower() and _is_our_token(text)


@functools.cache
def _catalog_literals() -> tuple[str, ...]:
    """Every click macro in the catalog, except the few spelt exactly like our tokens."""
    macros = {
        macro
        for name in catalog.names()
        for macro in catalog.get(name).click_macros.values()
        if not _written_as_ours(macro)
    }
    return tuple(sorted(macros, key=len, reverse=True))


@functools.cache
def _bare_words() -> re.Pattern[str]:
    words = set(_BARE_WORDS)
    words.update(m for m in _catalog_literals() if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", m))
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])")


def _candidates(url: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of every possible macro, outermost styles first."""
    found: list[tuple[int, int, str]] = []
    for pattern in _DELIMITED:
        found += [(m.start(), m.end(), m.group()) for m in pattern.finditer(url)]
    found += [
        (m.start(), m.end(), m.group())
        for m in _PERCENT.finditer(url)
        if not set(m.group(1)) <= _HEX
    ]
    found += [
        (m.start(), m.end(), m.group())
        for m in _BRACE.finditer(url)
        if not _is_our_token(m.group())
    ]
    for literal in _catalog_literals():
        start = url.find(literal)
        while start != -1:
            found.append((start, start + len(literal), literal))
            start = url.find(literal, start + 1)
    found += [(m.start(), m.end(), m.group()) for m in _bare_words().finditer(url)]
    return found


def find_leftover_macros(url: str) -> list[str]:
    """Every network placeholder in ``url``, in order of appearance, once per occurrence."""
    taken: list[tuple[int, int]] = []
    kept: list[tuple[int, str]] = []
    # Longest first, so an enclosing form hides what it encloses.
    for start, end, text in sorted(_candidates(url), key=lambda c: (c[0] - c[1], c[0])):
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue
        taken.append((start, end))
        kept.append((start, text))
    return [text for _, text in sorted(kept)]


#: A whole value that is one placeholder: any delimited style, ``{name}`` (ours
#: too: in a value it was never rendered), ``%name%``, or a catalog literal.
_WHOLE = re.compile(
    "|".join(
        [p.pattern for p in _DELIMITED]
        + [r"\{[A-Za-z_][A-Za-z0-9_.:|,=*\-]*\}", r"%[A-Za-z_][A-Za-z0-9_]{2,}%"]
    )
)
#: Characters every delimited placeholder has; a value without any is checked
#: against the bare words only (a set lookup).
_MARKS = re.compile(r"[{}\[\]$%#@~]")


@functools.cache
def _exact_words() -> frozenset[str]:
    return frozenset(_BARE_WORDS) | frozenset(_catalog_literals())


def placeholder_value(value: str) -> str | None:
    """``value`` when it is a network's placeholder left unreplaced (``${SUBID}``,
    ``{conversions_tracking}``, ``[CLICK_ID]``, ``MFOXCLICKID``...), else None.

    Click and conversion values come here: a real click id never has this shape,
    and sending one loses the conversion at the network.  Percent-encoded once
    more (``%7BSUBID%7D``), it is still found."""
    text = value.strip()
    if text in _exact_words():
        return text
    if _MARKS.search(text) is None:
        return None
    if _WHOLE.fullmatch(text) or (text.upper().startswith("%7B") and _unquoted_whole(text)):
        return text
    return None


def _unquoted_whole(text: str) -> bool:
    from urllib.parse import unquote  # noqa: PLC0415 - rare path

    return _WHOLE.fullmatch(unquote(text)) is not None
