"""A throw-away CA and a certificate for 127.0.0.1, for the benchmarks' HTTPS sinks.

Real postbacks are HTTPS, so the benchmarks measure TLS too: the sink serves
the certificate and every client trusts the CA through ``ca_file`` (the
gateway's ``[delivery] ca_file``, the bare loops' SSL context), the way a
test CA is trusted in production.  Made with trustme, in memory, in a second.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import msgspec

__all__ = ("TlsFiles", "client_context", "make_tls_files")


class TlsFiles(msgspec.Struct, frozen=True):
    ca: str  # PEM: the CA to trust
    cert: str  # PEM: the server's certificate chain
    key: str  # PEM: its private key


def make_tls_files(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Write a fresh CA and a server certificate for ``host`` into ``directory``."""
    import trustme  # noqa: PLC0415 - only the HTTPS runs need it

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(host)
    files = TlsFiles(
        ca=str(directory / "ca.pem"),
        cert=str(directory / "cert.pem"),
        key=str(directory / "key.pem"),
    )
    ca.cert_pem.write_to_path(files.ca)
    cert.private_key_pem.write_to_path(files.key)
    with open(files.cert, "wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return files


def client_context(ca_file: str) -> ssl.SSLContext:
    """What a bare client trusts: the system CAs plus the throw-away one, as the
    gateway's clients do (loading the system bundle costs tens of ms, once per
    context: a bare loop that skipped it would be charged less per run)."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)
    return context
