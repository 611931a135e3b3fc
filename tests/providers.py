"""The shape every test OpenID provider fixture hands to the tests.

Two providers implement it: panva's ``oidc-provider`` (Node, ``tests/fixtures_oidc.py``)
and the package's own sandbox (``tests/fixtures_sandbox.py``). The flow tests are written
once against this interface and parametrised by provider.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

# The package's default (``config.DEFAULT_REDIRECT_URI``): registered at both providers, but
# only the one test that proves the default listens on it (two test runs on one machine would
# collide on a fixed port).
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/callback"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_ports(count: int) -> tuple[int, ...]:
    socks = []
    try:  # held together, so they differ
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for sock in socks:
            sock.close()


# Loopback redirect URIs chosen per test run and registered for every client at both providers:
# tests listen on these (the first; the second when the first is busy).
LOOPBACK_PORTS = _free_ports(2)
LOOPBACK_REDIRECT_URIS = tuple(f"http://127.0.0.1:{p}/callback" for p in LOOPBACK_PORTS)
REDIRECT_URI = LOOPBACK_REDIRECT_URIS[0]
REGISTERED_REDIRECT_URIS = (*LOOPBACK_REDIRECT_URIS, DEFAULT_REDIRECT_URI)


def loopback_redirect_uri() -> str:
    """This run's registered loopback redirect URI whose port is free now (else skip)."""
    from make_notebook_auth.loopback import port_is_free

    for uri, port in zip(LOOPBACK_REDIRECT_URIS, LOOPBACK_PORTS):
        if port_is_free(port):
            return uri
    import pytest

    pytest.skip(f"this run's loopback ports {LOOPBACK_PORTS} are both busy")


@dataclass
class ProviderHandle:
    name: str  # "oidc-provider" or "sandbox"
    issuer: str  # e.g. "http://127.0.0.1:PORT" (no trailing slash)
    api_url: str  # e.g. "http://127.0.0.1:PORT/api/v2/" -- a Make-like API accepting issued tokens
    public_client_id: str  # token_endpoint_auth_method "none", PKCE S256 required
    confidential_client_id: str  # client_secret_post, gets rotating refresh tokens
    confidential_client_secret: str = field(repr=False)
    # Same two kinds of client, but access tokens live only SHORT_TTL seconds.
    short_public_client_id: str = ""
    short_confidential_client_id: str = ""
    short_confidential_client_secret: str = field(default="", repr=False)
    short_ttl: int = 4
    redirect_uri: str = REDIRECT_URI  # registered for every client above
    # authorize(url, approve=True, user="alice") -> the redirect URL (with code/state/iss, or
    # error=access_denied when approve=False) that the browser would be sent to. Drives login and
    # consent over plain HTTP with requests, never follows the final redirect to redirect_uri.
    authorize: Callable[..., str] = field(repr=False, default=lambda url, **kw: "")
    # Users known to the provider: user id -> claims userinfo returns (at least "sub").
    users: dict = field(default_factory=dict)
