"""pytest plugin: the package's own sandbox (``make_notebook_auth.sandbox``) on 127.0.0.1.

Load it with ``pytest_plugins = ["fixtures_sandbox"]``. Fixtures:

- ``sandbox_server`` (session): the running :class:`~make_notebook_auth.sandbox.Sandbox`
  (for ``inject()``, ``set_rate_limit()``, client secrets ...).
- ``sandbox_provider`` (session): a :class:`providers.ProviderHandle` for it, with the clients
  ``sandbox-public``, ``sandbox-confidential``, ``sandbox-public-short``,
  ``sandbox-confidential-short`` and the demo users ``alice``, ``bob`` and ``carol``.
- ``sandbox_faults`` (function): the sandbox's fault injector, cleared after the test.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from providers import REDIRECT_URI, REGISTERED_REDIRECT_URIS, ProviderHandle

from make_notebook_auth.sandbox import (
    CONFIDENTIAL_CLIENT_ID,
    DEMO_USERS,
    PUBLIC_CLIENT_ID,
    SHORT_CONFIDENTIAL_CLIENT_ID,
    SHORT_PUBLIC_CLIENT_ID,
    Sandbox,
)
from make_notebook_auth.sandbox.models import DEFAULT_REDIRECT_URIS, default_clients

SHORT_TTL = 4
HTTP_TIMEOUT = 10.0


class SandboxAuthorizeError(RuntimeError):
    """``authorize()`` did not reach a redirect to the client."""


class _FormParser(HTMLParser):
    """The first form of a page: action, method, default fields and the submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.form: dict | None = None
        self.users: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form = {"action": a.get("action", ""), "method": a.get("method", "get"),
                         "fields": {}, "buttons": {}}
        elif self.form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind == "radio" and a["name"] == "user":
                self.users.append(a.get("value", ""))
            if kind not in ("checkbox", "radio") or "checked" in a:
                self.form["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self.form["buttons"].setdefault(a["name"], []).append(a.get("value", ""))


def make_authorize(issuer: str):
    origin = urlsplit(issuer)[:2]

    def authorize(url: str, approve: bool = True, user: str = "alice") -> str:
        """Open ``url`` like a browser, pick ``user`` and press Approve (or Deny) on the
        sign-in page; return the redirect to the client without requesting it."""
        session = requests.Session()
        session.trust_env = False
        response = session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
        if response.is_redirect:
            return urljoin(url, response.headers["Location"])
        if response.status_code != 200:
            text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)).strip()
            raise SandboxAuthorizeError(f"authorize: HTTP {response.status_code}: {text[:400]}")
        parser = _FormParser()
        parser.feed(response.text)
        if parser.form is None:
            raise SandboxAuthorizeError("authorize: no form on the sign-in page")
        if user not in parser.users:
            raise SandboxAuthorizeError(f"authorize: no demo user {user!r} on the page")
        fields = dict(parser.form["fields"], user=user,
                      decision="approve" if approve else "deny")
        target = urljoin(response.url, parser.form["action"])
        if urlsplit(target)[:2] != origin:
            raise SandboxAuthorizeError("authorize: the form posts somewhere else")
        posted = session.post(target, data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT)
        if not posted.is_redirect:
            raise SandboxAuthorizeError(f"authorize: HTTP {posted.status_code} after the form")
        return urljoin(target, posted.headers["Location"])

    return authorize


@pytest.fixture(scope="session")
def sandbox_server():
    """One sandbox for the whole session (public client by default)."""
    # Every client also accepts this run's free-port loopback redirect URIs (see providers.py).
    clients = default_clients(3600, SHORT_TTL, (*DEFAULT_REDIRECT_URIS, *REGISTERED_REDIRECT_URIS))
    sandbox = Sandbox("127.0.0.1", 0, short_token_ttl=SHORT_TTL, clients=clients,
                      redirect_uri=REDIRECT_URI)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sandbox_faults(sandbox_server):
    """The session sandbox's fault injector; injected failures and limits end with the test."""
    faults = sandbox_server.faults
    faults.clear()
    yield faults
    faults.clear()
    faults.rate_limit = None


@pytest.fixture(scope="session")
def sandbox_provider(sandbox_server) -> ProviderHandle:
    """The sandbox as a :class:`providers.ProviderHandle`."""
    sb = sandbox_server
    return ProviderHandle(
        name="sandbox",
        issuer=sb.issuer,
        api_url=sb.api_url,
        public_client_id=PUBLIC_CLIENT_ID,
        confidential_client_id=CONFIDENTIAL_CLIENT_ID,
        confidential_client_secret=sb.clients[CONFIDENTIAL_CLIENT_ID].client_secret or "",
        short_public_client_id=SHORT_PUBLIC_CLIENT_ID,
        short_confidential_client_id=SHORT_CONFIDENTIAL_CLIENT_ID,
        short_confidential_client_secret=sb.clients[SHORT_CONFIDENTIAL_CLIENT_ID].client_secret
        or "",
        short_ttl=SHORT_TTL,
        redirect_uri=REDIRECT_URI,
        authorize=make_authorize(sb.issuer),
        users={key: user.claims() for key, user in DEMO_USERS.items()},
    )


# --- a sandbox with its zones and organizations' rate limits ------------------------------------

ZONE_WINDOW = 2.0  # seconds: the "minute" of the zoned sandbox's rate limits, and of budgets


@pytest.fixture(scope="session")
def _zoned_sandbox():
    sandbox = Sandbox("127.0.0.1", 0, zones=3, org_window=ZONE_WINDOW)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def zoned_sandbox(_zoned_sandbox):
    """A sandbox serving three zones (zone 0 on the main port); organizations' limits are off
    until a test turns them on (``set_org_limits``); budgets and limits use 2-second windows."""
    from make_notebook_auth import ratelimit

    sb = _zoned_sandbox
    sb.faults.clear()
    sb.set_org_limits(False, window=ZONE_WINDOW, retry_after=True, overrides={})
    ratelimit.reset(window=ZONE_WINDOW)
    yield sb
    sb.faults.clear()
    sb.set_org_limits(False, overrides={})


@pytest.fixture
def zoned_login(zoned_sandbox):
    """``zoned_login(user="alice", home=0, zones=None)`` -> a logged-in ``MakeSession``.

    ``home`` is the zone number configured as the API base (``None``: none configured, the
    session finds its home among ``zones``, zone names like ``127.0.0.1:PORT``)."""
    from make_notebook_auth import MakeAuth

    sb = zoned_sandbox
    authorize = make_authorize(sb.issuer)

    def login(user: str = "alice", home: int | None = 0, zones=None, profile="default"):
        api_url = sb.zone_api_urls[home] if home is not None else None
        auth = MakeAuth(sb.client_id, issuer=sb.issuer, redirect_uri=sb.redirect_uri,
                        api_url=api_url, zones=zones, profile=profile)
        return auth.finish(authorize(auth.start().url, user=user))

    return login
