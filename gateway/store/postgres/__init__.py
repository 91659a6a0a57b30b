"""PostgreSQL behind the ``Store`` seam (asyncpg): one database, many gateway processes.

One module a job: ``schema`` (versioned migrations under an advisory lock),
``commit`` (the group commit, dedup keys locked), ``claims`` (leases: claim,
renew, release, and the attempt log's moves), ``log`` (the delivery API's
reads, requeue, retention), ``rows`` (codecs), and ``store``
(``PostgresStore``).
"""

from __future__ import annotations

from gateway.store.postgres.store import PostgresStore

__all__ = ("PostgresStore",)
