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


def db_refusal(db: str) -> str | None:
    """Why ``--db`` cannot be used, in one line, or None (a URL is the store's to judge)."""
    if "://" in db:
        return None
    folder = Path(db).expanduser().resolve().parent
    if not folder.is_dir():
        return f"--db {db}: the directory {folder} does not exist; create it or pick another path"
    if Path(db).is_dir():
        return f"--db {db}: is a directory; give a file path such as {Path(db) / 'gateway.sqlite'}"
    return None


def run(args: argparse.Namespace) -> int:
    setup_logging(
        getattr(args, "log_level", "info"),
        getattr(args, "log_format", "text"),
        access_log=getattr(args, "access_log", False),
    )
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
    unusable = db_refusal(db)
    if unusable is not None:
        print(unusable, file=sys.stderr)
        return 2
    try:
        import uvloop  # noqa: PLC0415 - optional on platforms without it
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(config, path, args.host, args.port, db, access_log=args.access_log))
    except CannotListen:
        return 1
    return 0
