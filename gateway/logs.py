"""Logging, all of it in one place: levels, formats, the access log, named loggers.

``serve`` logs start-up, reloads, drains and failures, and one line per
dead letter, per rejected postback and (in shadow mode) per delivery kept
unsent.  Times are ISO 8601 with their zone; ``--log-format json`` writes one
JSON object a line for log shippers.  The access log (one line a request) is
off unless asked for: it costs the hot path a formatted line per request.
"""

from __future__ import annotations

import logging
import logging.config
from datetime import datetime
from typing import Any, Final, Literal

import msgspec

__all__ = (
    "ACCESS_LOG_FORMAT",
    "DELIVERY_LOG",
    "LEVELS",
    "IsoFormatter",
    "JsonFormatter",
    "log_config",
    "setup_logging",
)

LEVELS: Final = ("debug", "info", "warning", "error")
LogFormat = Literal["text", "json"]

#: Deliveries that end badly, or unsent in shadow mode: one line each.
DELIVERY_LOG: Final = logging.getLogger("gateway.delivery")

#: aiohttp's access-log format: peer, request line, status, bytes, seconds.
ACCESS_LOG_FORMAT: Final = '%a "%r" %s %b %Tf'


def _iso(record: logging.LogRecord) -> str:
    """The record's time, ISO 8601 with milliseconds and the local zone's offset."""
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class IsoFormatter(logging.Formatter):
    """``2026-12-07T09:30:00.123+00:00 INFO gateway.runtime: message``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _iso(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message`` (+ ``error``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def log_config(
    level: str = "info", fmt: LogFormat = "text", *, access_log: bool = False
) -> dict[str, Any]:
    """The ``dictConfig`` dict: gateway loggers (and aiohttp's access log, if on) to stderr."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"()": IsoFormatter, "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "gateway": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "aiohttp.access": {
                "handlers": ["stderr"] if access_log else [],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
            "aiohttp.server": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        },
    }


def setup_logging(
    level: str = "info", fmt: LogFormat = "text", *, access_log: bool = False
) -> None:
    logging.config.dictConfig(log_config(level, fmt, access_log=access_log))
