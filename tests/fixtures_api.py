"""pytest plugin: a Make-like API on 127.0.0.1 that accepts only tokens the test OpenID
provider (panva's oidc-provider, ``fixtures_oidc``) issued.

It is the sandbox's API app (``make_notebook_auth.sandbox.api.MakeLikeAPI``: ``users/me``,
``organizations``, ``teams``, ``scenarios`` with 2,500 items in team 1, Make's pagination and
error bodies, injectable 429 / 5xx) with a token validator that asks the provider's
introspection endpoint (client ``resource-server``) about every bearer token.

Fixtures:

- ``make_api``: a :class:`MakeAPIServer` (``api_url``, ``faults``, ``calls()``), with a clean
  fault list and request log per test.
- ``api_login``: ``api_login(profile="default", user="alice", client="confidential",
  remember=False)`` -> a logged-in ``MakeSession`` whose API base is ``make_api``.

For what a real server won't do on demand (drop a connection, ignore pagination), two more:

- ``scripted_api``: ``scripted_api(reply)`` starts an HTTP/1.1 server on 127.0.0.1 whose
  answers come from ``reply(request) -> (status, headers, body) | DROP``; it records every
  request (with its arrival time).
- ``token_session``: ``token_session(api_url)`` -> a ``MakeSession`` holding a made-up token
  (no provider involved), for servers that do not check tokens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from make_notebook_auth import MakeAuth, MakeSession
from make_notebook_auth.config import MakeConfig
from make_notebook_auth.sandbox.api import MakeLikeAPI
from make_notebook_auth.sandbox.faults import FaultInjector
from make_notebook_auth.sandbox.wsgi import BackgroundServer
from make_notebook_auth.tokens import Token

API_PREFIX = "/api/v2/"


def introspecting_validator(endpoint: str, client_id: str, client_secret: str):
    """``token -> (sub, scopes)`` for active tokens, by RFC 7662 introspection; else None."""
    local = threading.local()

    def validate(token: str) -> tuple[str, list[str]] | None:
        sess = getattr(local, "session", None)
        if sess is None:
            sess = local.session = requests.Session()
            sess.trust_env = False
        resp = sess.post(endpoint, data={"token": token, "token_type_hint": "access_token"},
                         auth=(client_id, client_secret), timeout=10)
        if resp.status_code != 200:
            return None
        info = resp.json()
        if info.get("active") is not True or info.get("token_type", "Bearer") != "Bearer":
            return None
        return str(info.get("sub")), str(info.get("scope") or "").split()

    return validate


@dataclass
class MakeAPIServer:
    base: str  # http://127.0.0.1:PORT
    api_url: str  # base + "/api/v2/"
    faults: FaultInjector
    log: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each request
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        with self._lock:
            self.log.append((method, path, query))
            self.times.append(time.monotonic())

    def calls(self, path: str | None = None) -> int:
        """Requests received (to ``path`` below /api/v2/, when given)."""
        with self._lock:
            return sum(1 for _, p, _ in self.log if path is None or p == path)

    def queries(self, path: str) -> list[dict[str, list[str]]]:
        with self._lock:
            return [q for _, p, q in self.log if p == path]

    def reset(self) -> None:
        self.faults.clear()
        with self._lock:
            self.log.clear()
            self.times.clear()


def _recording(app: Any, handle: MakeAPIServer):
    def wrapped(environ: dict[str, Any], start_response: Any):
        path = environ.get("PATH_INFO", "")
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX):]
        handle.record(environ.get("REQUEST_METHOD", "GET"), path,
                      parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        return app(environ, start_response)

    return wrapped


@pytest.fixture(scope="session")
def _make_api_server(oidc_provider, oidc_provider_introspection):
    intro = oidc_provider_introspection
    validator = introspecting_validator(intro["introspection_endpoint"], intro["client_id"],
                                        intro["client_secret"])
    faults = FaultInjector()
    app = MakeLikeAPI(validator, faults=faults, prefix=API_PREFIX)
    handle = MakeAPIServer(base="", api_url="", faults=faults)
    server = BackgroundServer(_recording(app, handle), "127.0.0.1", 0)
    server.start()
    handle.base = f"http://127.0.0.1:{server.port}"
    handle.api_url = handle.base + API_PREFIX
    try:
        yield handle
    finally:
        server.stop()


@pytest.fixture
def make_api(_make_api_server):
    """The Make-like API, with no injected faults and an empty request log."""
    _make_api_server.reset()
    yield _make_api_server
    _make_api_server.reset()


@pytest.fixture
def api_login(oidc_provider, make_api):
    """Log in at the test provider; the session's API base is ``make_api``."""

    def login(profile: str = "default", *, user: str = "alice", client: str = "confidential",
              remember: bool = False, **kwargs: Any):
        client_id, secret = {
            "confidential": (oidc_provider.confidential_client_id,
                             oidc_provider.confidential_client_secret),
            "public": (oidc_provider.public_client_id, None),
            "short": (oidc_provider.short_confidential_client_id,
                      oidc_provider.short_confidential_client_secret),
        }[client]
        kwargs.setdefault("api_url", make_api.api_url)
        auth = MakeAuth(client_id, secret, issuer=oidc_provider.issuer,
                        redirect_uri=oidc_provider.redirect_uri, profile=profile,
                        remember=remember, **kwargs)
        return auth.finish(oidc_provider.authorize(auth.start().url, user=user))

    return login


# --- a scripted server -----------------------------------------------------------------------

DROP = "drop"  # reply value: close the connection without answering


@dataclass
class ScriptedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    time: float


@dataclass
class ScriptedServer:
    base: str
    api_url: str
    requests: list[ScriptedRequest] = field(default_factory=list)

    def calls(self, method: str | None = None) -> int:
        return sum(1 for r in self.requests if method is None or r.method == method)


Reply = Callable[[ScriptedRequest], Any]


def _scripted_handler(reply: Reply, handle: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            req = ScriptedRequest(self.command, parts.path,
                                  parse_qs(parts.query, keep_blank_values=True),
                                  dict(self.headers.items()), self.rfile.read(n) if n else b"",
                                  time.monotonic())
            handle.requests.append(req)
            answer = reply(req)
            if answer == DROP:
                self.close_connection = True
                return
            status, headers, body = answer
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def scripted_api():
    """``start(reply)`` -> a :class:`ScriptedServer` on 127.0.0.1 answering with ``reply``."""
    servers: list[ThreadingHTTPServer] = []

    def start(reply: Reply) -> ScriptedServer:
        handle = ScriptedServer(base="", api_url="")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _scripted_handler(reply, handle))
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        handle.base = f"http://127.0.0.1:{server.server_address[1]}"
        handle.api_url = handle.base + API_PREFIX
        return handle

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def token_session():
    """``make(api_url, **config)`` -> a logged-in ``MakeSession`` with a made-up token."""

    def make(api_url: str, profile: str = "default", **kwargs: Any) -> MakeSession:
        config = MakeConfig.resolve("made-up-client", issuer="http://127.0.0.1:9",
                                    api_url=api_url, profile=profile, **kwargs)
        token = Token({"access_token": "made-up-token", "token_type": "Bearer",
                       "expires_in": 3600, "expires_at": time.time() + 3600})
        return MakeSession(config, token=token)

    return make
