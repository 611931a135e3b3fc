"""``MakeAuth``: start a PKCE + OpenID Connect login to Make and finish it with the pasted reply.

Protocol logic only: no printing, no widgets. Front ends (the login panel, the magics, the
loopback listener) call :meth:`MakeAuth.start` and :meth:`MakeAuth.finish`. Persistence
(``remember=True``) is a store object from ``cache.py`` (the OS keychain or a 0600 file),
imported only when asked for.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import tokens
from .config import MakeConfig
from .errors import (
    AuthorizationDeniedError,
    AuthorizationResponseError,
    IDTokenError,
    IssuerMismatchError,
    LoginExpiredError,
    MakeConfigError,
    MakeError,
    RememberedLoginWarning,
    StateMismatchError,
)
from .flow import AuthorizationReply, AuthorizationRequest, parse_reply
from .oidc import ProviderMetadata, discover, verify_id_token
from .secret import Secret
from .session import MakeSession

if TYPE_CHECKING:
    from .cache import LoginStore

MAX_PENDING = 8  # start() calls whose links may still be completed


class MakeAuth:
    """One login to Make for one profile.

    >>> auth = MakeAuth()                       # settings from MAKE_* environment variables
    >>> request = auth.start()                  # open request.url, approve
    >>> make = auth.finish(pasted_redirect_url)  # a MakeSession
    >>> make.get("users/me").json()

    ``zone`` is the Make zone of the API (the host in the address bar of Make's dashboard):
    ``eu1.make.com``, ``eu2.make.com``, ``us1.make.com``, ``us2.make.com``,
    ``eu1.make.celonis.com`` or ``us1.make.celonis.com``; short forms (``"eu1"``) and URLs work
    too. ``api_url`` overrides it with a full API base. The login itself always goes to the
    ``issuer`` (``https://www.make.com``). With neither, the session finds the home zone after
    the login: the known zones are asked for ``users/me`` in ``zones.HOME_ZONE_ORDER`` and
    the first to answer is kept. ``zones`` replaces that list of candidates; it is a seam for
    tests and the sandbox (loopback zones such as ``127.0.0.1:PORT``), not for daily use.

    ``profile`` names the login, so that several (two accounts, two zones) live side by side:
    ``get_session("work")``. ``remember=True`` keeps the tokens on disk (never the client
    secret) so that a restarted kernel logs in again without the browser: ``MakeAuth(...,
    remember=True)`` picks up the remembered login at once (``auth.session.logged_in``), and
    ``get_session(profile)`` restores it with the client settings from the environment.
    Logging out deletes it. See ``cache.py``.
    """

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        scopes: str | Iterable[str] | None = None,
        redirect_uri: str | None = None,
        zone: str | None = None,
        issuer: str | None = None,
        api_url: str | None = None,
        profile: str = "default",
        remember: bool = False,
        zones: Sequence[str] | None = None,
        store: LoginStore | None = None,
    ) -> None:
        self.remember = bool(remember) or store is not None
        #: where ``remember=True`` keeps the login (``cache.default_store()`` unless given):
        #: the OS keychain or a 0600 file; None when not remembering
        self.store: LoginStore | None = store
        #: a one-time sentence saying which store is used (front ends show it), or None
        self.store_notice: str | None = None
        if self.remember and self.store is None:
            from . import cache

            self.store = cache.default_store()
            self.store_notice = cache.notice(self.store)
            if self.store_notice:
                logging.getLogger("make_notebook_auth").info(self.store_notice)
        self._zones = list(zones) if zones is not None else None
        self.config = MakeConfig.resolve(
            client_id,
            client_secret,
            scopes=scopes,
            redirect_uri=redirect_uri,
            zone=zone,
            issuer=issuer,
            api_url=api_url,
            profile=profile,
        )
        self._metadata: ProviderMetadata | None = None
        self._pending: dict[str, AuthorizationRequest] = {}
        self._completed: set[str] = set()
        self._lock = threading.RLock()
        self.session = self._new_session()  # pending until finish() succeeds
        if self.remember:
            self._restore_quietly()

    @classmethod
    def from_api_token(
        cls,
        token: str | None = None,
        *,
        zone: str | None = None,
        api_url: str | None = None,
        profile: str = "default",
    ) -> MakeSession:
        """A logged-in ``MakeSession`` that sends a Make API token (``Authorization: Token
        ...``) instead of an OAuth access token: no browser, no client, no refresh.

        >>> make = MakeAuth.from_api_token(zone="eu1")   # the token from MAKE_API_TOKEN
        >>> make.json("users/me")

        ``token`` defaults to ``MAKE_API_TOKEN`` (in Colab, also its secret of that name).
        A zone (``zone``/``MAKE_ZONE``) or API base (``api_url``/``MAKE_API_URL``) is needed:
        an API token is made in one zone. Everything else is as for an OAuth login: relative
        paths, ``json``/``paginate``/``frame``, retries, zones, profiles, and the same host
        rules (the token never goes to webhooks, look-alike hosts or other ports).
        ``logout()`` forgets it in this kernel; revoke it in your Make profile.
        """
        from .config import API_TOKEN_ENV, colab_hint, setting

        source = "The API token"
        if token is None:
            token = setting(API_TOKEN_ENV)
            source = API_TOKEN_ENV
            if token is None:
                raise MakeConfigError(
                    f"No Make API token: {API_TOKEN_ENV} is not set. Create one in your Make "
                    f"profile (API access), then set {API_TOKEN_ENV} in the environment the "
                    "kernel starts with (never in the notebook)." + colab_hint())
        config = MakeConfig.for_api_token(zone=zone, api_url=api_url, profile=profile)
        return MakeSession(config).use_api_token(token, source=source)

    def __repr__(self) -> str:
        kind = "confidential" if self.config.confidential else "public"
        return (
            f"MakeAuth(client_id={self.config.client_id!r} ({kind}), "
            f"issuer={self.config.issuer!r}, profile={self.config.profile!r}, "
            f"scopes={list(self.config.scopes)!r}"
            + (", remember=True)" if self.remember else ")")
        )

    def _new_session(self) -> MakeSession:
        session = MakeSession(self.config, zones=self._zones)
        if self.store is not None:
            self.store.attach(session)
        return session

    def _restore_quietly(self) -> None:
        """``remember=True``: pick up the login remembered on disk, if any (else stay pending).

        A remembered login that expired for good is forgotten; one that cannot be refreshed now
        (network trouble) is reported with a ``RememberedLoginWarning``: log in as usual.
        """
        try:
            self.restore()
        except LoginExpiredError:
            pass
        except MakeError as exc:
            warnings.warn(RememberedLoginWarning(
                f"The remembered Make login of profile {self.profile!r} could not be restored "
                f"now ({exc}); log in again."), stacklevel=3)

    def restore(self) -> MakeSession | None:
        """The login remembered on disk for this profile, issuer and client, or None.

        Refreshes the access token if it is about to expire. A remembered login that has
        expired for good raises ``LoginExpiredError`` (and is forgotten). Works whatever
        ``remember`` is; the restored session keeps its file up to date after refreshes.
        """
        from . import cache

        store = self.store or cache.default_store()
        with self._lock:
            session = store.restore(self.config)
            if session is not None:
                self.session = session
            return session

    @property
    def profile(self) -> str:
        return self.config.profile

    @property
    def metadata(self) -> ProviderMetadata:
        """The provider's endpoints (OIDC discovery, once per issuer per process)."""
        if self._metadata is None:
            self._metadata = discover(self.config.issuer)
        return self._metadata

    def set_client_secret(self, secret: str | None) -> None:
        """Use ``secret`` from now on (a secret typed into the login panel, never on a line).

        The pending session takes it too, so it refreshes and revokes as a confidential client.
        """
        with self._lock:
            self.config = dataclasses.replace(self.config, client_secret=secret or None)
            if not self.session.logged_in:
                self.session.config = self.config

    @property
    def pending(self) -> AuthorizationRequest | None:
        """The most recent request still waiting for its reply."""
        with self._lock:
            return next(reversed(self._pending.values()), None)

    def is_pending(self, state: str) -> bool:
        with self._lock:
            return state in self._pending

    def start(self, **extra: str) -> AuthorizationRequest:
        """A new authorization request: open its ``url`` in a browser and approve."""
        meta = self.metadata
        request = AuthorizationRequest.create(
            meta.authorization_endpoint,
            self.config.client_id,
            self.config.redirect_uri,
            self.config.scopes,
            extra=extra or None,
        )
        with self._lock:
            self._pending[request.state] = request
            while len(self._pending) > MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
        return request

    def _match(self, reply: AuthorizationReply) -> AuthorizationRequest:
        with self._lock:
            if reply.state is not None:
                for state, request in self._pending.items():
                    if hmac.compare_digest(state.encode(), reply.state.encode()):
                        return request
                if any(hmac.compare_digest(s.encode(), reply.state.encode())
                       for s in self._completed):
                    raise AuthorizationResponseError(
                        "This reply was already used: the login it belongs to is complete."
                    )
                raise StateMismatchError(
                    "This reply does not belong to the pending login (its 'state' does not "
                    "match). Paste the address from the tab opened with the current link, or "
                    "open the current link again."
                )
            request = self.pending
            if request is None:
                raise AuthorizationResponseError(
                    "No login is in progress: call start() (or run the login cell) first."
                )
            return request

    def finish(self, reply: str) -> MakeSession:
        """Complete the login with what the user pasted; returns the logged-in ``MakeSession``.

        On any failure the pending request stays usable: fix the paste, or open the link again
        and paste the new reply.
        """
        reply = Secret(reply) if isinstance(reply, str) else reply  # masked in tracebacks
        parsed = parse_reply(reply)
        with self._lock:
            request = self._match(parsed)
            if parsed.error:
                raise AuthorizationDeniedError(parsed.error, parsed.error_description)
            meta = self.metadata
            if parsed.iss is not None:
                if not hmac.compare_digest(parsed.iss.rstrip("/").encode(),
                                           meta.issuer.rstrip("/").encode()):
                    raise IssuerMismatchError(
                        "The reply comes from another authorization server than the one this "
                        "login was started with ('iss' mismatch). Open the link shown for this "
                        "login again."
                    )
            elif parsed.from_redirect and meta.iss_parameter_supported:
                raise IssuerMismatchError(
                    "The pasted address lacks the 'iss' parameter that this provider always "
                    "sends. Copy the whole address from the browser's address bar."
                )
            assert parsed.code is not None
            token = tokens.exchange_code(
                self.config,
                meta.token_endpoint,
                code=parsed.code,
                code_verifier=request._code_verifier,
                redirect_uri=request.redirect_uri,
            )
            claims: dict[str, Any] = {}
            if self.config.wants_id_token:
                id_token = token.get("id_token")
                if not id_token:
                    raise IDTokenError("missing", "the token response has no ID token although "
                                                  "'openid' was requested")
                claims = verify_id_token(
                    id_token, meta, self.config.client_id, nonce=request._nonce
                )
            session = self.session
            if session.logged_in or not session.pending:
                session = self.session = self._new_session()
            self._completed.update(self._pending)
            self._pending.clear()
        session._activate(token, meta, claims)
        return session
