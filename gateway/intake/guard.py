"""Who may send what: the listening address, the API token, network allowlists, secrets.

Every check compares secrets in constant time.  One module, so a change of
policy (a new secret, a trusted proxy) has one place to land.
"""

from __future__ import annotations

import hmac
import ipaddress

from gateway.config import Config, Source
from gateway.intake.params import ConversionInput
from gateway.refusal import Reject

__all__ = (
    "api_token_ok",
    "conversion_refusal",
    "is_loopback",
    "listen_refusal",
    "source_secret_ok",
)


def _same(given: object, expected: str) -> bool:
    text = given if isinstance(given, str) else ""  # as sent: only a str can match
    # surrogatepass: a header's undecodable bytes arrive as surrogates; they never match
    return hmac.compare_digest(text.encode("utf-8", "surrogatepass"), expected.encode())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_refusal(host: str, config: Config) -> str | None:
    """Why the gateway must not listen on ``host`` with this config, or None."""
    if is_loopback(host) or config.api_token:
        return None
    return (
        f"refusing to listen on {host}: set api_token in the config first (or listen on 127.0.0.1)"
    )


def api_token_ok(config: Config, authorization: str) -> bool:
    """The ``Authorization`` header carries the configured bearer token (or none is set)."""
    token = config.api_token
    return not token or _same(authorization, f"Bearer {token}")


def conversion_refusal(config: Config, conv: ConversionInput, peer: str) -> Reject | None:
    """A named network's address allowlist, then its secret (or ``postback_secret``)."""
    network = conv.network
    if network is not None and not network.allows(peer):
        return Reject(403, "source address not allowed for this network", "network")
    expected = network.secret if network is not None else config.spec.postback_secret
    if expected and not _same(conv.secret, expected):
        return Reject(403, "wrong secret", "secret")
    return None


def source_secret_ok(source: Source | None, conv: ConversionInput) -> bool:
    """A traffic source with a secret accepts conversions of its clicks only with it."""
    return source is None or source.secret is None or _same(conv.secret, source.secret)
