"""Which store a URL names: the one place that picks a backend.

A plain path or ``sqlite:///path`` is SQLite, the embedded default (as in
SQLAlchemy, the path is what follows the third slash: ``sqlite:///g.sqlite``
is relative, ``sqlite:////var/lib/g.sqlite`` absolute).  ``postgresql://``
and ``postgres://`` are PostgreSQL (libpq's URL form, which asyncpg reads;
its query parameters that are not connection options become server
settings).  Any other scheme is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway import constants
from gateway.store.base import Store
from gateway.store.sqlite import SQLiteStore

__all__ = ("open_store", "redacted", "store_url")

#: ``scheme://`` at the start (RFC 3986's scheme characters): a URL, not a path.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES = frozenset(("postgresql", "postgres"))


def store_url(flag: str | None, environ: Mapping[str, str], configured: str | None) -> str:
    """Which store ``serve`` opens: ``--db``, else the GATEWAY_DB environment
    variable, else ``[store] url``, else ``./gateway.sqlite`` (as most tools
    rank a flag over the environment over a file over the default)."""
    for url in (flag, environ.get(constants.DB_ENV), configured):
        if url:
            return url
    return constants.DEFAULT_DB


def open_store(url: str, *, lease: float = constants.LEASE_SECONDS) -> Store:
    """The store ``url`` names, not yet opened (``await store.open()``);
    ``lease`` matters where processes share the store (``Store.lease``).

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
        return _postgres(url, lease)
    raise ValueError(
        f"no store backend for the URL scheme {scheme!r}:"
        " use a path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def _sqlite(path: str) -> Store:
    store: Store = SQLiteStore(path)  # mypy checks here that SQLiteStore is a whole Store
    return store


def _postgres(url: str, lease: float) -> Store:
    # imported here: a SQLite gateway never loads asyncpg
    from gateway.store.postgres import PostgresStore  # noqa: PLC0415

    if not lease > 0:
        raise ValueError(f"a lease is a positive number of seconds, not {lease!r}")
    store: Store = PostgresStore(url, lease=lease)
    return store


#: ``user:password@`` in a URL: the password is never logged.
_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@")


def redacted(url: str) -> str:
    """``url`` fit for a log line: a password in it replaced by ``***``."""
    return _PASSWORD.sub(r"\1:***@", url)
