"""Logging setup as a ``dictConfig`` dict (arq's shape): one place, one format.

The hot path never logs per request; these loggers carry startup, reloads,
drains and failures.
"""

from __future__ import annotations

import logging.config
from typing import Any

__all__ = ("default_log_config", "setup_logging")


def default_log_config(verbose: bool = False) -> dict[str, Any]:
    level = "DEBUG" if verbose else "INFO"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
                "datefmt": "%Y-%m-%dT%H:%M:%S",
            },
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "gateway": {"handlers": ["stderr"], "level": level, "propagate": False},
            "aiohttp.access": {"level": "WARNING"},
        },
    }


def setup_logging(verbose: bool = False) -> None:
    logging.config.dictConfig(default_log_config(verbose))
