"""The :class:`Sandbox`: the authorization server and the Make-like API on one loopback port
(the home zone), plus one more port per extra zone serving the API only, each served from a
background thread."""

from __future__ import annotations

import atexit
import ipaddress
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from . import data
from .api import MakeLikeAPI, make_error
from .faults import FaultInjector
from .models import (
    CONFIDENTIAL_CLIENT_ID,
    DEFAULT_REDIRECT_URIS,
    PUBLIC_CLIENT_ID,
    SandboxClient,
    Store,
    default_clients,
)
from .server import AuthorizationService, new_signing_key
from .wsgi import BackgroundServer, BodyTooLarge, Request, Response, StartResponse

log = logging.getLogger("make_notebook_auth.sandbox")

REDIRECT_URI = DEFAULT_REDIRECT_URIS[0]
#: The scopes of the API token a sandbox makes at start: the package's read-only set.
API_TOKEN_SCOPES: tuple[str, ...] = (
    "user:read", "organizations:read", "teams:read", "scenarios:read", "connections:read",
    "datastores:read", "hooks:read", "dlqs:read",
)
API_PREFIX = "/api/v2/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 (mapping a wildcard to a URL host)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


class Sandbox:
    """A local stand-in for Make: OpenID provider plus Make-like API.

    ``Sandbox(...).start()`` (or ``with Sandbox() as sb:``) serves on a daemon thread; the URLs
    and client settings are known once started. Each start makes a fresh signing key and fresh
    client secrets, so nothing issued is accepted anywhere else or after a restart.

    Zones: ``zones`` (default 3) API servers, each on its own port; zone 0 is the main port
    (issuer and ``api_url``), the others serve only ``/api/v2/`` (:attr:`zone_api_urls`).
    Organizations are spread across them (their ``zone`` is ``127.0.0.1:PORT``), and every zone
    accepts the same access tokens. ``org_limits=True`` enforces each organization's
    ``license.apiLimit`` per ``org_window`` seconds (429 with ``Retry-After`` unless
    ``org_retry_after=False``); ``latency_ms`` delays every API answer.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, confidential: bool = False,
                 access_token_ttl: int = 3600, clients: Sequence[SandboxClient] | None = None,
                 short_token_ttl: int = 4, redirect_uri: str = REDIRECT_URI,
                 browser_base_url: str | None = None, rate_limit: int | None = None,
                 zones: int = data.ZONES, org_limits: bool = False, org_window: float = 60.0,
                 org_retry_after: bool = True, latency_ms: float = 0.0) -> None:
        if zones < 1:
            raise ValueError("zones must be at least 1")
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self.zone_count = zones
        self.latency_ms = latency_ms
        self.host = host
        self.requested_port = port
        self.confidential = confidential
        self.redirect_uri = redirect_uri
        self.browser_base_url = browser_base_url.rstrip("/") if browser_base_url else None
        if clients is None:
            uris: Iterable[str] = (*DEFAULT_REDIRECT_URIS, redirect_uri)
            clients = default_clients(access_token_ttl, short_token_ttl, uris)
            self._main_client_id = CONFIDENTIAL_CLIENT_ID if confidential else PUBLIC_CLIENT_ID
        else:
            wanted = [c for c in clients if c.is_public != confidential]
            if not wanted:
                kind = "confidential" if confidential else "public"
                raise ValueError(f"clients has no {kind} client")
            self._main_client_id = wanted[0].client_id
        self.clients: dict[str, SandboxClient] = {c.client_id: c for c in clients}
        self.faults = FaultInjector(rate_limit, org_limits=org_limits, org_window=org_window,
                                    org_retry_after=org_retry_after)
        self._zone_servers: list[BackgroundServer] = []
        self.zone_apis: list[MakeLikeAPI] = []
        self.zones: list[str] = []  # "127.0.0.1:PORT" of each zone, home first
        self._http: BackgroundServer | None = None
        self._issuer: str | None = None
        self.auth: AuthorizationService | None = None
        self.api: MakeLikeAPI | None = None
        self._stopped = False
        # Make API tokens (``Authorization: Token ...``): token -> (subject, scopes).
        self._api_tokens: dict[str, tuple[str, frozenset[str]]] = {}
        self._api_tokens_lock = threading.Lock()
        #: an API token for alice with the read-only scopes, made at start (printed by the
        #: CLI and shown on the sign-in page)
        self.api_token: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._http is not None:
            return self
        if self._stopped:
            raise RuntimeError("a stopped Sandbox cannot be restarted; create a new one")
        http = BackgroundServer(self.wsgi_app, self.host, self.requested_port)
        self._issuer = f"http://{_url_host(self.host)}:{http.port}"
        try:
            extra = [BackgroundServer(self._zone_app(i), self.host, 0)
                     for i in range(1, self.zone_count)]
        except OSError:
            http.stop()
            raise
        self.zones = [f"{_url_host(self.host)}:{server.port}" for server in (http, *extra)]
        browser_base_url = self.browser_base_url
        if browser_base_url and "{port}" in browser_base_url:
            browser_base_url = browser_base_url.replace("{port}", str(http.port))
        store = Store(list(self.clients.values()))
        self.auth = AuthorizationService(store, self._issuer, signing_key=new_signing_key(),
                                         faults=self.faults, browser_base_url=browser_base_url)
        self.zone_apis = [
            MakeLikeAPI(self._validate_token, faults=self.faults, prefix=API_PREFIX, zone=i,
                        zone_names=self.zones if self.zone_count > 1 else None,
                        latency=self.latency_ms / 1000,
                        validate_api_token=self._validate_api_token)
            for i in range(self.zone_count)]
        self.api_token = self.issue_api_token()
        self.auth.api_token = self.api_token
        self.api = self.zone_apis[0]
        self._http = http
        self._zone_servers = extra
        http.start()
        for server in extra:
            server.start()
        return self

    def stop(self) -> None:
        for server in self._zone_servers:
            server.stop()
        self._zone_servers = []
        if self._http is not None:
            self._http.stop()
            self._http = None
        self._stopped = True

    @property
    def running(self) -> bool:
        return self._http is not None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- settings --------------------------------------------------------------------------
    def _require_started(self) -> str:
        if self._issuer is None:
            raise RuntimeError("the sandbox is not started; call start() first")
        return self._issuer

    @property
    def port(self) -> int:
        return int(self._require_started().rsplit(":", 1)[1])

    @property
    def issuer(self) -> str:
        return self._require_started()

    @property
    def api_url(self) -> str:
        return self._require_started() + API_PREFIX

    @property
    def zone_api_urls(self) -> list[str]:
        """The API base of each zone (``http://127.0.0.1:PORT/api/v2/``), home zone first."""
        self._require_started()
        return [f"http://{zone}{API_PREFIX}" for zone in self.zones]

    def zone_of(self, organization_id: int) -> str:
        """The zone (``127.0.0.1:PORT``) serving an organization's API."""
        self._require_started()
        return self.zones[data.ZONE_OF.get(organization_id, 0) % len(self.zones)]

    @property
    def authorization_endpoint(self) -> str:
        """The authorize URL for the browser (uses ``browser_base_url`` behind a proxy)."""
        self._require_started()
        assert self.auth is not None
        return self.auth.authorization_endpoint

    @property
    def client_id(self) -> str:
        return self._main_client_id

    @property
    def client_secret(self) -> str | None:
        return self.clients[self._main_client_id].client_secret

    def settings(self) -> dict[str, str]:
        """The ``NAME=value`` settings for the package (includes the secret when confidential)."""
        values = {
            "MAKE_ISSUER": self.issuer,
            "MAKE_API_URL": self.api_url,
            "MAKE_CLIENT_ID": self.client_id,
            "MAKE_REDIRECT_URI": self.redirect_uri,
        }
        if self.client_secret is not None:
            values["MAKE_CLIENT_SECRET"] = self.client_secret
        return values

    def issue_api_token(self, user: str = "alice",
                        scopes: Iterable[str] = API_TOKEN_SCOPES) -> str:
        """A new Make API token for demo user ``user`` (a key such as ``"alice"``) with
        ``scopes``: the API accepts it as ``Authorization: Token <token>``, on every zone,
        until :meth:`revoke_api_token`."""
        found = data.find_user(user)
        if found is None:
            raise ValueError(f"no demo user {user!r}")
        token = str(uuid.uuid4())  # Make's API tokens are UUIDs
        with self._api_tokens_lock:
            self._api_tokens[token] = (found.sub, frozenset(scopes))
        return token

    def revoke_api_token(self, token: str) -> None:
        with self._api_tokens_lock:
            self._api_tokens.pop(token, None)

    def _validate_api_token(self, token: str) -> tuple[str, frozenset[str]] | None:
        with self._api_tokens_lock:
            return self._api_tokens.get(token)

    # -- faults ----------------------------------------------------------------------------
    def inject(self, status: int = 429, count: int = 1, retry_after: int | None = 1,
               where: str = "api") -> None:
        """Make the next ``count`` requests to the API (``where="api"``) or the token endpoint
        (``where="token"``) fail with ``status`` (429 or 5xx), with ``Retry-After`` when
        ``retry_after`` is set."""
        self.faults.inject(status=status, count=count, retry_after=retry_after, where=where)

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Requests per minute per access token before the API answers 429 (None: no limit)."""
        self.faults.rate_limit = per_minute

    def set_org_limits(self, enabled: bool = True, *, window: float | None = None,
                       retry_after: bool | None = None,
                       overrides: dict[int, int] | None = None) -> None:
        """Enforce (or stop enforcing) each organization's ``apiLimit`` per window; optionally
        change the window length (seconds), whether 429s carry ``Retry-After``, and the limit
        of some organizations (``{org_id: per_window}``)."""
        self.faults.org_limits = enabled
        if window is not None:
            self.faults.org_window = window
        if retry_after is not None:
            self.faults.org_retry_after = retry_after
        if overrides is not None:
            self.faults.org_limit_overrides = dict(overrides)

    # -- serving ---------------------------------------------------------------------------
    def _validate_token(self, token: str) -> tuple[str, frozenset[str]] | None:
        assert self.auth is not None
        record = self.auth.server.store.active_access_token(token)
        if record is None or record.user is None:
            return None
        return record.user.sub, record.scopes

    def wsgi_app(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        return self._serve(self._dispatch, environ, start_response)

    @staticmethod
    def _serve(dispatch: Any, environ: dict[str, Any],
               start_response: StartResponse) -> list[bytes]:
        try:
            response = dispatch(Request(environ))
        except BodyTooLarge:
            response = make_error(413, "Payload Too Large", "Request body too large.", "SC413")
        except Exception as exc:  # never echo request data: only the kind of failure
            log.warning("sandbox: internal error (%s)", type(exc).__name__)
            response = Response.json({"error": "server_error"}, 500)
        return response(start_response)

    def _zone_app(self, zone: int) -> Any:
        def dispatch(req: Request) -> Response:
            if req.path.startswith(API_PREFIX):
                return self.zone_apis[zone].handle(req)
            return make_error(404, "Not Found", "The requested resource was not found.",
                              "SC404")

        return lambda environ, start_response: self._serve(dispatch, environ, start_response)

    def _dispatch(self, req: Request) -> Response:
        assert self.auth is not None and self.api is not None
        if req.path.startswith(API_PREFIX):
            return self.api.handle(req)
        if self.auth.handles(req.path):
            return self.auth.handle(req)
        if req.path == "/":
            return Response.json({"sandbox": "make-notebook-auth", "issuer": self._issuer,
                                  "api": self.api_url})
        return make_error(404, "Not Found", "The requested resource was not found.", "SC404")

    def __repr__(self) -> str:
        where = self._issuer or "not started"
        kind = "confidential" if self.confidential else "public"
        return (f"<Sandbox {where} client_id={self.client_id!r} ({kind}) "
                f"{'running' if self.running else 'stopped'}>")


def start_sandbox(**kwargs: Any) -> Sandbox:
    """Create and start a :class:`Sandbox` (keyword arguments as for the class)."""
    return Sandbox(**kwargs).start()


_shared: Sandbox | None = None
_shared_lock = threading.Lock()


def ensure_sandbox(**kwargs: Any) -> Sandbox:
    """The process-wide sandbox, started on first call (keyword arguments apply only then).

    Used by ``%make_login --sandbox``; stopped when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = Sandbox(**kwargs).start()
            atexit.register(_shared.stop)
        return _shared
