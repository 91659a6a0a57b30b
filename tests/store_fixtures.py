"""The store backends every store test runs against, as one parametrised fixture.

A backend is a name (the test id) and a function from a test's directory to
the URL ``open_store`` opens.  A new backend adds one entry to ``BACKENDS``
(one that needs a server returns ``None`` when it has none: its tests are
skipped with ``skip_reason``).  ``tests/conftest.py`` registers the fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store.base import Store

__all__ = ("BACKENDS", "StoreBackend", "store", "store_backend")


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


BACKENDS = (StoreBackend("sqlite", lambda directory: f"sqlite:///{directory / 'store.sqlite'}"),)


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
