"""A gateway in a subprocess (``python -m gateway serve``), for crash and signal tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes: whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class GatewayProcess:
    def __init__(
        self,
        config: Path | None,
        db: Path | str | None,
        log: Path,
        *,
        host: str = "127.0.0.1",
        cwd: Path = ROOT,
        extra: Sequence[str] = (),
        workers: int = 1,
        port: int | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.log_path = log
        self.host = host
        self.cwd = cwd
        self.extra = list(extra)  # more ``serve`` options, e.g. --log-format json
        self.workers = workers
        self.port = free_port() if port is None else port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        argv = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        if self.db is not None:
            argv += ["--db", str(self.db)]
        argv += self.extra
        if self.workers != 1:
            argv += ["--workers", str(self.workers)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"gateway did not start: {self.log()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
