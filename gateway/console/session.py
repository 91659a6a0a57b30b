"""Who may use the console: the API token buys a session cookie; every form carries a CSRF token.

The session id is 32 random bytes kept in this process's memory (a restart
logs everyone out; under ``--workers`` each worker keeps its own sessions,
so a browser may be asked to log in again when the kernel hands its next
connection to another worker).  The cookie is ``HttpOnly`` and
``SameSite=Strict`` (``Secure`` when the request came over TLS), and each
session has its own CSRF token, compared in constant time on every POST.

Without an ``api_token`` in the config there is nothing to log in with: the
console then answers only to loopback peers, like the gateway's own rule
for listening (``intake.guard.listen_refusal``).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable

from aiohttp import web

from gateway.config import Config
from gateway.intake.guard import api_token_ok, is_loopback

__all__ = ("COOKIE", "LIFETIME", "Session", "Sessions")

COOKIE = "gateway_console"
#: A session lasts this long after its login (seconds).
LIFETIME = 12 * 3600
_MAX_SESSIONS = 1000


class Session:
    __slots__ = ("csrf", "expires")

    def __init__(self, expires: float) -> None:
        self.csrf = secrets.token_urlsafe(32)
        self.expires = expires


class Sessions:
    """Live sessions by id; the only place the console decides who is in."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._by_id: dict[str, Session] = {}
        self._now = now

    def login(self, config: Config, token: str) -> str | None:
        """A new session id when ``token`` is the API token, else None."""
        if not config.api_token or not api_token_ok(config, f"Bearer {token}"):
            return None
        return self._new()

    def _new(self) -> str:
        now = self._now()
        if len(self._by_id) >= _MAX_SESSIONS:
            for sid in [s for s, v in self._by_id.items() if v.expires <= now]:
                del self._by_id[sid]
            if len(self._by_id) >= _MAX_SESSIONS:  # still full: the oldest goes
                del self._by_id[next(iter(self._by_id))]
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = Session(now + LIFETIME)
        return sid

    def get(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        if session.expires <= self._now():
            del self._by_id[sid]
            return None
        return session

    def logout(self, request: web.Request) -> None:
        self._by_id.pop(request.cookies.get(COOKIE, ""), None)

    def open_session(self, config: Config, request: web.Request) -> tuple[Session | None, str]:
        """The request's session, or for a loopback peer without an api_token a new one.

        Answers (session, new id or ""): a new id must be set as the cookie.
        """
        session = self.get(request)
        if session is not None:
            return session, ""
        if not config.api_token and is_loopback(request.remote or ""):
            sid = self._new()
            return self._by_id[sid], sid
        return None, ""

    @staticmethod
    def csrf_ok(session: Session, given: object) -> bool:
        text = given if isinstance(given, str) else ""
        return hmac.compare_digest(text.encode("utf-8", "surrogatepass"), session.csrf.encode())


def set_cookie(response: web.StreamResponse, request: web.Request, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        max_age=LIFETIME,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/console")
