"""Every default in one place, so docs, config and code agree."""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080
DEFAULT_DB: Final = "gateway.sqlite"

#: Retry schedule after the first attempt (seconds), each with +-20 % jitter.
RETRY_SCHEDULE: Final = (10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0, 86400.0)
RETRY_JITTER: Final = 0.2
MAX_REDIRECTS: Final = 3
