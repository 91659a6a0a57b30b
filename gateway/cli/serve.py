"""``python -m gateway serve``: read the config, refuse unsafe addresses, run ``runtime``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from gateway import constants
from gateway.config import ConfigError, default_config_path, load
from gateway.intake.guard import listen_refusal
from gateway.logs import setup_logging
from gateway.runtime import CannotListen, serve
from gateway.store import open_store, store_url
from gateway.workers import SHARE_ENV

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
    db = store_url(args.db, os.environ, config.store.url)
    unusable = db_refusal(db)
    if unusable is not None:
        print(unusable, file=sys.stderr)
        return 2
    try:
        shared = open_store(db, lease=config.store.lease).shared  # checks the URL; opens nothing
    except ValueError as exc:
        print(f"store: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"--workers: at least 1, not {args.workers}", file=sys.stderr)
        return 2
    if args.workers > 1:
        if not shared:
            print(
                f"--workers {args.workers}: a SQLite file has one writing process; several"
                " workers need a store they can share: --db postgresql://USER@HOST:PORT/DB"
                " (or run one worker)",
                file=sys.stderr,
            )
            return 2
        return _supervise(args, path, db)
    share = int(os.environ.get(SHARE_ENV, "1")) if args.worker_process else 1
    try:
        import uvloop  # noqa: PLC0415 - optional on platforms without it
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(
            serve(
                config,
                path,
                args.host,
                args.port,
                db,
                reuse_port=args.worker_process,
                share=share,
                access_log=args.access_log,
            )
        )
    except CannotListen:
        return 1
    return 0


def _supervise(args: argparse.Namespace, path: Path, db: str) -> int:
    """``--workers N``: this process supervises N ``serve --worker-process`` children.

    The store URL goes to them in GATEWAY_DB, not on their command line,
    where any user's ``ps`` would show a password in it."""
    from gateway.workers import supervise  # noqa: PLC0415 - only with --workers

    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(path)]
    argv += ["--host", args.host, "--port", str(args.port), "--worker-process"]
    argv += ["--log-level", args.log_level, "--log-format", args.log_format]
    argv += ["--access-log"] if args.access_log else []
    return supervise(args.workers, argv, {**os.environ, constants.DB_ENV: db})
