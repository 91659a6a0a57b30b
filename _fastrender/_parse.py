"""Template compilation shared by both implementations.

Parsing is not the hot path (a template compiles once), so it lives here in
plain Python and both twins build their plans from its output.  That makes
compile errors, positions and slot resolution identical by construction; the
twins differ only in how they *render*.
"""

from __future__ import annotations

import difflib
import re
from typing import Final, NamedTuple

from ._catalog import ARG_TOKENS, DIALECTS, MODIFIERS, RANDOM_TOKEN, names_for
from ._errors import TemplateError

__all__ = ("Modifier", "Parsed", "Slot", "parse")

# {name}, {name:arg}, each optionally followed by |modifier or |modifier:arg.
_TOKEN_RE: Final = re.compile(
    r"\{(?P<name>[A-Za-z][A-Za-z0-9_.]*)"
    r"(?::(?P<arg>[A-Za-z0-9_.\-]+))?"
    r"(?P<mods>(?:\|[a-z0-9]+(?::[A-Za-z0-9_.,=*\-]+)?)*)\}"
)
_MOD_RE: Final = re.compile(r"\|(?P<name>[a-z0-9]+)(?::(?P<arg>[A-Za-z0-9_.,=*\-]+))?")
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_AUTHORITY_END_RE: Final = re.compile(r"[/?#]|\Z")
# Schemes whose parsers skip any slashes and backslashes before the host and
# end it at a backslash too (WHATWG's "special" schemes).
_SPECIAL_SCHEMES: Final = frozenset({"ftp", "file", "http", "https", "ws", "wss"})
_SLASHES_RE: Final = re.compile(r"[/\\]*")
_SPECIAL_AUTHORITY_END_RE: Final = re.compile(r"[/\\?#]|\Z")


class Modifier(NamedTuple):
    """One value transform; ``data`` is the parsed argument (``map`` only)."""

    name: str
    data: tuple[dict[str, str], str | None] | None = None


class Slot(NamedTuple):
    """A token resolved at compile time: where its value comes from and how it is written."""

    key: str
    position: int
    modifiers: tuple[Modifier, ...]
    raw: bool

    @property
    def is_random(self) -> bool:
        return self.key == RANDOM_TOKEN


class Parsed(NamedTuple):
    """``n + 1`` literal pieces around ``n`` slots."""

    pieces: tuple[str, ...]
    slots: tuple[Slot, ...]


def parse(template: str, dialect: str = "clickflare", unknown: str = "error") -> Parsed:
    """Split ``template`` into literal pieces and resolved slots, or raise TemplateError."""
    if not isinstance(template, str):
        raise TypeError(f"template must be str, not {type(template).__name__}")
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {sorted(DIALECTS)}")
    if unknown not in ("error", "keep"):
        raise ValueError(f"unknown must be 'error' or 'keep', not {unknown!r}")
    pieces: list[str] = []
    slots: list[Slot] = []
    spans: list[tuple[int, int]] = []
    literal_start = 0
    for match in _TOKEN_RE.finditer(template):
        key = _resolve(match, dialect, unknown)
        if key is None:  # unknown token kept as literal text
            continue
        pieces.append(template[literal_start : match.start()])
        modifiers, raw = _modifiers(match)
        slots.append(Slot(key, match.start(), modifiers, raw))
        spans.append(match.span())
        literal_start = match.end()
    pieces.append(template[literal_start:])
    _check_literals(template)
    _check_fixed_destination(template, spans)
    return Parsed(tuple(pieces), tuple(slots))


def _resolve(match: re.Match[str], dialect: str, unknown: str) -> str | None:
    name, arg = match["name"], match["arg"]
    lowered = name.lower()
    if arg is not None:
        base = ARG_TOKENS.get(lowered)
        if base is not None:
            return f"{base}:{arg}"
    elif lowered in ARG_TOKENS:
        if unknown == "keep":
            return None
        raise TemplateError(
            f"token {{{name}}} at {match.start()} needs a parameter name, e.g. {{{name}:zoneid}}",
            match.start(),
        )
    else:
        key = DIALECTS[dialect].get(lowered)
        if key is not None:
            return key
    if unknown == "keep":
        return None
    spelt = name if arg is None else f"{name}:{arg}"
    message = f"unknown token {{{spelt}}} at {match.start()}"
    suggestion = _did_you_mean(lowered, arg, dialect)
    if suggestion:
        message += f"; did you mean {{{suggestion}}}?"
    raise TemplateError(message, match.start())


def _did_you_mean(lowered: str, arg: str | None, dialect: str) -> str | None:
    if arg is not None:
        close = difflib.get_close_matches(lowered, ("var", "tname"), n=1, cutoff=0.5)
        if close:
            return f"{'tName' if close[0] == 'tname' else 'var'}:{arg}"
        if lowered in DIALECTS[dialect]:  # a plain token given an argument
            return DIALECTS[dialect][lowered]
        return None
    candidates = [n for n in names_for(dialect) if ":" not in n]
    close = difflib.get_close_matches(lowered, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _modifiers(match: re.Match[str]) -> tuple[tuple[Modifier, ...], bool]:
    text = match["mods"]
    if not text:
        return (), False
    offset = match.start("mods")
    found = list(_MOD_RE.finditer(text))
    modifiers: list[Modifier] = []
    raw = False
    for index, mod in enumerate(found):
        name, arg = mod["name"], mod["arg"]
        position = offset + mod.start("name")
        if name not in MODIFIERS:
            message = f"unknown modifier |{name} at {position}"
            close = difflib.get_close_matches(name, MODIFIERS, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean |{close[0]}?"
            raise TemplateError(message, position)
        if name == "raw":
            if index != len(found) - 1:
                raise TemplateError(
                    f"modifier |raw at {position} must be the last modifier", position
                )
            if arg is not None:
                raise TemplateError(f"modifier |raw at {position} takes no argument", position)
            raw = True
        elif name == "map":
            if arg is None:
                raise TemplateError(
                    f"modifier |map at {position} needs a list, e.g. |map:approved=1,*=0", position
                )
            modifiers.append(Modifier(name, _map_table(arg, position)))
        else:
            if arg is not None:
                raise TemplateError(f"modifier |{name} at {position} takes no argument", position)
            modifiers.append(Modifier(name))
    return tuple(modifiers), raw


def _map_table(arg: str, position: int) -> tuple[dict[str, str], str | None]:
    table: dict[str, str] = {}
    default: str | None = None
    for item in arg.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise TemplateError(f"modifier |map at {position}: {item!r} is not KEY=VALUE", position)
        if key == "*":
            default = value
        else:
            table.setdefault(key, value)
    return table, default


def _check_literals(template: str) -> None:
    try:
        template.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TemplateError(
            f"template has a character that is not valid UTF-8 at {exc.start}", exc.start
        ) from None


def _check_fixed_destination(template: str, spans: list[tuple[int, int]]) -> None:
    """Refuse a token in the scheme or authority: the host is fixed at compile time.

    Tokens are masked with letters (valid in both a scheme and a host) so the
    URL's structure is read from the literal text alone.  The text is read as
    lenient URL parsers (WHATWG, urllib) read it: leading controls and spaces
    dropped, tabs and newlines ignored anywhere and, for the special schemes,
    any run of slashes or backslashes before the host.  So no spelling of a
    URL, however odd, can carry a token into the host.
    """
    if not spans:
        return
    masked = list(template)
    for start, end in spans:
        masked[start:end] = "a" * (end - start)
    # Each kept character with its index in the template, so positions survive.
    kept = [(index, char) for index, char in enumerate(masked) if char not in "\t\n\r"]
    lead = 0
    while lead < len(kept) and kept[lead][1] <= " ":
        lead += 1
    kept = kept[lead:]
    text = "".join(char for _, char in kept)
    scheme = _SCHEME_RE.match(text)
    protected = scheme.end() if scheme else 0
    if scheme is not None and scheme.group()[:-1].lower() in _SPECIAL_SCHEMES:
        slashes = _SLASHES_RE.match(text, protected)
        assert slashes is not None  # matches everywhere, possibly empty
        protected = _next(_SPECIAL_AUTHORITY_END_RE, text, slashes.end())
    elif text.startswith("//", protected):
        protected = _next(_AUTHORITY_END_RE, text, protected + 2)
    limit = kept[protected][0] if protected < len(kept) else len(template)
    for start, _ in spans:
        if start < limit:
            raise TemplateError(
                f"token at {start} is in the URL's scheme or host; "
                "the destination must be fixed in the template",
                start,
            )


def _next(pattern: re.Pattern[str], text: str, start: int) -> int:
    """Where ``pattern`` is next found from ``start`` (it ends with ``\\Z``: always found)."""
    found = pattern.search(text, start)
    assert found is not None
    return found.start()
