"""A first run, as a new user makes it, with every outbound connection attempt recorded.

``python tests/first_run.py DIR [--config FILE]`` starts ``python -m gateway
serve`` (no ``--config`` unless given, no ``--db``; cwd ``DIR``) under an
audit hook that records each ``socket.getaddrinfo`` and ``socket.connect``,
follows the start-up banner's click and conversion commands, waits for the
delivery to finish, stops the gateway and prints one JSON object: the
deliveries, the recorded network events and the log.

The gateway runs on asyncio's own loop here (uvloop's sockets live in C and
raise no audit events); everything else is the real ``serve``.  The test runs
this script in a fresh network namespace when it can, so even a broken build
cannot reach a real network.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _serve_audited(events_path: str, argv: list[str]) -> None:
    """The gateway with an audit hook: this process's every name lookup and connect."""
    out = open(events_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.getaddrinfo":
            out.write(json.dumps({"event": "getaddrinfo", "host": str(args[0])}) + "\n")
        elif event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else str(address)
            out.write(json.dumps({"event": "connect", "host": str(host)}) + "\n")

    sys.addaudithook(hook)
    sys.modules["uvloop"] = None  # type: ignore[assignment]  # asyncio's loop: audited sockets
    sys.path.insert(0, str(ROOT))
    from gateway.cli import main  # noqa: PLC0415 - after the hook, so startup is audited too

    sys.exit(main(argv))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _drive(workdir: Path, config: str | None) -> dict[str, Any]:
    port = _free_port()
    events = workdir / "net-events.jsonl"
    log_path = workdir / "serve.log"
    argv = ["serve", "--port", str(port)] + (["--config", config] if config else [])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(events), *argv],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"deliveries": [], "conversion": None}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if _get(base + "/health")[0] == 200 and "try a click" in log_path.read_text():
                    break
            except OSError:
                time.sleep(0.05)
        text = log_path.read_text()
        click_cmd = re.search(r"try a click: +curl -si '([^']+)'", text)
        conv_cmd = re.search(r"then conversion: +curl -s '([^']+)'", text)
        param = re.search(r"CLICK_ID: the (\w+)= value", text)
        if click_cmd and conv_cmd and param:
            status, headers, _ = _get(click_cmd.group(1))
            location = headers.get("Location", "")
            found = re.search(rf"[?&]{param.group(1)}=([^&]+)", location)
            result["click"] = {"status": status, "location": location}
            if found:
                url = conv_cmd.group(1).replace("CLICK_ID", found.group(1))
                status, _, body = _get(url)
                result["conversion"] = {"status": status, "body": json.loads(body)}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = json.loads(_get(base + "/api/deliveries")[2])["deliveries"]
            result["deliveries"] = rows
            if rows and all(d["status"] != "queued" or d["attempts"] for d in rows):
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    result["exit"] = proc.returncode
    result["log"] = log_path.read_text(errors="replace")
    result["net"] = (
        [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    )
    return result


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        _serve_audited(sys.argv[2], sys.argv[3:])
    args = sys.argv[1:]
    cfg = args[args.index("--config") + 1] if "--config" in args else None
    print(json.dumps(_drive(Path(args[0]), cfg)))
