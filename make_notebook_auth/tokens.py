"""The token and revocation endpoints: code exchange, refresh (RFC 6749) and revocation (RFC 7009).

Client authentication is Make's ``client_secret_post``: ``client_id`` (and ``client_secret``
for a confidential client) in the form body. Responses become a :class:`Token`, a ``dict``
whose repr hides every credential and whose credentials are :class:`~.secret.Secret` strings.

Only ``token_type`` Bearer (any case) is accepted, ``expires_in`` must be a finite number of
seconds (0 to 10 years), and every unusable answer is a ``TokenEndpointError``. An unusable
*successful* answer (HTTP 2xx) means the provider may have spent the refresh token: such an
error says so (``spent``) and carries the rotated refresh token if the answer held one.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ._http import call, json_body
from .config import MakeConfig
from .errors import MakeError, TokenEndpointError
from .secret import Secret, secret

SECRET_KEYS = frozenset({"access_token", "refresh_token", "id_token", "code", "client_secret"})
MAX_LIFETIME = 10 * 365 * 86400.0  # an expires_in beyond this is not believed


class TokenAnswerError(TokenEndpointError):
    """A successful (2xx) token answer that cannot be used. The provider may already have
    spent the refresh token it answered: ``rotated`` is the new one if the answer held one."""

    def __init__(self, problem: str, status: int, *, action: str,
                 rotated: Secret | None = None) -> None:
        super().__init__("invalid_response", problem, status, action=action)
        self.rotated = rotated


def masked(body: Any) -> Any:
    """A JSON answer with its credentials as ``Secret`` (a dict's top level)."""
    if isinstance(body, dict):
        return {k: secret(v) if k in SECRET_KEYS else v for k, v in body.items()}
    return body


class Token(dict):  # type: ignore[type-arg]
    """A token response. Behaves as a dict; its repr and str never show a credential."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key in SECRET_KEYS & self.keys():
            dict.__setitem__(self, key, secret(self[key]))

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, secret(value) if key in SECRET_KEYS else value)

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_KEYS else v) for k, v in self.items()}
        return f"Token({shown!r})"

    __str__ = __repr__

    @property
    def lifetime(self) -> float | None:
        """Seconds the access token was valid for when issued (``expires_in``)."""
        value = self.get("expires_in")
        try:
            lifetime = float(value) if value is not None else None
        except (TypeError, ValueError, OverflowError):
            return None
        return lifetime if lifetime is not None and math.isfinite(lifetime) else None


def client_auth(config: MakeConfig) -> dict[str, str]:
    body = {"client_id": config.client_id}
    if config.client_secret:
        body["client_secret"] = Secret(config.client_secret)
    return body


def _post(url: str, endpoint: str, data: dict[str, str]) -> Any:
    return call(
        "POST",
        url,
        endpoint,
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def _scrub(text: str, hidden: tuple[str, ...]) -> str:
    """``text`` with every credential of ``hidden`` masked (providers may echo them)."""
    for value in hidden:
        if value:
            text = text.replace(value, "***")
    return text


def _expires_in(value: Any) -> tuple[float | None, str | None]:
    """``expires_in`` as seconds (None when absent), or a problem with it."""
    if value is None:
        return None, None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        value = int(value.strip())  # some providers send a number as a string
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, "its expires_in is not a number"
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_LIFETIME:
        return None, "its expires_in is not a usable number of seconds"
    return seconds, None


def _token_from_response(resp: Any, action: str, hidden: tuple[str, ...] = ()) -> Token:
    """The token of a token-endpoint answer; every unusable answer raises (no chain)."""
    body = masked(json_body(resp))
    status = resp.status_code
    if not isinstance(body, dict) or not 200 <= status < 300 or "access_token" not in body:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            desc = body.get("error_description")
            raise TokenEndpointError(
                _scrub(body["error"], hidden)[:200],
                _scrub(desc, hidden)[:500] if isinstance(desc, str) else None,
                status,
                action=action,
            )
        if not 200 <= status < 300:
            raise TokenEndpointError(
                "server_error" if status >= 500 else "invalid_response",
                "the answer was not a token response", status, action=action,
            )
    rotated = body.get("refresh_token") if isinstance(body, dict) else None
    rotated = rotated if isinstance(rotated, Secret) and rotated else None
    problem: str | None = None
    lifetime: float | None = None
    if not isinstance(body, dict) or "access_token" not in body:
        problem = "the answer was not a token response"
    elif not isinstance(body.get("token_type", "Bearer"), str) or \
            body.get("token_type", "Bearer").lower() != "bearer":
        shown = _scrub(str(body.get("token_type")), hidden)[:40]
        problem = f"unsupported token type {shown!r} (only Bearer is used)"
    elif not isinstance(body["access_token"], str) or not body["access_token"]:
        problem = "the access token is empty"
    elif "refresh_token" in body and rotated is None:
        problem = "its refresh token is not a string"
    else:
        lifetime, problem = _expires_in(body.get("expires_in"))
    if problem is not None:
        raise TokenAnswerError(problem, status, action=action, rotated=rotated)
    token = Token(body)
    if lifetime is not None:
        token["expires_in"] = lifetime if not lifetime.is_integer() else int(lifetime)
        token["expires_at"] = time.time() + lifetime
    return token


def exchange_code(
    config: MakeConfig, token_endpoint: str, *, code: str, code_verifier: str, redirect_uri: str
) -> Token:
    code, code_verifier = Secret(code), Secret(code_verifier)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        **client_auth(config),
    }
    hidden = (code, code_verifier, Secret(config.client_secret or ""))
    return _token_from_response(_post(token_endpoint, "token", data),
                                "authorization code exchange", hidden)


def refresh(config: MakeConfig, token_endpoint: str, refresh_token: str) -> Token:
    """A refreshed token. ``TokenAnswerError`` when a 2xx answer cannot be used (the refresh
    token may be spent: never send it again)."""
    refresh_token = Secret(refresh_token)
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **client_auth(config)}
    return _token_from_response(_post(token_endpoint, "token", data), "token refresh",
                                (refresh_token, Secret(config.client_secret or "")))


def revoke(config: MakeConfig, revocation_endpoint: str, token: str, hint: str) -> str | None:
    """Revoke one token; return None on success, else a short reason (never the token)."""
    token = Secret(token)
    data = {"token": token, "token_type_hint": hint, **client_auth(config)}
    try:
        resp = _post(revocation_endpoint, "revocation", data)
    except MakeError as exc:  # reported; logout goes on locally
        return str(exc)
    if resp.status_code == 200:
        return None
    body = json_body(resp)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{_scrub(body['error'], (token, Secret(config.client_secret or '')))} " \
               f"(HTTP {resp.status_code})"
    return f"HTTP {resp.status_code}"
