"""Process plumbing: each server the benchmark talks to runs in its own process.

Servers (the sink, the ceiling) print ``listening PORT`` once bound; the
parent reads that line, so no port is guessed.  The gateway, which does not
print it, gets a free port picked here and is polled on ``/health``.  Every
wait is bounded, and every child is stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO

from aiohttp import web

__all__ = (
    "Child",
    "cpu_seconds",
    "free_port",
    "run_loop",
    "serve_app",
    "spawn_gateway",
    "spawn_server",
)


def run_loop(main: Callable[[], Awaitable[None]]) -> None:
    """Run a coroutine on uvloop where it is installed."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows
    except ImportError:
        asyncio.run(main())  # type: ignore[arg-type]
    else:
        uvloop.run(main())  # type: ignore[arg-type]


async def serve_app(
    app: web.Application, host: str, port: int, *, tls: tuple[str, str] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; announce the bound port on stdout.

    With ``tls`` (certificate and key files) the app is served over HTTPS on a
    second port too, announced first as ``tls PORT``.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        secure = web.TCPSite(runner, host, 0, backlog=2048, ssl_context=context)
        await secure.start()
        server = secure._server
        assert server is not None
        print(f"tls {server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    site = web.TCPSite(runner, host, port, backlog=2048)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    plain = site._server
    assert plain is not None
    print(f"listening {plain.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Child:
    """A child process with a base URL; stopping it is idempotent."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], url: str, log: IO[bytes] | None):
        self.name, self.proc, self.url, self._log = name, proc, url, log
        #: The HTTPS base URL of a server started with TLS (``tls PORT``), else None.
        self.tls_url: str | None = None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def spawn_server(
    name: str, module: str, args: Sequence[str], *, port: int = 0, timeout: float = 20.0
) -> Child:
    """Start ``python -m module args``, wait for its ``listening PORT`` line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    tls_port: int | None = None
    # readline blocks, but the child prints the line within a second or dies (EOF).
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(b"tls "):
            tls_port = int(line.split()[1])
        if not line or line.startswith(b"listening "):
            break
    if not line.startswith(b"listening "):
        Child(name, proc, "", None).stop()
        raise RuntimeError(f"{name} did not start (exit {proc.returncode})")
    port = int(line.split()[1])
    child = Child(name, proc, f"http://127.0.0.1:{port}", None)
    if tls_port is not None:
        child.tls_url = f"https://127.0.0.1:{tls_port}"
    return child


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, from ``/proc`` (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)


def spawn_gateway(
    config: str, db: str, log_path: str, *, port: int | None = None, timeout: float = 30.0
) -> Child:
    """Start ``python -m gateway serve`` on a free loopback port; wait for /health."""
    port = port or free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed by Child.stop
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            config,
            "--db",
            db,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    child = Child("gateway", proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{child.url}/health", timeout=1) as answer:
                if answer.status == 200:
                    return child
        time.sleep(0.1)
    child.stop()
    with open(log_path, "rb") as stream:
        tail = stream.read()[-2000:].decode("utf-8", "replace")
    raise RuntimeError(f"gateway did not become healthy (exit {proc.returncode}):\n{tail}")
