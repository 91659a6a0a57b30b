"""``serve --workers N``: N gateway processes on one port, supervised.

Each worker is a fresh ``python -m gateway serve`` with its own event loop,
listening with SO_REUSEPORT so the kernel spreads connections among them;
they share the store (which must be ``Store.shared``: PostgreSQL).  This
process only supervises: a worker that dies is logged and started again
(its deliveries' leases run out and any worker's refill takes them over);
SIGTERM/SIGINT drain every worker and wait for them; SIGHUP reloads every
worker's config.  A worker that exits with 1 or 2 refused to start (the
address is taken, the config is bad): starting it again would fail the same
way, so the supervisor stops the others and exits with that status.

``/metrics`` answers for all of them: the supervisor hands the workers one
prometheus-client multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``) and
each scrape reads every worker's files (``gateway.metrics``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ("DRAIN_TIMEOUT", "SHARE_ENV", "supervise")

log = logging.getLogger(__name__)

#: Seconds the workers get to drain after SIGTERM before they are killed.
DRAIN_TIMEOUT = 30.0
#: How many workers share this host's per-host limits (``runtime``).
SHARE_ENV = "GATEWAY_WORKER_SHARE"
#: A worker restarted more often than this within ``_CRASH_WINDOW`` seconds
#: waits a second before each further start, so a crash loop does not spin.
_CRASHES = 5
_CRASH_WINDOW = 30.0
_POLL = 0.1


def supervise(count: int, argv: Sequence[str], env: dict[str, str]) -> int:
    """Run ``count`` workers (``argv``, environment ``env``) until a signal to stop."""
    own_dir = "PROMETHEUS_MULTIPROC_DIR" not in env
    metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="gateway-metrics-")
    env = {**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, SHARE_ENV: str(count)}
    flags = {"stop": False, "reload": False}

    def on_stop(signum: int, frame: FrameType | None) -> None:
        flags["stop"] = True

    def on_reload(signum: int, frame: FrameType | None) -> None:
        flags["reload"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    workers: list[subprocess.Popen[bytes] | None] = [None] * count
    crashes: list[list[float]] = [[] for _ in range(count)]
    status = 0
    try:
        for slot in range(count):
            workers[slot] = _start(slot, argv, env)
        log.info("supervising %d workers (pids %s)", count, _pids(workers))
        while not flags["stop"]:
            time.sleep(_POLL)
            if flags["reload"]:
                flags["reload"] = False
                log.info("SIGHUP: reloading %d workers", count)
                _signal_all(workers, signal.SIGHUP)
            for slot, proc in enumerate(workers):
                if proc is None or (code := proc.poll()) is None:
                    continue
                _mark_dead(proc.pid, metrics_dir)
                if code in (1, 2):
                    log.error("worker %d (pid %d) refused to run (exit %d)", slot, proc.pid, code)
                    status = code
                    flags["stop"] = True
                    break
                log.warning(
                    "worker %d (pid %d) died (%s); starting it again",
                    slot,
                    proc.pid,
                    f"signal {-code}" if code < 0 else f"exit {code}",
                )
                now = time.monotonic()
                recent = crashes[slot] = [t for t in crashes[slot] if now - t < _CRASH_WINDOW]
                recent.append(now)
                if len(recent) > _CRASHES:
                    time.sleep(1.0)
                workers[slot] = _start(slot, argv, env)
    finally:
        _drain(workers)
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("all workers stopped")
    return status


def _start(slot: int, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(list(argv), env=env)
    log.info("worker %d started (pid %d)", slot, proc.pid)
    return proc


def _pids(workers: Sequence[subprocess.Popen[bytes] | None]) -> str:
    return ", ".join(str(p.pid) for p in workers if p is not None)


def _signal_all(workers: Sequence[subprocess.Popen[bytes] | None], sig: int) -> None:
    for proc in workers:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)


def _drain(workers: Sequence[subprocess.Popen[bytes] | None]) -> None:
    """SIGTERM to every worker; those still running after DRAIN_TIMEOUT are killed."""
    _signal_all(workers, signal.SIGTERM)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    for proc in workers:
        if proc is None:
            continue
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker pid %d did not drain in %.0fs: killed", proc.pid, DRAIN_TIMEOUT)
            proc.kill()
            proc.wait()


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """A dead worker's live gauges leave the multiprocess view (its counters stay)."""
    from prometheus_client import multiprocess  # noqa: PLC0415 - the supervisor's only use

    multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
