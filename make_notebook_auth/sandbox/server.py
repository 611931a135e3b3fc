"""The sandbox's OAuth 2.0 / OpenID Connect authorization server, built on Authlib's
framework-agnostic server classes and served from plain WSGI.

Routes (Make's layout): ``/.well-known/openid-configuration``, ``/oauth/v2/authorize``,
``/oauth/v2/token``, ``/oauth/v2/oidc/jwks``, ``/oauth/v2/oidc/userinfo``, ``/oauth/v2/revoke``.

* Authorization code grant with OpenID Connect (RS256 ID tokens, ``nonce`` echoed) and PKCE.
  Public clients must send an S256 ``code_challenge``: the authorize endpoint itself refuses
  them otherwise (Authlib alone only checks at the token endpoint and accepts ``plain``).
* Codes are single-use and expire after :data:`~.models.CODE_TTL` seconds; replaying a code ends
  the tokens issued from it.
* Confidential clients (``client_secret_post``) get refresh tokens that rotate; a rotated-away
  refresh token is refused (and its replay ends the grant). Revoking a refresh token ends the
  access tokens of its grant.
* Authorization responses carry ``iss`` (RFC 9207).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    AuthorizationServer,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    RefreshTokenGrant,
    ResourceProtector,
    scope_to_list,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from .data import DEMO_USERS, DemoUser, find_user
from .faults import FaultInjector
from .models import CODE_TTL, AuthorizationCode, SandboxClient, Store, Token
from .pages import consent_page, error_page
from .wsgi import Request, Response

#: Make's API scopes (White Label only ``admin:*``, ``apps:*``, ``system:*`` left out).
MAKE_SCOPES: tuple[str, ...] = (
    "analytics:read", "connections:read", "connections:write",
    "custom-property-structures:read", "custom-property-structures:write",
    "datastores:read", "datastores:write", "devices:read", "devices:write",
    "dlqs:read", "dlqs:write", "functions:read", "functions:write", "hooks:read", "hooks:write",
    "keys:read", "keys:write", "notifications:read", "notifications:write",
    "organizations:read", "organizations:write", "organization-variables:read",
    "organization-variables:write", "scenarios:read", "scenarios:write", "scenarios:run",
    "sdk-apps:read", "sdk-apps:write", "teams:read", "teams:write", "team-variables:read",
    "team-variables:write", "templates:read", "templates:write", "udts:read", "udts:write",
    "user:read", "user:write",
)
SCOPES_SUPPORTED: tuple[str, ...] = ("openid", *MAKE_SCOPES)

AUTHORIZE_PATH = "/oauth/v2/authorize"
TOKEN_PATH = "/oauth/v2/token"
JWKS_PATH = "/oauth/v2/oidc/jwks"
USERINFO_PATH = "/oauth/v2/oidc/userinfo"
REVOKE_PATH = "/oauth/v2/revoke"
DISCOVERY_PATH = "/.well-known/openid-configuration"

#: Authlib's server-side loggers that write whole token responses at DEBUG level.
_TOKEN_LOGGING_LOGGERS = tuple(
    [f"authlib.oauth2.rfc6749.grants.{name}" for name in (
        "authorization_code", "refresh_token", "implicit", "client_credentials",
        "resource_owner_password_credentials")]
    + ["authlib.oauth2.rfc6749.authenticate_client", "authlib.oidc.core.grants.implicit",
       "authlib.oidc.core.grants.hybrid", "authlib.oidc.core.grants.code"])


def _drop_debug_records(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


for _name in _TOKEN_LOGGING_LOGGERS:
    logging.getLogger(_name).addFilter(_drop_debug_records)

#: How long a rendered sign-in form may be submitted (seconds).
CONSENT_FORM_TTL = 900
_FORM_ONLY_FIELDS = ("user", "decision", "consent")


def normalize_scope(value: str | None) -> str | None:
    """Make accepts comma- as well as space-separated scopes."""
    if value is None:
        return None
    return " ".join(value.replace(",", " ").split())


def new_signing_key() -> RSAKey:
    """A fresh RSA key for RS256 ID tokens (one per sandbox start)."""
    params: dict[str, Any] = {"kid": "sandbox-" + secrets.token_hex(8), "use": "sig",
                              "alg": "RS256"}
    key: RSAKey = RSAKey.generate_key(2048, parameters=params, private=True)  # type: ignore[arg-type]
    return key


# -- requests ------------------------------------------------------------------------------
class _Payload(OAuth2Payload):
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, items in values.items():
            self._datalist[key].extend(items)
        self._data = {k: v[0] for k, v in self._datalist.items() if v}
        if "scope" in self._data:
            self._data["scope"] = normalize_scope(self._data["scope"]) or ""

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class SandboxOAuth2Request(OAuth2Request):
    """Authlib's request view of a sandbox WSGI request.

    The URI is built from the sandbox's own loopback issuer, never from the ``Host`` header,
    so requests that arrive through a proxy are treated the same."""

    def __init__(self, method: str, base_url: str, path: str, query_string: str,
                 query: dict[str, list[str]], form: dict[str, list[str]], headers: Any) -> None:
        uri = base_url + path + (f"?{query_string}" if query_string else "")
        super().__init__(method, uri, headers=headers)
        self._args = {k: v[0] for k, v in query.items() if v}
        self._form = {k: v[0] for k, v in form.items() if v}
        merged: dict[str, list[str]] = {k: list(v) for k, v in query.items()}
        for key, items in form.items():
            merged.setdefault(key, []).extend(items)
        self.payload = _Payload(merged)

    @classmethod
    def from_request(cls, req: Request, base_url: str) -> SandboxOAuth2Request:
        return cls(req.method, base_url, req.path, req.query_string, req.query, req.form,
                   req.headers)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# -- grants and extensions -----------------------------------------------------------------
class _AuthorizationCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post", "none"]

    @property
    def store(self) -> Store:
        return self.server.store  # type: ignore[no-any-return]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        now = time.time()
        self.store.add_code(AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri or "",
            scope=request.scope or "",
            user_key=request.user.key,
            grant_id=secrets.token_hex(12),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            nonce=data.get("nonce"),
            auth_time=int(now),
            expires_at=now + CODE_TTL,
        ))

    def query_authorization_code(self, code: str, client: SandboxClient
                                 ) -> AuthorizationCode | None:
        return self.store.claim_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Already marked used, atomically, when it was claimed.
        return None

    def authenticate_user(self, authorization_code: AuthorizationCode) -> DemoUser | None:
        return find_user(authorization_code.user_key)


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only, required of public clients at the authorize endpoint."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        request = grant.request
        challenge = request.payload.data.get("code_challenge")
        method = request.payload.data.get("code_challenge_method")
        if getattr(request.client, "is_public", False) and not challenge:
            raise InvalidRequestError(
                "PKCE is required: send a code_challenge with code_challenge_method=S256.")
        if challenge and (method or "plain") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIDCode(OpenIDCode):
    def __init__(self, server: SandboxAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self._server = server

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        # The nonce is echoed in the ID token for the client to check; a repeated approval of
        # the same sign-in page must not fail, so no server-side replay check here.
        return False

    def resolve_client_private_key(self, client: SandboxClient) -> RSAKey:
        return self._server.signing_key

    def get_client_algorithm(self, client: SandboxClient) -> str:
        return "RS256"

    def get_client_claims(self, client: SandboxClient) -> dict[str, Any]:
        return {"iss": self._server.issuer, "aud": client.get_client_id()}

    def get_encode_header(self, client: SandboxClient) -> dict[str, Any]:
        return {"alg": "RS256", "kid": self._server.signing_key.kid, "typ": "JWT"}

    def generate_user_info(self, user: DemoUser, scope: str) -> UserInfo:
        return UserInfo(user.claims())

    def process_token(self, grant: Any, response: Any) -> Any:
        token = super().process_token(grant, response)
        if token.get("id_token"):
            self._server.store.attach_id_token(token["access_token"], token["id_token"])
        return token


class _RefreshTokenGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def store(self) -> Store:
        return self.server.store  # type: ignore[no-any-return]

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        return self.store.use_refresh_token(refresh_token)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        # Rotate before issuing, atomically, so two concurrent refreshes cannot both succeed.
        if not self.store.claim_refresh(self.request.refresh_token):
            raise InvalidGrantError()

    def authenticate_user(self, refresh_token: Token) -> DemoUser | None:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        return None  # rotated in validate_token_request


@dataclass
class _FoundToken:
    token: Token
    kind: str  # "access_token" or "refresh_token"

    def check_client(self, client: SandboxClient) -> bool:
        return self.token.check_client(client)


class _RevocationEndpoint(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_post", "none"]

    @property
    def store(self) -> Store:
        return self.server.store  # type: ignore[no-any-return]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _FoundToken | None:
        order = ["access_token", "refresh_token"]
        if token_type_hint == "refresh_token":
            order.reverse()
        for kind in order:
            found = (self.store.by_access_token(token_string) if kind == "access_token"
                     else self.store.by_refresh_token(token_string))
            if found is not None:
                return _FoundToken(found, kind)
        return None

    def revoke_token(self, token: _FoundToken, request: OAuth2Request) -> None:
        if token.kind == "refresh_token":
            self.store.revoke_grant(token.token.grant_id)
        else:
            self.store.revoke_access(token.token)


class _SandboxIssuerParameter(IssuerParameter):
    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def get_issuer(self) -> str:
        return self._issuer


@dataclass
class _IdTokenCredential:
    """An ID token used as a bearer at userinfo (Make's docs do that)."""

    token: Token
    expires_at: float

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.token.access_revoked

    def get_scope(self) -> str:
        return self.token.scope

    @property
    def user(self) -> DemoUser | None:
        return self.token.user


class _UserinfoTokenValidator(BearerTokenValidator):
    def __init__(self, server: SandboxAuthorizationServer) -> None:
        super().__init__()
        self._server = server

    def authenticate_token(self, token_string: str) -> Token | _IdTokenCredential | None:
        store = self._server.store
        token = store.by_access_token(token_string)
        if token is not None:
            return token
        record = store.by_id_token(token_string)
        if record is None:
            return None
        claims = self._server.verify_id_token(token_string)
        if claims is None:
            return None
        return _IdTokenCredential(record, float(claims["exp"]))


# -- the server ----------------------------------------------------------------------------
class SandboxAuthorizationServer(AuthorizationServer):
    """Authlib's :class:`AuthorizationServer` wired to the sandbox's store and WSGI types."""

    def __init__(self, store: Store, issuer: str, signing_key: RSAKey) -> None:
        super().__init__(scopes_supported=list(SCOPES_SUPPORTED))
        self.store = store
        self.issuer = issuer
        self.signing_key = signing_key
        self.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda **_: generate_token(42),
            refresh_token_generator=lambda **_: generate_token(48),
            expires_generator=lambda client, grant_type: client.access_token_ttl,
        ))
        self.register_grant(_AuthorizationCodeGrant,
                            [S256CodeChallenge(required=True), _OpenIDCode(self)])
        self.register_grant(_RefreshTokenGrant)
        self.register_endpoint(_RevocationEndpoint)
        self.issuer_parameter = _SandboxIssuerParameter(issuer)
        self.register_extension(self.issuer_parameter)
        self.userinfo_protector = ResourceProtector()
        self.userinfo_protector.register_token_validator(_UserinfoTokenValidator(self))

    # Authlib hooks
    def query_client(self, client_id: str) -> SandboxClient | None:
        return self.store.client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        origin = request.authorization_code or request.refresh_token
        self.store.add_token(Token(
            client_id=request.client.get_client_id(),
            user_key=request.user.key,
            scope=token.get("scope", ""),
            grant_id=origin.grant_id,
            access_token=token["access_token"],
            expires_in=int(token["expires_in"]),
            issued_at=time.time(),
            refresh_token=token.get("refresh_token"),
        ))

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return SandboxOAuth2Request.from_request(request, self.issuer)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("the sandbox has no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        return Response(status, body or b"", headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        if isinstance(error, InvalidClientError) and not error.redirect_uri:
            error.status_code = 401  # failed client authentication (RFC 6749 section 5.2)
        response: Response = super().handle_error_response(request, error)
        return response

    def validate_requested_scope(self, scope: str | None) -> None:
        super().validate_requested_scope(normalize_scope(scope))

    def verify_id_token(self, value: str) -> dict[str, Any] | None:
        """Claims of an unexpired ID token this sandbox signed, else None."""
        try:
            decoded = jwt.decode(value, self.signing_key, algorithms=["RS256"])
            registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.issuer},
                                             exp={"essential": True}, sub={"essential": True})
            registry.validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        return dict(decoded.claims)


class AuthorizationService:
    """HTTP side of the authorization server: routes, sign-in page, discovery, JWKS."""

    def __init__(self, store: Store, issuer: str, *, signing_key: RSAKey | None = None,
                 faults: FaultInjector | None = None, browser_base_url: str | None = None,
                 users: dict[str, DemoUser] | None = None) -> None:
        self.issuer = issuer
        self.server = SandboxAuthorizationServer(store, issuer, signing_key or new_signing_key())
        self.faults = faults or FaultInjector()
        self.browser_base_url = (browser_base_url or issuer).rstrip("/")
        self.users = users or DEMO_USERS
        self._form_key = secrets.token_bytes(32)
        #: an API token to show on the sign-in page (set by the Sandbox), or None
        self.api_token: str | None = None
        self._routes: dict[str, Callable[[Request], Response]] = {
            DISCOVERY_PATH: self.discovery,
            JWKS_PATH: self.jwks,
            AUTHORIZE_PATH: self.authorize,
            TOKEN_PATH: self.token,
            REVOKE_PATH: self.revoke,
            USERINFO_PATH: self.userinfo,
        }

    @property
    def authorization_endpoint(self) -> str:
        """The authorize URL a browser should open (``browser_base_url`` when behind a proxy)."""
        return self.browser_base_url + AUTHORIZE_PATH

    def handles(self, path: str) -> bool:
        return path.rstrip("/") in self._routes or path in self._routes

    def handle(self, req: Request) -> Response:
        route = self._routes.get(req.path) or self._routes[req.path.rstrip("/")]
        return route(req)

    # -- metadata ------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.issuer + TOKEN_PATH,
            "jwks_uri": self.issuer + JWKS_PATH,
            "userinfo_endpoint": self.issuer + USERINFO_PATH,
            "revocation_endpoint": self.issuer + REVOKE_PATH,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": list(SCOPES_SUPPORTED),
            "claims_supported": ["sub", "name", "email", "iss", "aud", "exp", "iat",
                                 "auth_time", "nonce", "at_hash"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def discovery(self, req: Request) -> Response:
        return Response.json(self.metadata(), headers=[("Cache-Control", "no-cache")])

    def jwks(self, req: Request) -> Response:
        keys = KeySet([self.server.signing_key]).as_dict(private=False)
        return Response.json(keys)

    # -- authorize -------------------------------------------------------------------------
    def authorize(self, req: Request) -> Response:
        if req.method == "GET":
            return self._show_consent(req)
        if req.method == "POST":
            return self._decide(req)
        return Response.html(error_page("Method not allowed", "Use GET or POST."), 405)

    def _show_consent(self, req: Request) -> Response:
        oauth_req = SandboxOAuth2Request.from_request(req, self.issuer)
        try:
            grant = self.server.get_consent_grant(oauth_req)
        except OAuth2Error as error:
            return self._authorize_error(oauth_req, error)
        client: SandboxClient = grant.request.client
        hidden = {k: v[0] for k, v in req.query.items() if v and k not in _FORM_ONLY_FIELDS}
        hidden["consent"] = self._sign_form(hidden)
        page = consent_page(
            client_name=client.name, client_id=client.client_id,
            redirect_uri=grant.redirect_uri or "", scopes=scope_to_list(grant.request.scope) or [],
            users=self.users.values(), hidden=hidden, api_token=self.api_token)
        return Response.html(page)

    def _decide(self, req: Request) -> Response:
        params = {k: v[0] for k, v in req.form.items() if v and k not in _FORM_ONLY_FIELDS}
        if not self._check_form(params, req.field("consent") or ""):
            return Response.html(error_page(
                "This sign-in form is no longer valid",
                "It expired or was not issued by this sandbox. Start the sign-in again from "
                "your notebook."), 400)
        decision = req.field("decision")
        user = self.users.get(req.field("user") or "")
        if decision not in ("approve", "deny") or (decision == "approve" and user is None):
            return Response.html(error_page("Pick a user", "Choose a demo user, then approve "
                                            "or deny."), 400)
        oauth_req = SandboxOAuth2Request("GET", self.issuer, AUTHORIZE_PATH, "",
                                         {k: [v] for k, v in params.items()}, {}, req.headers)
        try:
            grant = self.server.get_consent_grant(oauth_req)
        except OAuth2Error as error:
            return self._authorize_error(oauth_req, error)
        grant_user = user if decision == "approve" else None
        response: Response = self.server.create_authorization_response(
            oauth_req, grant_user=grant_user, grant=grant)
        return response

    def _authorize_error(self, oauth_req: OAuth2Request, error: OAuth2Error) -> Response:
        if error.redirect_uri:
            response: Response = self.server.handle_error_response(oauth_req, error)
            self.server.issuer_parameter.add_issuer_parameter(self.server, response)
            return response
        return Response.html(error_page(
            "Cannot continue the sign-in",
            f"{error.error}: {error.description or 'the request is not valid.'} "
            "The browser is not sent back to the application because its client or "
            "redirect URI could not be confirmed."), 400)

    def _sign_form(self, params: dict[str, str], issued: int | None = None) -> str:
        issued = int(time.time()) if issued is None else issued
        canonical = json.dumps(sorted(params.items()), separators=(",", ":"))
        mac = hmac.new(self._form_key, f"{issued}|{canonical}".encode(), hashlib.sha256)
        return f"{issued}.{mac.hexdigest()}"

    def _check_form(self, params: dict[str, str], value: str) -> bool:
        stamp, _, _ = value.partition(".")
        if not stamp.isdigit() or time.time() - int(stamp) > CONSENT_FORM_TTL:
            return False
        return hmac.compare_digest(self._sign_form(params, int(stamp)), value)

    # -- token, revoke, userinfo -----------------------------------------------------------
    def token(self, req: Request) -> Response:
        fault = self.faults.take("token")
        if fault is not None:
            error = "temporarily_unavailable" if fault.status in (429, 503) else "server_error"
            headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after else []
            return Response.json({"error": error, "error_description": "Injected by sandbox"},
                                 fault.status, headers)
        response: Response = self.server.create_token_response(req)
        return response

    def revoke(self, req: Request) -> Response:
        response: Response = self.server.create_endpoint_response(
            RevocationEndpoint.ENDPOINT_NAME, req)
        return response

    def userinfo(self, req: Request) -> Response:
        oauth_req = SandboxOAuth2Request.from_request(req, self.issuer)
        try:
            credential = self.server.userinfo_protector.validate_request(["openid"], oauth_req)
        except OAuth2Error as error:
            return self.server.handle_response(*error())
        user = credential.user
        if user is None:
            return Response.json({"error": "invalid_token"}, 401)
        return Response.json(user.claims())
