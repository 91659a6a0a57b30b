"""``open_store``: the one place a URL picks a store backend."""

from __future__ import annotations

from pathlib import Path

import pytest

import gateway.store
from gateway.store import open_store, store_url
from gateway.store.backends import redacted
from gateway.store.sqlite import SQLiteStore
from tests.store_helpers import click, lookup, write_rows


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("gateway.sqlite", "gateway.sqlite"),
        ("/var/lib/gateway/g.sqlite", "/var/lib/gateway/g.sqlite"),
        ("./data/g.sqlite", "./data/g.sqlite"),
        ("sqlite:///g.sqlite", "g.sqlite"),  # relative, as in SQLAlchemy
        ("sqlite:////var/lib/g.sqlite", "/var/lib/g.sqlite"),  # absolute
        ("SQLite:///g.sqlite", "g.sqlite"),  # schemes are case-insensitive
        ("sqlite:///:memory:", ":memory:"),  # what SQLiteStore(":memory:") does
    ],
)
def test_a_path_or_a_sqlite_url_is_sqlite(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore) and store.path == path


async def test_the_store_it_names_opens_on_that_file(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        await write_rows(store, [click(1)])
    finally:
        await store.close()
    again = open_store(str(path))  # the same file, named by its path
    await again.open()
    try:
        assert list((await lookup(again, ["c1"])).clicks) == ["c1"]
    finally:
        await again.close()


@pytest.mark.parametrize("url", ["postgresql://gw@db:5432/gateway", "postgres://db/gateway"])
def test_a_postgresql_url_is_the_shared_store(url: str) -> None:
    store = open_store(url, lease=12.5)  # not opened: no server needed
    assert type(store).__name__ == "PostgresStore"
    assert store.shared and store.lease == 12.5
    assert not open_store("g.sqlite").shared


def test_a_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        open_store("postgresql://db/gateway", lease=0)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("mysql://db/gateway", "mysql"), ("redis://localhost", "redis"), ("file:///g.db", "file")],
)
def test_another_scheme_is_refused_by_name(url: str, scheme: str) -> None:
    with pytest.raises(ValueError, match=f"URL scheme '{scheme}'"):
        open_store(url)


@pytest.mark.parametrize("url", ["sqlite://host/g.sqlite", "sqlite:///", "sqlite://"])
def test_a_sqlite_url_needs_a_path_and_no_host(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///PATH"):
        open_store(url)


def test_the_package_exports_open_store() -> None:
    assert (
        gateway.store.__all__
        == tuple(sorted(gateway.store.__all__))
        == (
            "open_store",
            "store_url",
        )
    )
    assert gateway.store.sqlite.__all__ == ("INLINE_MAX", "SCHEMA", "SQLiteStore")
    for name in gateway.store.sqlite.__all__:
        assert hasattr(gateway.store.sqlite, name)


@pytest.mark.parametrize(
    ("flag", "env", "configured", "expected"),
    [
        ("a.sqlite", "postgresql://e/db", "postgresql://c/db", "a.sqlite"),  # the flag first
        (None, "postgresql://e/db", "postgresql://c/db", "postgresql://e/db"),  # then the env
        (None, "", "postgresql://c/db", "postgresql://c/db"),  # then [store] url
        (None, None, None, "gateway.sqlite"),  # then the default
    ],
)
def test_which_store_serve_opens(
    flag: str | None, env: str | None, configured: str | None, expected: str
) -> None:
    environ = {} if env is None else {"GATEWAY_DB": env}
    assert store_url(flag, environ, configured) == expected


def test_a_password_never_reaches_the_log() -> None:
    assert redacted("postgresql://gw:s3cret@db:5432/g") == "postgresql://gw:***@db:5432/g"
    assert redacted("postgresql://gw@db/g") == "postgresql://gw@db/g"
    assert redacted("./gateway.sqlite") == "./gateway.sqlite"
