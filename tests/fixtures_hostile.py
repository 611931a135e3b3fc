"""A small scriptable OpenID provider on loopback, for crafting what real providers won't send.

It signs ID tokens with keys of its own (``Signer``), so tests can hand the client a bad
signature, ``alg: none``, a wrong audience or issuer, an expired token, a wrong nonce or a key
it has not published yet (rotation). Every request is recorded, so tests can count calls.
The real providers (oidc-provider, sandbox) prove the happy paths; this one the refusals.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """RSA keys with ids; signs claims as a JWT with the chosen key and algorithm."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.current = self.new_key()
        self.publish(self.current)

    def new_key(self) -> str:
        kid = "k-" + secrets.token_hex(4)
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def publish(self, kid: str) -> None:
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
            out.append(jwk)
        return {"keys": out}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, alg: str = "RS256",
             headers: dict[str, Any] | None = None) -> str:
        kid = kid or self.current
        hdr = {"kid": kid, **(headers or {})}
        if alg == "none":
            head = b64url(json.dumps({"alg": "none", "typ": "JWT", **hdr}).encode())
            body = b64url(json.dumps(claims).encode())
            return f"{head}.{body}."
        if alg == "raw":  # RS256 over whatever JSON, even claims PyJWT would refuse to encode
            head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", **hdr}).encode())
            body = b64url(json.dumps(claims).encode())
            signer = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
            signature = signer.sign(f"{head}.{body}".encode(), self.keys[kid])
            return f"{head}.{body}.{b64url(signature)}"
        if alg.startswith("HS"):
            return jwt.encode(claims, "shared-secret-" * 3, algorithm=alg, headers=hdr)
        return jwt.encode(claims, self.keys[kid], algorithm=alg, headers=hdr)


@dataclass
class HostileProvider:
    issuer: str = ""
    client_id: str = "hostile-client"
    redirect_uri: str = "http://127.0.0.1:8765/callback"
    signer: Signer = field(default_factory=Signer)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    # Hooks a test may replace:
    discovery_extra: dict[str, Any] = field(default_factory=dict)
    discovery_status: int = 200
    # claims_for(nonce) -> claims of the ID token; id_token_for(claims) -> compact JWT
    claims_for: Callable[[str | None], dict[str, Any]] | None = None
    id_token_for: Callable[[dict[str, Any]], str] | None = None
    token_status: int = 200
    token_body: dict[str, Any] | None = None  # replaces the whole token response
    expires_in: int = 3600
    refresh_tokens: bool = True
    revoke_status: int = 200
    userinfo_claims: dict[str, Any] = field(default_factory=lambda: {
        "sub": "user-1", "name": "Hostile Tester", "email": "h@example.com",
        "address": {"country": "CZ", "locality": "Prague"}})
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_count: int = 0
    refresh_delay: float = 0.0
    # raw(method, path, form) -> None (answer as usual) or a function that writes the whole
    # answer itself on the handler (redirects, trickling, oversized or malformed bodies).
    raw: Callable[[str, str, dict[str, str]], Callable[[Any], None] | None] | None = None

    def url(self, path: str) -> str:
        return self.issuer + path

    def calls(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)

    def refresh_calls(self) -> list[dict[str, str]]:
        """The forms of every refresh request received (answered or refused)."""
        return [f for _, p, f in self.requests
                if p == "/oauth/v2/token" and f.get("grant_type") == "refresh_token"]

    def default_claims(self, nonce: str | None) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "user-1", "aud": self.client_id,
                  "iat": now, "exp": now + 300}
        if nonce:
            claims["nonce"] = nonce
        return claims

    def authorize(self, url: str, approve: bool = True, user: str = "alice") -> str:
        q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        if not approve:
            return q["redirect_uri"] + "?" + urlencode(
                {"error": "access_denied", "state": q["state"], "iss": self.issuer})
        code = secrets.token_urlsafe(16)
        self.codes[code] = q
        return q["redirect_uri"] + "?" + urlencode(
            {"code": code, "state": q["state"], "iss": self.issuer})

    # -- server side ------------------------------------------------------------------

    def handle(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        self.requests.append((method, path, form))
        if path == "/.well-known/openid-configuration":
            doc = {
                "issuer": self.issuer,
                "authorization_endpoint": self.url("/oauth/v2/authorize"),
                "token_endpoint": self.url("/oauth/v2/token"),
                "jwks_uri": self.url("/oauth/v2/oidc/jwks"),
                "userinfo_endpoint": self.url("/oauth/v2/oidc/userinfo"),
                "revocation_endpoint": self.url("/oauth/v2/revoke"),
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                **self.discovery_extra,
            }
            return self.discovery_status, doc
        if path == "/oauth/v2/oidc/jwks":
            return 200, self.signer.jwks()
        if path == "/oauth/v2/token":
            return self._token(form)
        if path == "/oauth/v2/oidc/userinfo":
            return 200, self.userinfo_claims
        if path == "/oauth/v2/revoke":
            return self.revoke_status, {} if self.revoke_status == 200 else {
                "error": "server_error"}
        return 404, {"error": "not_found"}

    def _token(self, form: dict[str, str]) -> tuple[int, Any]:
        if form.get("grant_type") == "refresh_token" and self.refresh_delay:
            time.sleep(self.refresh_delay)
        if self.token_body is not None:
            return self.token_status, self.token_body
        if form.get("grant_type") == "refresh_token":
            self.refresh_count += 1
            body = {"access_token": "at-" + secrets.token_hex(8), "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "refresh_token": "rt-" + secrets.token_hex(8)}
            return 200, body
        request = self.codes.pop(form.get("code", ""), None)
        if request is None:
            return 400, {"error": "invalid_grant", "error_description": "code not valid"}
        claims = (self.claims_for or self.default_claims)(request.get("nonce"))
        id_token = (self.id_token_for or self.signer.sign)(claims)
        body = {"access_token": "at-" + secrets.token_hex(8), "token_type": "Bearer",
                "expires_in": self.expires_in, "id_token": id_token,
                "scope": request.get("scope", "")}
        if self.refresh_tokens:
            body["refresh_token"] = "rt-" + secrets.token_hex(8)
        return self.token_status, body


def _handler(provider: HostileProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            form: dict[str, str] = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if method == "POST":
                n = int(self.headers.get("Content-Length") or 0)
                form.update({k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()})
            auth = self.headers.get("Authorization")
            if auth:
                form["_authorization"] = auth
            action = provider.raw(method, parts.path, form) if provider.raw else None
            if action is not None:
                provider.requests.append((method, parts.path, form))
                try:
                    action(self)
                except OSError:  # the client hung up (deadline, size cap)
                    pass
                self.close_connection = True
                return
            status, body = provider.handle(method, parts.path, form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def answer(status: int, body: bytes | str = b"", headers: dict[str, str] | None = None
           ) -> Callable[[Any], None]:
    """A raw answer: ``status``, ``headers`` and ``body`` exactly as given."""
    data = body.encode() if isinstance(body, str) else body

    def write(handler: Any) -> None:
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json",
                            "Content-Length": str(len(data)), **(headers or {})}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    return write


def trickle(every: float = 0.5, *, in_headers: bool = False, sent: list[int] | None = None
            ) -> Callable[[Any], None]:
    """An answer that sends one byte every ``every`` seconds, forever (until cut off)."""

    def write(handler: Any) -> None:
        if not in_headers:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 100000\r\n\r\n")
        else:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(600):
            handler.wfile.write(b"x" if in_headers else b" ")
            handler.wfile.flush()
            if sent is not None:
                sent.append(1)
            time.sleep(every)

    return write


def flood(*, declared: int | None = None, sent: list[int] | None = None
          ) -> Callable[[Any], None]:
    """A huge answer: ``declared`` bytes announced, or chunked with no end (until cut off)."""

    def write(handler: Any) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += (f"Content-Length: {declared}\r\n".encode() if declared is not None
                 else b"Transfer-Encoding: chunked\r\n")
        handler.wfile.write(head + b"\r\n")
        chunk = b" " * 65536
        for _ in range(5000):  # at most ~330 MB
            data = chunk if declared is not None else b"10000\r\n" + chunk + b"\r\n"
            handler.wfile.write(data)
            if sent is not None:
                sent.append(len(chunk))

    return write


@pytest.fixture
def hostile():
    """A fresh scriptable provider per test, on 127.0.0.1."""
    provider = HostileProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
