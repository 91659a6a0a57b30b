"""The one TLS context builder, so both clients trust exactly the same CAs.

The context also resumes TLS sessions: a new connection to a host offers the
session (or TLS 1.3 ticket) an earlier one to the same host name got, which
saves the server a full handshake and us most of its CPU.  Sessions are
offered through ``wrap_bio``, which every event loop's TLS layer calls, so
no private loop API is touched.
"""

from __future__ import annotations

import ssl

__all__ = ("ResumingContext", "client_context")

#: Host names whose last session is kept (oldest forgotten first).
_MAX_SESSIONS = 1024


class ResumingContext(ssl.SSLContext):
    """An ``SSLContext`` that offers each host name its last session again."""

    sessions: dict[str, ssl.SSLSession]

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        if session is None and isinstance(server_hostname, str):
            session = self.sessions.get(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def keep(self, host: str, sslobj: ssl.SSLObject) -> None:
        """Keep ``sslobj``'s session for ``host`` (after an answer: TLS 1.3 tickets
        arrive after the handshake)."""
        session = sslobj.session
        if session is None or (not session.has_ticket and not session.id):
            return
        sessions = self.sessions
        if sessions.get(host) is session:
            return
        sessions.pop(host, None)
        if len(sessions) >= _MAX_SESSIONS:
            del sessions[next(iter(sessions))]
        sessions[host] = session


def client_context(ca_file: str | None) -> ResumingContext:
    """Certificates and host names verified against the system CAs plus ``ca_file``.

    HTTP/1.1 is offered by ALPN: it is all either client speaks.  Loading the
    CAs reads files, so a client builds its context once, when first needed.
    """
    # what ssl.create_default_context() sets up for a client, on our subclass
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
    context.sessions = {}
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if ca_file:  # extra trusted CAs ([delivery] ca_file), e.g. a test CA
        context.load_verify_locations(cafile=ca_file)
    context.set_alpn_protocols(("http/1.1",))
    return context
