"""Every default in one place, so docs, config and code agree."""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080
DEFAULT_DB: Final = "gateway.sqlite"
#: The store's URL when neither ``--db`` nor ``[store] url`` names one.
DB_ENV: Final = "GATEWAY_DB"
#: Seconds a delivery stays leased to the process that committed or claimed it
#: without a renewal: after a crash, how long its deliveries wait for another.
LEASE_SECONDS: Final = 30.0

MAX_REDIRECTS: Final = 3
#: The longest postback URL (and POST body) a delivery may carry: one rendered
#: longer is refused and never stored (most servers refuse 8 KiB request lines).
MAX_RENDERED_BYTES: Final = 8192
