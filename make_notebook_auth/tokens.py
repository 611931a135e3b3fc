"""The token and revocation endpoints: code exchange, refresh (RFC 6749) and revocation (RFC 7009).

Client authentication is Make's ``client_secret_post``: ``client_id`` (and ``client_secret``
for a confidential client) in the form body. Responses become a :class:`Token`, a ``dict``
whose repr hides every credential.
"""

from __future__ import annotations

import time
from typing import Any

from ._http import call, json_body
from .config import MakeConfig
from .errors import MakeError, TokenEndpointError

SECRET_KEYS = frozenset({"access_token", "refresh_token", "id_token", "code", "client_secret"})


class Token(dict):  # type: ignore[type-arg]
    """A token response. Behaves as a dict; its repr and str never show a credential."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_KEYS else v) for k, v in self.items()}
        return f"Token({shown!r})"

    __str__ = __repr__

    @property
    def lifetime(self) -> float | None:
        """Seconds the access token was valid for when issued (``expires_in``)."""
        value = self.get("expires_in")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None


def client_auth(config: MakeConfig) -> dict[str, str]:
    body = {"client_id": config.client_id}
    if config.client_secret:
        body["client_secret"] = config.client_secret
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


def _token_from_response(resp: Any, action: str, hidden: tuple[str, ...] = ()) -> Token:
    body = json_body(resp)
    if resp.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            desc = body.get("error_description")
            raise TokenEndpointError(
                _scrub(body["error"], hidden),
                _scrub(desc, hidden) if isinstance(desc, str) else None,
                resp.status_code,
                action=action,
            )
        raise TokenEndpointError(
            "server_error" if resp.status_code >= 500 else "invalid_response",
            "the answer was not a token response",
            resp.status_code,
            action=action,
        )
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenEndpointError("invalid_response", f"unsupported token type {token_type!r}",
                                 resp.status_code, action=action)
    if not isinstance(body["access_token"], str) or not body["access_token"]:
        raise TokenEndpointError("invalid_response", "the access token is empty",
                                 resp.status_code, action=action)
    token = Token(body)
    lifetime = token.lifetime
    if lifetime is not None:
        token["expires_at"] = time.time() + lifetime
    return token


def exchange_code(
    config: MakeConfig, token_endpoint: str, *, code: str, code_verifier: str, redirect_uri: str
) -> Token:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        **client_auth(config),
    }
    hidden = (code, code_verifier, config.client_secret or "")
    return _token_from_response(_post(token_endpoint, "token", data),
                                "authorization code exchange", hidden)


def refresh(config: MakeConfig, token_endpoint: str, refresh_token: str) -> Token:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **client_auth(config)}
    return _token_from_response(_post(token_endpoint, "token", data), "token refresh",
                                (refresh_token, config.client_secret or ""))


def revoke(config: MakeConfig, revocation_endpoint: str, token: str, hint: str) -> str | None:
    """Revoke one token; return None on success, else a short reason (never the token)."""
    data = {"token": token, "token_type_hint": hint, **client_auth(config)}
    try:
        resp = _post(revocation_endpoint, "revocation", data)
    except MakeError as exc:  # reported; logout goes on locally
        return str(exc)
    if resp.status_code == 200:
        return None
    body = json_body(resp)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{_scrub(body['error'], (token, config.client_secret or ''))} " \
               f"(HTTP {resp.status_code})"
    return f"HTTP {resp.status_code}"
