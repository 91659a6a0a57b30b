"""Which store a URL names: the one place that picks a backend.

A plain path or ``sqlite:///path`` is SQLite, the embedded default (as in
SQLAlchemy, the path is what follows the third slash: ``sqlite:///g.sqlite``
is relative, ``sqlite:////var/lib/g.sqlite`` absolute).  ``postgresql://``
and ``postgres://`` are refused until that backend exists; any other scheme
is refused by name.
"""

from __future__ import annotations

import re

from gateway.store.base import Store
from gateway.store.sqlite import SQLiteStore

__all__ = ("open_store",)

#: ``scheme://`` at the start (RFC 3986's scheme characters): a URL, not a path.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES = frozenset(("postgresql", "postgres"))


def open_store(url: str) -> Store:
    """The store ``url`` names, not yet opened (``await store.open()``).

    Raises ``ValueError`` for a URL no backend here can open."""
    match = _SCHEME.match(url)
    if match is None:
        return _sqlite(url)
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        rest = url[match.end() :]  # "/PATH": an empty host, then the path
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"a SQLite store URL is sqlite:///PATH (no host), not {url!r}")
        return _sqlite(rest[1:])
    if scheme in _POSTGRES:
        raise ValueError(
            "the PostgreSQL store is not built yet: use a SQLite path or sqlite:///PATH"
        )
    raise ValueError(
        f"no store backend for the URL scheme {scheme!r}: use a path or sqlite:///PATH"
    )


def _sqlite(path: str) -> Store:
    store: Store = SQLiteStore(path)  # mypy checks here that SQLiteStore is a whole Store
    return store
