"""The store backends every store test runs against, as one parametrised fixture.

A backend is a name (the test id) and a function from a test's directory to
the URL ``open_store`` opens.  A new backend adds one entry to ``BACKENDS``
(one that needs a server returns ``None`` when it has none: its tests are
skipped with ``skip_reason``).  ``tests/conftest.py`` registers the fixtures.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store.base import Store

__all__ = (
    "BACKENDS",
    "PG_DSN_ENV",
    "StoreBackend",
    "fresh_pg_url",
    "pg_skip_reason",
    "store",
    "store_backend",
)

#: The PostgreSQL server the store tests use: a libpq URL naming a database
#: the tests may create schemas in, e.g. postgresql://postgres@127.0.0.1:55433/postgres.
#: ``.ci/run`` starts a throw-away server and sets it.
PG_DSN_ENV = "GATEWAY_TEST_PG_DSN"
_PG_SKIP = (
    f"no PostgreSQL server: set {PG_DSN_ENV}=postgresql://USER@HOST:PORT/DB (a throw-away"
    " cluster: initdb + pg_ctl, as .ci/run does) to run the PostgreSQL store tests"
)
_schemas = itertools.count()


def pg_skip_reason() -> str:
    """Why a PostgreSQL test is skipped here, and how to run it."""
    return _PG_SKIP


#: One prefix per test run, so schemas left by an earlier run never collide.
_RUN = secrets.token_hex(3)


@dataclass(frozen=True)
class StoreBackend:
    name: str
    #: The URL of a fresh, empty store for a test writing under this directory,
    #: or None where this machine cannot run the backend.
    url: Callable[[Path], str | None]
    skip_reason: str = ""

    def __str__(self) -> str:
        return self.name

    def make(self, directory: Path) -> Store:
        """A fresh store, not yet opened (skips the test where there is none)."""
        url = self.url(directory)
        if url is None:
            pytest.skip(self.skip_reason)
        return open_store(url)


def fresh_pg_url(directory: Path | None = None) -> str | None:
    """A URL of an empty schema of its own on the test server (None: no server).

    Each store test gets a new schema (``search_path``, a server setting in
    the URL's query) instead of a new database: a schema costs milliseconds.
    """
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        return None
    schema = f"gw_{_RUN}_{next(_schemas)}"

    async def create() -> None:
        import asyncpg  # noqa: PLC0415 - only where a server is there

        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()

    # a thread of its own: the caller may be inside a running event loop
    failure: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(create, failure))
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


def _run(make: Callable[[], object], failure: list[BaseException]) -> None:
    try:
        asyncio.run(make())  # type: ignore[arg-type]
    except BaseException as exc:  # handed to the caller's thread
        failure.append(exc)


BACKENDS = (
    StoreBackend("sqlite", lambda directory: f"sqlite:///{directory / 'store.sqlite'}"),
    StoreBackend("postgresql", fresh_pg_url, skip_reason=_PG_SKIP),
)


@pytest.fixture(params=BACKENDS, ids=str)
def store_backend(request: pytest.FixtureRequest) -> StoreBackend:
    """Each backend in turn; for tests that make their own stores (hypothesis)."""
    backend: StoreBackend = request.param
    return backend


@pytest.fixture
async def store(store_backend: StoreBackend, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each backend in turn."""
    s = store_backend.make(tmp_path)
    await s.open()
    yield s
    await s.close()
