"""OpenID Connect: provider discovery, the provider's key set, and ID-token checks.

Discovery runs once per issuer per process (falling back to Make's documented paths when it
fails). The key set is fetched with ``requests`` (so ``REQUESTS_CA_BUNDLE`` applies) and kept
per process; a token signed with an unknown ``kid`` re-fetches it at once, one time. Both
caches lock per issuer / per key-set URL: a slow issuer never holds up a login to another, and
each fetch ends within ``_http.AUTH_DEADLINE``. PyJWT does the signature and claim checks;
``jwt`` is imported only when a token is verified. Whatever a provider sends, a failure is a
``MakeError`` (``IDTokenError`` names the failed check), raised with no chain to PyJWT's frames.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from ._http import call, json_body
from .config import require_secure
from .errors import IDTokenError, MakeNetworkError, ProviderResponseError

MAKE_PATHS = {
    "authorization_endpoint": "/oauth/v2/authorize",
    "token_endpoint": "/oauth/v2/token",
    "jwks_uri": "/oauth/v2/oidc/jwks",
    "userinfo_endpoint": "/oauth/v2/oidc/userinfo",
    "revocation_endpoint": "/oauth/v2/revoke",
}
ID_TOKEN_LEEWAY = 60.0  # seconds of clock skew tolerated for exp / iat
_FORBIDDEN_ALGS = ("none",)


@dataclass(frozen=True)
class ProviderMetadata:
    """Where the authorization server's endpoints are and what it supports."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    revocation_endpoint: str | None
    id_token_algs: tuple[str, ...] = ("RS256",)
    iss_parameter_supported: bool = False

    @classmethod
    def make_defaults(cls, issuer: str) -> ProviderMetadata:
        """Make's documented endpoint paths under ``issuer``."""
        base = issuer.rstrip("/")
        return cls(
            issuer=issuer,
            authorization_endpoint=base + MAKE_PATHS["authorization_endpoint"],
            token_endpoint=base + MAKE_PATHS["token_endpoint"],
            jwks_uri=base + MAKE_PATHS["jwks_uri"],
            userinfo_endpoint=base + MAKE_PATHS["userinfo_endpoint"],
            revocation_endpoint=base + MAKE_PATHS["revocation_endpoint"],
        )

    @classmethod
    def from_document(cls, issuer: str, doc: dict[str, Any]) -> ProviderMetadata:
        advertised = str(doc.get("issuer") or "")
        if advertised.rstrip("/") != issuer.rstrip("/"):
            raise ProviderResponseError(
                "discovery", issuer, f"the document names another issuer ({advertised[:200]!r}); "
                "refusing to use it"
            )
        fallback = cls.make_defaults(issuer)
        endpoints: dict[str, str | None] = {}
        for key in MAKE_PATHS:
            value = doc.get(key)
            if value is None:  # not advertised: Make's documented path (revocation, e.g.)
                value = getattr(fallback, key)
            if value is not None:
                if not isinstance(value, str):
                    raise ProviderResponseError("discovery", issuer, f"its {key} is not a URL")
                require_secure(value, f"The provider's {key}")
            endpoints[key] = value
        algs = doc.get("id_token_signing_alg_values_supported")
        if not isinstance(algs, list):  # required by OIDC discovery; a bad value: the default
            algs = ["RS256"]
        safe_algs = tuple(a for a in algs if isinstance(a, str) and _asymmetric(a))
        return cls(
            issuer=advertised,
            authorization_endpoint=str(endpoints["authorization_endpoint"]),
            token_endpoint=str(endpoints["token_endpoint"]),
            jwks_uri=str(endpoints["jwks_uri"]),
            userinfo_endpoint=endpoints["userinfo_endpoint"],
            revocation_endpoint=endpoints["revocation_endpoint"],
            id_token_algs=safe_algs or ("RS256",),
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported")
            is True,
        )


def _asymmetric(alg: str) -> bool:
    return alg not in _FORBIDDEN_ALGS and alg[:2] in ("RS", "PS", "ES", "Ed")


_discovered: dict[str, ProviderMetadata] = {}
_jwks: dict[str, Any] = {}  # jwks_uri -> jwt.PyJWKSet
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()  # held only to find a lock, never during a fetch


def _lock_for(kind: str, key: str) -> threading.Lock:
    """The lock of one issuer's discovery or one key set (created on first use)."""
    with _locks_guard:
        return _locks.setdefault((kind, key), threading.Lock())


def discover(issuer: str) -> ProviderMetadata:
    """The provider's metadata: discovery once per issuer per process, else Make's paths."""
    require_secure(issuer, "The issuer (MAKE_ISSUER)")
    with _lock_for("discovery", issuer):
        cached = _discovered.get(issuer)
        if cached is not None:
            return cached
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            resp = call("GET", url, "discovery")
        except MakeNetworkError:
            return ProviderMetadata.make_defaults(issuer)  # not cached: retried next login
        doc = json_body(resp) if resp.status_code == 200 else None
        if not isinstance(doc, dict):
            return ProviderMetadata.make_defaults(issuer)
        meta = ProviderMetadata.from_document(issuer, doc)
        _discovered[issuer] = meta
        return meta


def forget_discovery() -> None:
    """Drop cached discovery documents and key sets (tests, key rotation by hand)."""
    _discovered.clear()
    _jwks.clear()


# --- key set -------------------------------------------------------------------------------

# What PyJWT and the key parsers below it raise for input they cannot use.
_BAD_INPUT = (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError)


def _fetch_jwks(jwks_uri: str) -> Any:
    import jwt

    resp = call("GET", jwks_uri, "JWKS")
    doc = json_body(resp)
    if resp.status_code != 200 or not isinstance(doc, dict):
        raise IDTokenError("signature", f"the provider's key set could not be read "
                                        f"(HTTP {resp.status_code})")
    problem = "no usable key"
    try:
        return jwt.PyJWKSet.from_dict(doc)
    except jwt.exceptions.PyJWTError as exc:
        problem = f"no usable key ({type(exc).__name__})"
    except _BAD_INPUT as exc:
        problem = f"a malformed key ({type(exc).__name__})"
    raise IDTokenError("signature", f"the provider's key set has {problem}")


def _key_set(jwks_uri: str, *, refresh: bool = False) -> Any:
    with _lock_for("jwks", jwks_uri):
        if refresh or jwks_uri not in _jwks:
            _jwks[jwks_uri] = _fetch_jwks(jwks_uri)
        return _jwks[jwks_uri]


def _candidate_keys(key_set: Any, kid: str | None, alg: str) -> list[Any]:
    """The keys that may have signed a token: those with its ``kid`` (when it has one), else
    those published without a ``kid`` (a provider may name a key only in the token)."""
    if kid is not None and not any(key.key_id == kid for key in key_set.keys):
        kid = ""  # matches the keys without a kid
    family = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}[alg[:2]]
    keys = []
    for key in key_set.keys:
        if kid is not None and (key.key_id or "") != kid:
            continue
        if key.key_type != family:
            continue
        use = getattr(key, "public_key_use", None)
        if use not in (None, "sig"):
            continue
        if getattr(key, "_jwk_data", {}).get("alg") not in (None, alg):
            continue
        keys.append(key)
    return keys


# --- ID token ------------------------------------------------------------------------------


def _decode(id_token: str, keys: list[Any], alg: str, client_id: str, issuer: str,
            leeway: float) -> dict[str, Any] | None:
    """The token's claims if one of ``keys`` verifies it, else None; claim errors raise
    ``IDTokenError`` (outside the ``except`` block: no chain to PyJWT's frames)."""
    import jwt
    from jwt import exceptions as e

    failure: tuple[str, str] | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except e.InvalidSignatureError:
            continue
        except e.ExpiredSignatureError:
            failure = ("exp", "it has expired")
        except e.InvalidAudienceError:
            failure = ("aud", "it was issued for another client")
        except e.InvalidIssuerError:
            failure = ("iss", "it was issued by another issuer")
        except e.ImmatureSignatureError:
            failure = ("iat", "it claims to be issued in the future")
        except e.MissingRequiredClaimError as exc:
            failure = (exc.claim, f"the {exc.claim!r} claim is missing")
        except e.InvalidIssuedAtError:
            failure = ("iat", "its 'iat' claim is not a number")
        except e.PyJWTError as exc:
            failure = ("format", type(exc).__name__)
        except _BAD_INPUT as exc:  # e.g. "exp": 1e400 (OverflowError in PyJWT)
            failure = ("format", f"a claim PyJWT cannot read ({type(exc).__name__})")
        else:
            if isinstance(claims, dict):
                return claims
            failure = ("format", "its claims are not a JSON object")
        break
    if failure is not None:
        raise IDTokenError(*failure)
    return None


def _raw_header(id_token: str) -> dict[str, Any]:
    """The JWT's header as sent (an empty dict when it cannot be read)."""
    segment = id_token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):
        return {}
    return header if isinstance(header, dict) else {}


def verify_id_token(
    id_token: str,
    metadata: ProviderMetadata,
    client_id: str,
    *,
    nonce: str | None,
    leeway: float = ID_TOKEN_LEEWAY,
    expected_sub: str | None = None,
) -> dict[str, Any]:
    """Check an ID token and return its claims; raise ``IDTokenError`` naming the failed check."""
    import jwt

    if not isinstance(id_token, str) or id_token.count(".") != 2:
        raise IDTokenError("format", "it is not a signed JWT")
    if "crit" in _raw_header(id_token):  # RFC 7515: extensions named must be understood
        raise IDTokenError("crit", "its header names critical extensions ('crit') this "
                                   "client does not support")
    header: Any = None
    try:
        header = jwt.get_unverified_header(id_token)
    except (jwt.exceptions.PyJWTError, *_BAD_INPUT):
        pass  # raised below, outside the except block
    if not isinstance(header, dict):
        raise IDTokenError("format", "its header could not be decoded (or is not valid)")
    alg = header.get("alg")
    allowed = metadata.id_token_algs
    if not isinstance(alg, str) or alg not in allowed or not _asymmetric(alg):
        raise IDTokenError(
            "alg", f"it is signed with {alg!r}, expected one of {', '.join(allowed)}"
        )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise IDTokenError("format", "its key id is not a string")

    claims: dict[str, Any] | None = None
    for refetch in (False, True):  # a miss (key rotation) fetches the key set again, once
        keys = _candidate_keys(_key_set(metadata.jwks_uri, refresh=refetch), kid, alg)
        claims = _decode(id_token, keys, alg, client_id, metadata.issuer, leeway)
        if claims is not None:
            break
    if claims is None:
        if not keys:
            which = f"key id {kid!r}" if kid else f"an {alg} key"
            raise IDTokenError("signature", f"the provider's key set has no {which}")
        raise IDTokenError("signature", "the signature does not match the provider's key")
    if claims.get("iss") != metadata.issuer:  # exact, whatever PyJWT's version compares
        raise IDTokenError("iss", "it was issued by another issuer")

    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)) or not math.isfinite(iat) \
            or iat > time.time() + leeway:
        raise IDTokenError("iat", "it claims to be issued in the future")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise IDTokenError("azp", "it has several audiences but no authorized party (azp)")
    if azp is not None and azp != client_id:
        raise IDTokenError("azp", "its authorized party (azp) is another client")
    if nonce is not None:
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got, nonce):
            raise IDTokenError("nonce", "its nonce does not match this login (replayed token?)")
    if expected_sub is not None and claims.get("sub") != expected_sub:
        raise IDTokenError("sub", "a refreshed ID token names another user")
    return claims
