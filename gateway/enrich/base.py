"""The enricher seam: what a visit's request says, and what can be derived from it.

An enricher turns a :class:`Visit` into visit tokens (``{os}``, ``{country}``,
…).  Each one caches by the input it reads (the user agent string, the
address), because the same visitors come back and a click's budget is a few
microseconds.  :class:`Enrichers` runs them in order; later ones never
overwrite what an earlier one found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final, Protocol

import msgspec

__all__ = (
    "EMPTY",
    "DataFile",
    "Enricher",
    "Enrichers",
    "Visit",
)

#: What an enricher answers when it knows nothing (shared, never mutated).
EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


class Visit(msgspec.Struct, kw_only=True, gc=False):
    """What the visitor's own request says about the visit (empty: not known)."""

    ip: str = ""
    user_agent: str = ""
    referer: str = ""
    language: str = ""
    #: the host the click came in on (Binom's ``{domain}``, the campaign's domain)
    domain: str = ""


class DataFile(msgspec.Struct, frozen=True, kw_only=True):
    """A data file an enricher reads: shown by ``visit``, ``check`` and at start-up."""

    name: str
    path: str
    version: str
    built: str
    licence: str
    attribution: str


class Enricher(Protocol):
    """Visit tokens derived from one part of a visit, keyed by canonical token name."""

    name: str

    def tokens(self, visit: Visit) -> Mapping[str, str]:
        """The tokens this visit yields; the mapping is shared: never mutate it."""
        ...

    def files(self) -> Sequence[DataFile]:
        """The data the answers come from (empty for code-only enrichers)."""
        ...


class Enrichers:
    """Several enrichers as one; the first to give a token keeps it."""

    __slots__ = ("_parts", "parts")

    def __init__(self, parts: Sequence[Enricher]) -> None:
        self.parts: tuple[Enricher, ...] = tuple(parts)
        self._parts = self.parts[::-1]  # applied last-first so the first one wins

    name = "enrichers"

    def tokens(self, visit: Visit) -> Mapping[str, str]:
        parts = self._parts
        if not parts:
            return EMPTY
        if len(parts) == 1:
            return parts[0].tokens(visit)
        if len(parts) == 2:  # the usual pair (geo, user agent): one merge
            return {**parts[0].tokens(visit), **parts[1].tokens(visit)}
        out: dict[str, str] = {}
        for part in parts:
            out.update(part.tokens(visit))
        return out

    def files(self) -> Sequence[DataFile]:
        return [f for part in self.parts for f in part.files()]
