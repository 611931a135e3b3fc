"""A local stand-in for Make (make.com): an OAuth 2.0 / OpenID Connect authorization server
with Make's routes plus a Make-like API, so the package can be tried without a Make account.

Never switched on implicitly: start it yourself::

    from make_notebook_auth.sandbox import Sandbox

    with Sandbox() as sb:            # 127.0.0.1, a free port, the public (PKCE) client
        print(sb.settings())         # MAKE_ISSUER, MAKE_API_URL, MAKE_CLIENT_ID, ...
        sb.inject(status=429, count=2, retry_after=1)   # next two API calls get 429

or from a shell: ``make-notebook-auth sandbox [--host 127.0.0.1] [--port N] [--confidential]``
(also ``python -m make_notebook_auth.sandbox``), which prints the settings as ``NAME=value``
lines and serves until interrupted. :func:`ensure_sandbox` returns one shared, running sandbox
for the process (used by ``%make_login --sandbox``).

Safety: it listens on loopback unless told otherwise, makes a new RS256 signing key and new
client secrets at each start, and accepts only tokens it issued itself. Demo users sign in
without a password; its data is synthetic.

Clients registered (redirect URIs ``http://127.0.0.1:8765/callback``,
``http://127.0.0.1:8766/callback``, ``https://app.example.test/callback``; as RFC 8252 7.3
asks, a loopback IP redirect URI also matches on any other port):
``sandbox-public`` (public, PKCE S256 required), ``sandbox-confidential`` (``client_secret_post``,
rotating refresh tokens), and the same two with short-lived access tokens:
``sandbox-public-short`` and ``sandbox-confidential-short``.

Behind a proxy (Binder, JupyterHub): the kernel reaches the sandbox on loopback, but the
browser reaches it through ``jupyter-server-proxy`` at ``{base_url}proxy/{port}/``. Pass that
public address as ``browser_base_url`` (CLI: ``--browser-base-url``), e.g.
``Sandbox(browser_base_url="https://hub.example/user/ana/proxy/{port}")`` (``{port}`` is
replaced by the port the sandbox got, handy with ``port=0``): discovery then
advertises ``authorization_endpoint`` under it (see :attr:`Sandbox.authorization_endpoint`),
while the issuer, token, JWKS, userinfo and API URLs stay on loopback for the kernel. The
sign-in page uses relative form actions, so it works under the proxy's path prefix; after
approval the browser goes to the client's redirect URI as with Make.
"""

from __future__ import annotations

from .api import MakeLikeAPI, TokenValidator, make_error
from .app import REDIRECT_URI, Sandbox, ensure_sandbox, start_sandbox
from .data import DEMO_USERS, DemoUser
from .models import (
    CONFIDENTIAL_CLIENT_ID,
    PUBLIC_CLIENT_ID,
    SHORT_CONFIDENTIAL_CLIENT_ID,
    SHORT_PUBLIC_CLIENT_ID,
    SandboxClient,
)

__all__ = [
    "CONFIDENTIAL_CLIENT_ID",
    "DEMO_USERS",
    "PUBLIC_CLIENT_ID",
    "REDIRECT_URI",
    "SHORT_CONFIDENTIAL_CLIENT_ID",
    "SHORT_PUBLIC_CLIENT_ID",
    "DemoUser",
    "MakeLikeAPI",
    "Sandbox",
    "SandboxClient",
    "TokenValidator",
    "ensure_sandbox",
    "make_error",
    "start_sandbox",
]
