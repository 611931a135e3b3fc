"""``MakeSession``: an authenticated ``requests`` session for Make's API.

A ``requests.Session`` with a ``.token`` (the token response, a dict). The bearer header, the
refresh and the transport rules are the package's own (requests-oauthlib's ``OAuth2Session``
refuses plain http even to loopback hosts, refreshes without coordination between threads,
logs tokens, and attaches the token by host name only).

- Relative paths (``"users/me"``) resolve against the API base (``MAKE_API_URL`` or the zone).
- The access token goes only to URLs under an API base the session trusts
  (``_token_bases``: the configured one, and Make zone bases the package routes to itself),
  decided on the URL as it is sent (see ``hosts.py``), redirects included. Other URLs (a
  webhook on ``hook.eu1.make.com``, ``www.make.com``, another port, plain http off loopback)
  are requested without it.
- Loopback requests never go through a proxy from the environment.
- Shortly before expiry a session with a refresh token refreshes, one refresh at a time however
  many threads ask (threads that waited use the new token). A session without one raises
  ``LoginExpiredError`` instead of sending a dead token.
- Every request gets bounded retries (429 and 5xx on idempotent methods, dropped connections;
  see ``listing.py``); plain ``get``/``post`` return the final response as requests does, and
  raise ``MakeNetworkError`` (a ``requests.ConnectionError``) when the network fails.
- ``json``, ``paginate`` and ``frame`` raise ``MakeAPIError`` for Make's error answers; each
  of their calls ends within ``listing.API_DEADLINE`` seconds.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase

from . import listing, ratelimit, registry, tokens
from ._http import (
    NETWORK_ERRORS,
    TIMEOUT,
    USER_AGENT,
    Session,
    call,
    extend_deadline,
    failure_reason,
    json_body,
)
from .config import DEFAULT_ISSUER, MakeConfig, parse_scopes, zones_hint
from .errors import (
    LoginExpiredError,
    LoginPendingError,
    MakeAuthError,
    MakeConfigError,
    MakeError,
    MakeNetworkError,
    NotLoggedInError,
    ProviderResponseError,
    RevocationWarning,
    TokenEndpointError,
)
from .hosts import is_loopback_url, normalise_base, under_base, zone_base
from .oidc import ProviderMetadata, verify_id_token
from .secret import Secret
from .zones import HOME_ZONE_ORDER, ZoneMap, api_base_of_zone, check_candidates

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pandas as pd

    from .cache import LoginStore
    from .listing import Page, Params

RATE_SHARE_ENV = "MAKE_RATE_SHARE"
PROBE_TIMEOUT = (5.0, 10.0)  # asking a candidate zone for users/me
MAX_REFRESH_MARGIN = 60.0  # seconds before expiry at which a long-lived token is refreshed
REFRESH_MARGIN_FRACTION = 0.1  # ... or this share of its lifetime, whichever is smaller

__all__ = ["LoginPendingError", "MakeSession", "RevocationWarning"]  # the errors live in errors


def _check_share(value: Any, source: str) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = float("nan")
    if not 0 < share <= 1:
        raise MakeConfigError(
            f"{source} must be a number above 0 and at most 1 (the share of an "
            f"organization's API limit this kernel may use), got {value!r}."
        )
    return share


def _env_rate_share() -> float:
    import os

    value = os.environ.get(RATE_SHARE_ENV, "").strip()
    return _check_share(value, RATE_SHARE_ENV) if value else ratelimit.DEFAULT_RATE_SHARE


def _spent(failure: MakeError | None) -> bool:
    """True when a refresh failed after the provider answered it successfully (HTTP 2xx):
    the provider may have spent (rotated) the refresh token that was sent."""
    if isinstance(failure, tokens.TokenAnswerError):
        return True
    answered = getattr(failure, "answered", None)
    return not isinstance(failure, TokenEndpointError) and isinstance(answered, int) and \
        200 <= answered < 300


def _why(failure: MakeError) -> str:
    if isinstance(failure, TokenEndpointError) and failure.error_description:
        return failure.error_description
    return "its body was cut off or too large"


API_TOKEN_SCHEME = "Token"  # Make's Authorization scheme for API tokens (OAuth: "Bearer")
MAX_API_TOKEN_LENGTH = 4096
_API_TOKEN_RE = re.compile(r"[!-~]+")  # visible ASCII, no spaces: nothing to inject a header


def check_api_token(token: Any, source: str = "The API token") -> str:
    """``token`` stripped, if it can be a Make API token; ``MakeConfigError`` otherwise (the
    message never repeats the value)."""
    value = token.strip() if isinstance(token, str) else ""
    if not value:
        raise MakeConfigError(f"{source} is empty. Create one in your Make profile (API "
                              "access tab) and set MAKE_API_TOKEN to it.")
    if len(value) > MAX_API_TOKEN_LENGTH or not _API_TOKEN_RE.fullmatch(value):
        raise MakeConfigError(
            f"{source} is not a Make API token (it holds spaces, line breaks or other "
            "characters no API token has). Copy it again from your Make profile (API access).")
    return Secret(value)


class _Bearer(AuthBase):
    """Adds the credential (OAuth access token or API token) to a prepared request whose URL
    is under a trusted API base."""

    def __init__(self, session: MakeSession) -> None:
        self.session = session

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # An Authorization header the caller set (a Make API token, say) is theirs to send.
        if "Authorization" not in request.headers and self.session.takes_token(
                request.url or ""):
            request.headers["Authorization"] = self.session.authorization()
        return request


class MakeSession(Session):
    """An authenticated session for Make's API (``requests.Session`` + OAuth 2.0 tokens)."""

    def __init__(
        self,
        config: MakeConfig,
        metadata: ProviderMetadata | None = None,
        token: dict[str, Any] | None = None,
        *,
        id_claims: dict[str, Any] | None = None,
        zones: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.token: dict[str, Any] = {}
        self.auth = _Bearer(self)  # also keeps ~/.netrc credentials out of API requests
        self.headers["User-Agent"] = USER_AGENT
        adapter = listing.retrying_adapter()
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.config = config
        self.metadata = metadata
        self.id_claims: dict[str, Any] = dict(id_claims or {})
        self._status = "pending"
        #: "oauth" (a bearer access token from the login) or "api_token" (a Make API token,
        #: sent as ``Authorization: Token ...``; no refresh, no OpenID Connect).
        self.credential = "oauth"
        # Why no one can log in (a headless run without a usable login): raised on first use.
        self._unattended_error: MakeAuthError | None = None
        # How to finish a pending login, in the words of the front end that started it.
        self.pending_hint: str | None = None
        self._refresh_lock = threading.Lock()
        self._refresh_flights = 0  # refresh attempts finished (success or failure)
        self._refresh_failure: MakeError | None = None  # how the last attempt failed
        #: Where this login is remembered (``MakeAuth(remember=True)``: a ``cache.LoginStore``,
        #: the OS keychain or a 0600 file), or None. The session saves through it after every
        #: new token, refreshes inside its cross-process lock (adopting a token another kernel
        #: already refreshed) and deletes through it on logout.
        self.store: LoginStore | None = None
        self._token_listeners: list[Callable[[MakeSession], None]] = []
        self._logout_listeners: list[Callable[[MakeSession], None]] = []
        self._api_base = config.api_url
        # The API bases the access token may go to (each ends with "/"): the configured one
        # first, then Make zone bases the package routes requests to (_allow_token_base).
        self._token_bases: list[str] = [normalise_base(config.api_url)] if config.api_url \
            else []
        # Home-zone discovery candidates (zones=: a seam for tests and the sandbox); None:
        # Make's known zones in zones.HOME_ZONE_ORDER.
        self._zone_candidates = check_candidates(zones) if zones is not None else None
        self._home_lock = threading.Lock()
        self._zone_map = ZoneMap()
        self._rate_share = _env_rate_share()
        #: threads a fan-out runs at once (fan-outs, make.teams())
        self.workers = 6
        if token:
            self._activate(token, metadata, id_claims)

    # -- state ----------------------------------------------------------------------------

    @property
    def profile(self) -> str:
        return self.config.profile

    @property
    def logged_in(self) -> bool:
        return self._status == "active"

    @property
    def authorized(self) -> bool:
        """True while logged in (the name ``requests_oauthlib.OAuth2Session`` uses)."""
        return self.logged_in

    @property
    def pending(self) -> bool:
        return self._status == "pending"

    @property
    def api_url(self) -> str | None:
        """The API base that relative paths resolve against (ends with ``/``)."""
        return self._api_base

    @property
    def zone(self) -> str | None:
        """The zone host of the API base (``eu1.make.com``), when known."""
        return urlsplit(self._api_base).hostname if self._api_base else None

    @property
    def scopes(self) -> list[str]:
        """The granted scopes (the token response's ``scope``, else those requested)."""
        granted = (self.token or {}).get("scope")
        return parse_scopes(granted) if granted else list(self.config.scopes)

    @property
    def expires_at(self) -> float | None:
        value = (self.token or {}).get("expires_at")
        return float(value) if value is not None else None

    @property
    def expires_in(self) -> float | None:
        exp = self.expires_at
        return None if exp is None else exp - time.time()

    @property
    def can_refresh(self) -> bool:
        return bool((self.token or {}).get("refresh_token"))

    def add_token_listener(self, listener: Callable[[MakeSession], None]) -> None:
        """Call ``listener(session)`` after every new token (login, refresh)."""
        self._token_listeners.append(listener)

    def add_logout_listener(self, listener: Callable[[MakeSession], None]) -> None:
        self._logout_listeners.append(listener)

    def _activate(
        self,
        token: dict[str, Any],
        metadata: ProviderMetadata | None,
        id_claims: dict[str, Any] | None,
    ) -> None:
        self.token = token if isinstance(token, tokens.Token) else tokens.Token(token)
        if metadata is not None:
            self.metadata = metadata
        if id_claims is not None:
            self.id_claims = dict(id_claims)
        self._status = "active"
        registry.remember(self)
        self._notify_token()

    def use_api_token(self, token: str, *, source: str = "The API token") -> MakeSession:
        """Log this session in with a Make API token (``Authorization: Token <token>``).

        The token goes exactly where an OAuth access token would (``takes_token``): only under
        the API bases this session trusts, never to webhooks, look-alikes or other ports. It is
        never refreshed and is not revoked by ``logout()`` (revoke it in your Make profile).
        Needs a known API base (a zone or ``MAKE_API_URL``)."""
        value = check_api_token(token, source)
        if not self._api_base:
            raise MakeConfigError("An API token needs to know its zone: " + zones_hint())
        self.credential = "api_token"
        self._unattended_error = None
        self._activate(tokens.Token({"access_token": value, "token_type": API_TOKEN_SCHEME}),
                       None, {})
        return self

    def fail_unattended(self, error: MakeAuthError) -> None:
        """Nobody can complete a login here: every use of the session raises ``error``."""
        self._unattended_error = error
        self._status = "unattended"

    def authorization(self) -> str:
        """The ``Authorization`` header value: ``Bearer <access token>`` or, for an API token,
        ``Token <API token>``."""
        scheme = API_TOKEN_SCHEME if self.credential == "api_token" else "Bearer"
        return Secret(f"{scheme} {self.access_token()}")

    def _notify_token(self) -> None:
        if self.store is not None:
            self.store.save(self)
        for listener in list(self._token_listeners):
            listener(self)

    def __repr__(self) -> str:
        who = self.id_claims.get("sub")
        parts = [f"profile={self.profile!r}", f"status={self._status!r}"]
        if self.credential == "api_token":
            parts.append("credential='API token'")
        if who:
            parts.append(f"sub={who!r}")
        if self._api_base:
            parts.append(f"api_url={self._api_base!r}")
        if self.logged_in:
            parts.append(f"scopes={self.scopes!r}")
            left = self.expires_in
            if left is not None:
                parts.append(f"expires_in={max(0, int(left))}s")
        return f"<MakeSession {' '.join(parts)}>"

    # -- URLs -----------------------------------------------------------------------------

    def resolve_url(self, url: str | bytes) -> str:
        """An absolute URL: relative paths are taken below the API base.

        Without a configured zone, a logged-in session first finds its home zone: the known
        zones, in ``zones.HOME_ZONE_ORDER``, are asked for ``users/me`` and the first to
        answer is kept.
        """
        if isinstance(url, bytes):
            url = url.decode()
        if "://" in url:
            return url
        if not self._api_base and self.logged_in:
            self._discover_home()
        if not self._api_base:
            raise MakeConfigError(
                f"Don't know which Make zone to send {url!r} to. " + zones_hint()
            )
        return urljoin(self._api_base, url.lstrip("/"))

    def _discover_home(self) -> None:
        with self._home_lock:
            if self._api_base:
                return
            bases = self._zone_candidates
            if bases is None:
                if self.config.issuer.rstrip("/") != DEFAULT_ISSUER:
                    # A token from another authorization server (a sandbox, a test provider)
                    # is never tried on Make's real zones.
                    raise MakeConfigError(
                        "This login's issuer is not Make's, so its zone cannot be found by "
                        "asking Make's zones. " + zones_hint()
                    )
                bases = [api_base_of_zone(z) for z in HOME_ZONE_ORDER]
            authorization = self.authorization()
            tried = []
            for base in bases:
                host = urlsplit(base).netloc
                try:
                    with ratelimit.no_retries():
                        # only Make's zones (or the loopback zones passed as zones=) get here
                        resp = Session.request(
                            self, "GET", base + "users/me", timeout=PROBE_TIMEOUT,
                            allow_redirects=False, headers={"Authorization": authorization})
                except NETWORK_ERRORS:
                    tried.append(f"{host}: no answer")
                    continue
                body = json_body(resp)
                if resp.status_code == 200 and isinstance(body, dict) and "authUser" in body:
                    self._token_bases.insert(0, normalise_base(base))
                    self._api_base = base
                    return
                tried.append(f"{host}: HTTP {resp.status_code}")
        raise MakeConfigError(
            "No Make zone answered users/me for this login (" + "; ".join(tried) + "). "
            + zones_hint()
        )

    def _token_base_of(self, url: str) -> str | None:
        """The API base (of this login's zones) that ``url`` is below, if any."""
        for base in self._token_bases:
            if url.startswith(base):
                return base
        return None

    def takes_token(self, url: str) -> bool:
        """True when a request to ``url`` (as sent) carries the access token."""
        return any(under_base(url, base) for base in self._token_bases)

    def _allow_token_base(self, base: str) -> str:
        """Let the access token go under ``base`` too: a Make zone's API base
        (``https://eu2.make.com/api/v2/``), or a loopback one when the configured API base is
        itself on loopback (sandbox and test zones). Anything else raises ``MakeConfigError``.
        Returns the base as stored (normalised, ending with ``/``)."""
        loopback = bool(self._api_base) and is_loopback_url(self._api_base or "")
        normal = zone_base(base, allow_loopback=loopback)
        if normal not in self._token_bases:
            self._token_bases.append(normal)
        return normal

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        """On a redirect: an Authorization header follows only to a URL under an API base
        (requests itself keeps it on any redirect to the same host)."""
        sent = prepared_request.headers.pop("Authorization", None)
        if self.takes_token(prepared_request.url or ""):
            own = sent is not None and not isinstance(sent, Secret)  # the caller's, kept
            prepared_request.headers["Authorization"] = sent if own else \
                self.authorization()

    # -- tokens ---------------------------------------------------------------------------

    def _margin(self, token: dict[str, Any]) -> float:
        lifetime = token.lifetime if isinstance(token, tokens.Token) else None
        if lifetime is None:
            return MAX_REFRESH_MARGIN
        return max(0.0, min(MAX_REFRESH_MARGIN, lifetime * REFRESH_MARGIN_FRACTION))

    def _needs_refresh(self, token: dict[str, Any]) -> bool:
        exp = token.get("expires_at")
        if exp is None:
            return False
        return time.time() >= float(exp) - self._margin(token)

    @staticmethod
    def _still_valid(token: dict[str, Any]) -> bool:
        exp = token.get("expires_at")
        return exp is None or time.time() < float(exp) - 1.0

    def access_token(self) -> str:
        """A valid access token, refreshed first if it is about to expire."""
        if self._unattended_error is not None:
            raise self._unattended_error
        if self._status == "pending":
            raise LoginPendingError(self.profile, self.pending_hint)
        if self._status != "active":
            raise NotLoggedInError(self.profile, lead="This session was logged out.")
        token = self.token
        if self._needs_refresh(token):
            flights = self._refresh_flights
            with self._refresh_lock:  # single flight: waiters find the fresh token
                token = self.token
                if self._status != "active":
                    raise NotLoggedInError(self.profile, lead="This session was logged out.")
                failure = self._refresh_failure
                waited_for_failure = flights != self._refresh_flights and failure is not None
                if self._needs_refresh(token):
                    try:
                        if waited_for_failure:
                            # The refresh we waited for failed: share its outcome rather than
                            # send the same (maybe rotated) refresh token from every thread.
                            raise failure  # type: ignore[misc]
                        if token.get("refresh_token"):
                            self._refresh_locked(token)
                        elif time.time() >= float(token["expires_at"]):
                            raise LoginExpiredError(
                                self.profile,
                                "Make issued no refresh token for this client (public clients "
                                "usually get none).",
                            )
                    except MakeError as exc:
                        if isinstance(exc, LoginExpiredError) or not self._still_valid(token):
                            raise
                        # An early refresh failed (network, server) while the access token is
                        # still valid: keep using it; a later call tries to refresh again.
                token = self.token
        return Secret(token["access_token"])

    def refresh(self) -> None:
        """Refresh now (needs a refresh token)."""
        with self._refresh_lock:
            if self._status == "pending":
                raise LoginPendingError(self.profile, self.pending_hint)
            if self._status != "active":
                raise NotLoggedInError(self.profile, lead="This session was logged out.")
            if not self.can_refresh:
                raise LoginExpiredError(self.profile, "There is no refresh token to use.")
            self._refresh_locked(self.token, force=True)

    def _refresh_locked(self, token: dict[str, Any], *, force: bool = False) -> None:
        self._refresh_failure = None
        try:
            if self.store is None:
                self._refresh_once(token)
            else:
                self._refresh_guarded(token, force=force)
        except MakeError as exc:
            self._refresh_failure = exc
            raise
        finally:
            self._refresh_flights += 1

    def _refresh_guarded(self, token: dict[str, Any], *, force: bool) -> None:
        """Refresh while holding the guard; adopt a newer token another process got first.

        Two kernels restoring the same remembered login share one rotating refresh token: the
        second to refresh would replay a spent token, and the provider would end the grant.
        """
        assert self.store is not None
        with self.store.refresh_lock(self) as newer:
            if (
                isinstance(newer, dict)
                and newer.get("refresh_token")
                and newer.get("refresh_token") != token.get("refresh_token")
            ):
                token = tokens.Token(newer)
                if not force and not self._needs_refresh(token):
                    self.token = token
                    return
            self._refresh_once(token)

    def _drop_refresh_token(self, token: dict[str, Any]) -> None:
        """Forget a refresh token that must not be sent again (so no thread retries it)."""
        dead = tokens.Token(token)
        dead.pop("refresh_token", None)
        self.token = dead

    def _refresh_once(self, token: dict[str, Any]) -> None:
        meta = self._require_metadata()
        failure: MakeError | None = None
        try:
            new = tokens.refresh(self.config, meta.token_endpoint, token["refresh_token"])
        except MakeError as exc:
            failure = exc
        # Raised below, outside the except block: no chain to the frames under the call.
        if _spent(failure):
            # A successful answer we cannot use (unreadable, cut off, too large): the provider
            # may have spent the refresh token. Never send it again: keep the rotated one if
            # the answer held one, else the login ends here (the access token stays usable
            # until it expires).
            assert failure is not None
            rotated = getattr(failure, "rotated", None)
            if rotated:
                kept = tokens.Token(token)
                kept["refresh_token"] = rotated
                self.token = kept
                self._notify_token()
                raise failure
            self._drop_refresh_token(token)
            raise LoginExpiredError(
                self.profile, "Make's answer to the token refresh could not be used "
                f"({_why(failure)}), and the refresh token may be spent."
            )
        if isinstance(failure, TokenEndpointError):
            if failure.error in ("invalid_grant", "invalid_token"):
                # The grant is gone: drop the dead refresh token so no other thread retries it.
                self._drop_refresh_token(token)
                raise LoginExpiredError(
                    self.profile, f"Make refused the refresh token ({failure.error})."
                )
        if failure is not None:
            raise failure
        if "refresh_token" not in new:  # not rotated: keep the one we have
            new["refresh_token"] = token["refresh_token"]
        claims = self.id_claims
        if new.get("id_token") and self.config.wants_id_token:
            rejected: MakeError | None = None
            try:
                claims = verify_id_token(
                    new["id_token"], meta, self.config.client_id, nonce=None,
                    expected_sub=self.id_claims.get("sub"),
                )
            except MakeError as exc:
                rejected = exc
            if rejected is not None:
                # The refresh token was spent (and may have been rotated), and the answer is
                # refused: sending the old one again would be a replay, which makes a
                # provider revoke the whole grant. The login ends when the token expires.
                self._drop_refresh_token(token)
                raise rejected
        elif token.get("id_token"):
            new["id_token"] = token["id_token"]
        self.token = new
        self.id_claims = dict(claims)
        self._notify_token()

    def _require_metadata(self) -> ProviderMetadata:
        if self.metadata is None:
            from .oidc import discover

            self.metadata = discover(self.config.issuer)
        return self.metadata

    # -- requests -------------------------------------------------------------------------

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send a request; relative paths go to the API base, with the bearer token.

        A network failure raises ``MakeNetworkError`` (also a ``requests.ConnectionError``),
        with no chain to requests' frames, whose locals hold the request's headers.
        """
        if self._unattended_error is not None:
            raise self._unattended_error
        full = self.resolve_url(url)
        full, organization_id = self._zone_map.route(self, full, kwargs.get("params"))
        kwargs.setdefault("timeout", TIMEOUT)
        reason: str | None = None
        try:
            if organization_id is None:
                return super().request(method, full, *args, **kwargs)
            budget = ratelimit.budget(organization_id)
            # waiting for the budget (or, limit unknown, for a 429's pause) is not the network
            extend_deadline(budget.acquire())
            with ratelimit.sending_for(budget):
                return super().request(method, full, *args, **kwargs)
        except MakeNetworkError:
            raise
        except NETWORK_ERRORS as exc:
            reason = failure_reason(exc)
        raise MakeNetworkError("API", full, reason)

    # -- zones and rate budgets -------------------------------------------------------------

    @property
    def rate_share(self) -> float:
        """The share of each organization's API limit (``apiLimit`` requests per minute) this
        kernel uses: at most ``rate_share x apiLimit`` requests to it in any 60 seconds.
        Default ``MAKE_RATE_SHARE`` or 0.5, leaving the rest to the organization's other
        integrations; at most 1.0. Setting it re-sizes the budgets of the organizations whose
        limit this session knows."""
        return self._rate_share

    @rate_share.setter
    def rate_share(self, value: float) -> None:
        self._rate_share = _check_share(value, "rate_share")
        for org in list(self._zone_map.orgs.values()):
            if org.api_limit is not None and ratelimit.budget(org.id).configured_limit:
                self._apply_limit(org.id, org.api_limit)

    def rate_limit(self, organization_id: int, per_minute: int) -> None:
        """Tell the package an organization's API limit (its ``apiLimit``, requests per
        minute) instead of asking Make; the budget is ``rate_share`` of it."""
        if isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 1:
            raise ValueError(f"per_minute must be an integer >= 1, got {per_minute!r}")
        self._zone_map.set_api_limit(int(organization_id), per_minute)
        self._apply_limit(int(organization_id), per_minute)

    def _apply_limit(self, organization_id: int, api_limit: int) -> None:
        share = max(1, int(api_limit * self._rate_share))
        ratelimit.budget(organization_id).set_limit(share)

    def _ensure_budget(self, organization_id: int) -> None:
        """Give an organization's budget its limit, asking Make once if needed
        (``organizations/{id}`` on its zone, ``license.apiLimit``)."""
        budget = ratelimit.budget(organization_id)
        if budget.configured_limit is not None:
            return
        org = self._zone_map.organization(self, organization_id)
        limit = org.api_limit if org is not None else None
        if limit is None:
            try:
                with ratelimit.no_retries():
                    body = listing.get_json(self, f"organizations/{organization_id}")
            except MakeError:
                return
            license_ = (body or {}).get("organization", {}).get("license") \
                if isinstance(body, dict) else None
            value = license_.get("apiLimit") if isinstance(license_, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                limit = value
                self._zone_map.set_api_limit(organization_id, limit)
        if limit is not None and budget.configured_limit is None:
            self._apply_limit(organization_id, limit)

    def _listing_starts(self, path: str, params: Params) -> None:
        """A listing naming an organization starts: make sure its budget knows its limit."""
        try:
            full = self.resolve_url(path)
        except MakeError:
            return
        _, organization_id = self._zone_map.route(self, full, params)
        if organization_id is not None:
            self._ensure_budget(organization_id)

    # -- data -----------------------------------------------------------------------------

    def json(self, path: str, params: Params = None, *, method: str = "GET",
             **kwargs: Any) -> Any:
        """The parsed JSON answer of one call (``None`` for an empty answer).

        >>> make.json("users/me")["authUser"]["email"]

        A non-2xx answer raises ``MakeAPIError`` (``.status``, ``.code``, ``.message``,
        ``.detail``); a network failure ``MakeNetworkError``. 429 and 5xx answers to GET are
        retried first (bounded); a POST is never re-sent.
        """
        return listing.get_json(self, path, params, method=method, **kwargs)

    def pages(self, path: str, params: Params = None, *, key: str | None = None,
              page_size: int = listing.DEFAULT_PAGE_SIZE,
              max_items: int | None = None) -> Iterator[Page]:
        """The pages of a listing (``Page.items``, ``.offset``, ``.key``, ``.last``)."""
        return listing.iter_pages(self, path, params, key=key, page_size=page_size,
                                  max_items=max_items)

    def paginate(self, path: str, params: Params = None, *, key: str | None = None,
                 page_size: int = listing.DEFAULT_PAGE_SIZE,
                 max_items: int | None = None, per: str | None = None,
                 workers: int | None = None) -> Iterator[Any]:
        """Every item of a listing, across Make's ``pg[offset]``/``pg[limit]`` pages.

        >>> for s in make.paginate("scenarios", {"teamId": 1}, max_items=500): ...

        Pages are requested lazily, ``page_size`` items at a time (capped at Make's maximum,
        10,000), until a short page or ``max_items``. The list's key (``"scenarios"``) is the
        one list-valued key beside ``pg`` unless ``key`` names it. Errors raise
        ``MakeAPIError``.

        ``per="team"`` (or ``"organization"``) runs the listing for every team (organization)
        of the login, ``workers`` at a time, and yields the items with ``organizationId``,
        ``teamId`` and ``zone`` added, in a fixed order (see :meth:`frame`); ``max_items``
        then applies to each team.
        """
        if per is not None:
            from . import fanout

            return fanout.items(self, path, params, per=per, key=key, page_size=page_size,
                                max_items=max_items, workers=workers)
        return listing.paginate(self, path, params, key=key, page_size=page_size,
                                max_items=max_items)

    def frame(self, path: str, params: Params = None, *, key: str | None = None,
              page_size: int = listing.DEFAULT_PAGE_SIZE, max_items: int | None = None,
              progress: bool | None = None, per: str | None = None,
              workers: int | None = None) -> pd.DataFrame:
        """A listing as a pandas DataFrame (nested fields flattened to ``a.b`` columns).

        >>> make.frame("scenarios", {"teamId": 1})
        >>> make.frame("scenarios", per="team")      # every team of every organization

        An empty listing gives an empty frame. ``progress=None`` shows a progress bar in a
        notebook or terminal when the listing spans more than one page; ``False`` never,
        ``True`` always.

        ``per="team"`` runs the listing for every team the login can see (``"organization"``:
        for every organization), ``workers`` at a time (default ``self.workers``), each on
        its organization's zone and within its rate budget, and adds ``organizationId``,
        ``teamId`` and ``zone`` columns. Rows come by organization, team, then the API's
        order. Teams the login may not read (SC403) are skipped and named in one warning;
        other errors raise. An ``organizationId`` in ``params`` keeps to that organization.
        """
        from . import frames

        if per is not None:
            return frames.fanout_frame(self, path, params, per=per, key=key,
                                       page_size=page_size, max_items=max_items,
                                       workers=workers, progress=progress)
        return frames.listing_frame(
            self.pages(path, params, key=key, page_size=page_size, max_items=max_items),
            progress=progress, total=max_items, desc=path,
        )

    def orgs(self) -> pd.DataFrame:
        """The login's organizations: ``id``, ``name``, ``zone``, ``apiLimit`` (where known).

        Listed once per session; requests naming them go to their zones from then on.
        """
        from .frames import orgs_frame

        return orgs_frame(self)

    def teams(self, *, workers: int | None = None) -> pd.DataFrame:
        """Every team of every organization: ``id``, ``name``, ``organizationId``, ``zone``."""
        from .frames import teams_frame

        return teams_frame(self, workers=workers)

    # -- OpenID Connect -------------------------------------------------------------------

    def userinfo(self) -> dict[str, Any]:
        """The OIDC userinfo claims: access token as bearer first, the ID token if refused.

        An API token has no OpenID Connect: the same claims (``sub``, ``name``, ``email``,
        ``locale``, ``zoneinfo``) are read from the API's ``users/me``."""
        if self.credential == "api_token":
            return self._userinfo_from_users_me()
        meta = self._require_metadata()
        endpoint = meta.userinfo_endpoint
        if not endpoint:
            raise MakeAuthError("This provider has no userinfo endpoint.")
        resp = call("GET", endpoint, "userinfo",
                    headers={"Authorization": Secret("Bearer " + self.access_token())})
        id_token = (self.token or {}).get("id_token")
        if resp.status_code in (401, 403) and id_token:
            resp = call("GET", endpoint, "userinfo",
                        headers={"Authorization": Secret("Bearer " + id_token)})
        body = json_body(resp)
        if resp.status_code != 200 or not isinstance(body, dict):
            if resp.status_code in (401, 403):
                hint = "The login may have been revoked: log in again."
            elif resp.status_code == 200:
                hint = "Its answer is not the JSON claims this package reads."
            else:
                hint = ("Try again later; if it persists, check the issuer setting "
                        "(MAKE_ISSUER).")
            raise ProviderResponseError("userinfo", endpoint,
                                        f"it answered HTTP {resp.status_code}", hint)
        sub = self.id_claims.get("sub")
        if sub is not None and body.get("sub") != sub:
            raise ProviderResponseError(
                "userinfo", endpoint, "it names another user than the ID token; refused")
        return body

    def _userinfo_from_users_me(self) -> dict[str, Any]:
        body = listing.get_json(self, "users/me")
        user = body.get("authUser") if isinstance(body, dict) else None
        if not isinstance(user, dict) or user.get("id") is None:
            raise MakeAuthError("The API's users/me answer has no authUser: this package "
                                "cannot tell who the API token belongs to.")
        claims: dict[str, Any] = {"sub": str(user["id"])}
        for claim, key in (("name", "name"), ("email", "email"), ("locale", "locale"),
                           ("zoneinfo", "timezone")):
            if user.get(key) is not None:
                claims[claim] = user[key]
        return claims

    @property
    def userinfo_source(self) -> str:
        """Where ``userinfo()`` reads the claims: ``"OIDC userinfo"`` or ``"users/me"``."""
        return "users/me (API token)" if self.credential == "api_token" else "OIDC userinfo"

    # -- logout ---------------------------------------------------------------------------

    def logout(self) -> bool:
        """Revoke the refresh and access tokens, then forget the session.

        Returns True when the provider revoked everything. If revocation fails, the session is
        still logged out locally and a ``RevocationWarning`` says what could not be revoked.
        An API token is only forgotten here (returns False): Make revokes API tokens in the
        user's profile (API access), not through OAuth.
        """
        api_token = self.credential == "api_token"
        with self._refresh_lock:
            token = tokens.Token(self.token or {})
            was_active = self._status == "active"
            self._status = "logged_out"
            self.token = {}
            self.id_claims = {}
            registry.forget(self.profile, self)
        # Whatever keeps this profile's login (this session's store, or an older remembered
        # copy in the file or the keychain) must not bring it back through get_session().
        from . import cache  # persistence is an edge: imported only when needed

        if self.store is not None:
            self.store.delete(self.profile)
        cache.forget_everywhere(self.profile)
        if api_token:
            for listener in list(self._logout_listeners):
                listener(self)
            return False
        problems: list[str] = []
        if was_active:
            endpoint: str | None = None
            try:  # a restored session has not discovered the provider yet
                endpoint = self._require_metadata().revocation_endpoint
            except MakeError as exc:
                problems.append(str(exc))
            if endpoint is None:
                if not problems:
                    problems.append("the provider has no revocation endpoint")
            else:
                for kind in ("refresh_token", "access_token"):
                    value = token.get(kind)
                    if value:
                        reason = tokens.revoke(self.config, endpoint, value, kind)
                        if reason:
                            problems.append(f"{kind.replace('_', ' ')}: {reason}")
        for listener in list(self._logout_listeners):
            listener(self)
        if problems:
            warnings.warn(
                RevocationWarning(
                    "Logged out locally, but Make could not revoke every token ("
                    + "; ".join(problems) + "). Tokens not revoked stay valid until they "
                    "expire; to cut them off, remove the app's access in your Make profile."
                ),
                stacklevel=2,
            )
            return False
        return True
