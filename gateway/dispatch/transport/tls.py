"""The one TLS context builder, so both clients trust exactly the same CAs."""

from __future__ import annotations

import ssl

__all__ = ("client_context",)


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates and host names verified against the system CAs plus ``ca_file``.

    HTTP/1.1 is offered by ALPN: it is all either client speaks.  Loading the
    CAs reads files, so a client builds its context once, when first needed.
    """
    context = ssl.create_default_context()
    if ca_file:  # extra trusted CAs ([delivery] ca_file), e.g. a test CA
        context.load_verify_locations(cafile=ca_file)
    context.set_alpn_protocols(("http/1.1",))
    return context
