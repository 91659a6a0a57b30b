"""``python -m gateway serve``: read the config, refuse unsafe addresses, run ``runtime``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from gateway import constants
from gateway.config import ConfigError, default_config_path, load
from gateway.intake.guard import listen_refusal
from gateway.logs import setup_logging
from gateway.runtime import CannotListen, serve

__all__ = ("run",)

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    setup_logging()
    path = Path(args.config) if args.config else default_config_path()
    try:
        config = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    refusal = listen_refusal(args.host, config)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    db = args.db or constants.DEFAULT_DB
    try:
        import uvloop  # noqa: PLC0415 - optional on platforms without it
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(config, path, args.host, args.port, db))
    except CannotListen:
        return 1
    return 0
