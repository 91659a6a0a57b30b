"""SQLite behind the ``Store`` seam: one writer thread, WAL, group commits.

One module a job: ``schema`` (tables, the upgrade of older files),
``statements`` (multi-row statements in chunks), ``writer`` (the connection,
its thread, transactions, checkpoints), ``commit`` (the group commit's
lookups and writes), ``attempts`` (the attempt log's writes), ``spans``
(filtered listing), ``rows`` (codecs), and ``store`` (``SQLiteStore``).
"""

from __future__ import annotations

from gateway.store.sqlite.schema import SCHEMA
from gateway.store.sqlite.store import INLINE_MAX, SQLiteStore

__all__ = ("INLINE_MAX", "SCHEMA", "SQLiteStore")
