"""The sandbox's registered clients and its in-memory, thread-safe storage of authorization
codes and tokens, shaped for Authlib's server-side mixins."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, list_to_scope, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin

from .data import DemoUser, find_user

DEFAULT_REDIRECT_URIS: tuple[str, ...] = (
    "http://127.0.0.1:8765/callback",
    "http://127.0.0.1:8766/callback",
    "https://app.example.test/callback",
)

PUBLIC_CLIENT_ID = "sandbox-public"
CONFIDENTIAL_CLIENT_ID = "sandbox-confidential"
SHORT_PUBLIC_CLIENT_ID = "sandbox-public-short"
SHORT_CONFIDENTIAL_CLIENT_ID = "sandbox-confidential-short"

#: Authorization codes live this long (seconds) and are single-use.
CODE_TTL = 60
#: Refresh tokens live this long (seconds) unless rotated or revoked first.
REFRESH_TOKEN_TTL = 30 * 24 * 3600


def _loopback_key(uri: str) -> tuple[str, str, str] | None:
    """``http://127.0.0.1:PORT/path`` (or ``[::1]``) without its port, else None."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "::1") or not port \
            or parts.username is not None or parts.password is not None or parts.fragment:
        return None
    return parts.hostname, parts.path, parts.query


@dataclass
class SandboxClient(ClientMixin):
    """A registered OAuth client. ``client_secret`` is None for a public client (PKCE only)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    access_token_ttl: int = 3600
    name: str = "Sandbox client"
    allowed_scopes: frozenset[str] | None = None  # None: every scope the server supports

    @property
    def is_public(self) -> bool:
        return self.client_secret is None

    @property
    def token_endpoint_auth_method(self) -> str:
        return "none" if self.is_public else "client_secret_post"

    @property
    def grant_types(self) -> tuple[str, ...]:
        # Like Make: confidential clients get refresh tokens, public clients do not.
        if self.is_public:
            return ("authorization_code",)
        return ("authorization_code", "refresh_token")

    # -- Authlib ClientMixin -------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        wanted = scope_to_list(scope) or []
        allowed = [s for s in dict.fromkeys(wanted)
                   if self.allowed_scopes is None or s in self.allowed_scopes]
        return str(list_to_scope(allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if redirect_uri in self.redirect_uris:
            return True
        # RFC 8252, 7.3: a loopback IP redirect URI is registered without its port (the client
        # listens on whatever port is free at the time).
        key = _loopback_key(redirect_uri)
        return key is not None and key in {_loopback_key(u) for u in self.redirect_uris}

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None:
            return False
        return secrets.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def default_clients(access_token_ttl: int = 3600, short_ttl: int = 4,
                    redirect_uris: Iterable[str] = DEFAULT_REDIRECT_URIS
                    ) -> list[SandboxClient]:
    """The four standard clients, with fresh secrets for the confidential ones."""
    uris = tuple(dict.fromkeys(redirect_uris))
    return [
        SandboxClient(PUBLIC_CLIENT_ID, None, uris, access_token_ttl,
                      "Sandbox notebook (public client)"),
        SandboxClient(CONFIDENTIAL_CLIENT_ID, secrets.token_urlsafe(32), uris, access_token_ttl,
                      "Sandbox notebook (confidential client)"),
        SandboxClient(SHORT_PUBLIC_CLIENT_ID, None, uris, short_ttl,
                      "Sandbox notebook (public, short-lived tokens)"),
        SandboxClient(SHORT_CONFIDENTIAL_CLIENT_ID, secrets.token_urlsafe(32), uris, short_ttl,
                      "Sandbox notebook (confidential, short-lived tokens)"),
    ]


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str = field(repr=False)
    client_id: str
    redirect_uri: str
    scope: str
    user_key: str
    grant_id: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    nonce: str | None = None
    auth_time: int = 0
    expires_at: float = 0.0
    used: bool = False

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def is_expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


@dataclass
class Token(TokenMixin):
    """One token response: an access token, maybe a refresh token and an ID token."""

    client_id: str
    user_key: str
    scope: str
    grant_id: str
    access_token: str = field(repr=False)
    expires_in: int
    issued_at: float
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    access_revoked: bool = False
    refresh_revoked: bool = False

    @property
    def expires_at(self) -> float:
        return self.issued_at + self.expires_in

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(scope_to_list(self.scope) or [])

    @property
    def user(self) -> DemoUser | None:
        return find_user(self.user_key)

    def check_client(self, client: ClientMixin) -> bool:
        return bool(self.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> DemoUser | None:
        return self.user

    def is_refresh_usable(self) -> bool:
        return (self.refresh_token is not None and not self.refresh_revoked
                and time.time() < self.issued_at + REFRESH_TOKEN_TTL)


class Store:
    """Clients, codes and tokens in memory; every method is safe to call from any thread."""

    def __init__(self, clients: Sequence[SandboxClient]) -> None:
        self._lock = threading.RLock()
        self.clients: dict[str, SandboxClient] = {c.client_id: c for c in clients}
        self._codes: dict[str, AuthorizationCode] = {}
        self._by_access: dict[str, Token] = {}
        self._by_refresh: dict[str, Token] = {}
        self._by_id_token: dict[str, Token] = {}

    def client(self, client_id: str | None) -> SandboxClient | None:
        return self.clients.get(client_id or "")

    # -- codes -----------------------------------------------------------------------------
    def add_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._drop_stale_codes()
            self._codes[code.code] = code

    def claim_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """Return the code and mark it used, atomically. A code seen a second time ends every
        token issued from it (RFC 6749 section 4.1.2) and is refused."""
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.client_id != client_id:
                return None
            if record.used:
                self.revoke_grant(record.grant_id)
                return None
            record.used = True
            if record.is_expired():
                return None
            return record

    def _drop_stale_codes(self) -> None:
        horizon = time.time() - 10 * CODE_TTL
        for key in [k for k, c in self._codes.items() if c.expires_at < horizon]:
            del self._codes[key]

    # -- tokens ----------------------------------------------------------------------------
    def add_token(self, token: Token) -> None:
        with self._lock:
            self._by_access[token.access_token] = token
            if token.refresh_token:
                self._by_refresh[token.refresh_token] = token

    def attach_id_token(self, access_token: str, id_token: str) -> None:
        with self._lock:
            token = self._by_access.get(access_token)
            if token is not None:
                token.id_token = id_token
                self._by_id_token[id_token] = token

    def by_access_token(self, value: str) -> Token | None:
        with self._lock:
            return self._by_access.get(value)

    def by_refresh_token(self, value: str) -> Token | None:
        with self._lock:
            return self._by_refresh.get(value)

    def by_id_token(self, value: str) -> Token | None:
        with self._lock:
            return self._by_id_token.get(value)

    def use_refresh_token(self, value: str) -> Token | None:
        """The token record for a usable refresh token. Presenting a refresh token that was
        already rotated away ends the whole grant (replay detection)."""
        with self._lock:
            token = self._by_refresh.get(value)
            if token is None:
                return None
            if token.refresh_revoked:
                self.revoke_grant(token.grant_id)
                return None
            return token if token.is_refresh_usable() else None

    def claim_refresh(self, token: Token) -> bool:
        """Rotate ``token``'s refresh token away; False if another request already did."""
        with self._lock:
            if token.refresh_revoked:
                return False
            token.refresh_revoked = True
            return True

    def revoke_access(self, token: Token) -> None:
        with self._lock:
            token.access_revoked = True

    def revoke_grant(self, grant_id: str) -> None:
        """End every access and refresh token issued under one grant (one authorization)."""
        with self._lock:
            for token in self._by_access.values():
                if token.grant_id == grant_id:
                    token.access_revoked = True
                    token.refresh_revoked = True

    def active_access_token(self, value: str) -> Token | None:
        token = self.by_access_token(value)
        if token is None or token.is_revoked() or token.is_expired():
            return None
        return token
