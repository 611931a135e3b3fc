"""The authorization request (PKCE S256, state, nonce) and the reply a user pastes back.

``AuthorizationRequest`` holds the link to open; its code verifier and nonce stay private.
``parse_reply`` accepts the full redirect URL, its query string (with or without ``?``) or the
bare code, ignoring whitespace and quotes around it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from oauthlib.oauth2 import WebApplicationClient

from .errors import AuthorizationResponseError
from .secret import Secret

VERIFIER_LENGTH = 64  # RFC 7636: 43 to 128 characters
_QUOTES = "'\"`<>\u2018\u2019\u201c\u201d"
# A bare authorization code is a long random string (Make's and common providers' are 32+
# characters); anything shorter is a stray word, not a code.
MIN_CODE_LENGTH = 16
_CODE_RE = re.compile(r"[A-Za-z0-9._~+/=\-]+")
_REPLY_KEYS = ("code", "state", "iss", "error", "error_description", "error_uri")


@dataclass(frozen=True, eq=False)
class AuthorizationRequest:
    """One pending login: the link to open and what is needed to finish it.

    ``url`` and ``state`` are public; the PKCE code verifier and the nonce are not, and appear
    in no repr.
    """

    url: str
    state: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    _code_verifier: str = field(default="", repr=False)
    _nonce: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"AuthorizationRequest(client_id={self.client_id!r}, scopes={list(self.scopes)!r}, "
            f"redirect_uri={self.redirect_uri!r}, state={self.state[:6]!r}...)"
        )

    @classmethod
    def create(
        cls,
        authorization_endpoint: str,
        client_id: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
        *,
        extra: dict[str, str] | None = None,
    ) -> AuthorizationRequest:
        pkce = WebApplicationClient(client_id)
        verifier = pkce.create_code_verifier(VERIFIER_LENGTH)
        challenge = pkce.create_code_challenge(verifier, "S256")
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32) if "openid" in scopes else None
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if nonce:
            params["nonce"] = nonce
        params.update(extra or {})
        split = urlsplit(authorization_endpoint)
        sep = "&" if split.query else "?"
        return cls(
            url=authorization_endpoint + sep + urlencode(params),
            state=state,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=tuple(scopes),
            _code_verifier=Secret(verifier),
            _nonce=nonce,
        )


@dataclass(frozen=True)
class AuthorizationReply:
    """What a pasted reply says. ``from_redirect`` is False for a bare code."""

    code: str | None = field(default=None, repr=False)
    state: str | None = None
    iss: str | None = None
    error: str | None = None
    error_description: str | None = None
    from_redirect: bool = True


_HOW_TO_COPY = (
    "After approving, copy the whole address from the browser's address bar (it starts with "
    "your redirect URI and contains 'code=') and paste it here. A good paste looks like "
    "<your redirect URI>?code=...&state=... ."
)


def parse_reply(reply: str) -> AuthorizationReply:
    """Read a pasted reply. Raises ``AuthorizationResponseError`` (never echoing the input).

    The error is raised from a frame that holds no part of the reply, so a traceback that
    shows its frames' locals shows no authorization code.
    """
    outcome = _read_reply(reply)
    del reply
    if isinstance(outcome, str):
        raise AuthorizationResponseError(outcome)
    return outcome


def _read_reply(reply: str) -> AuthorizationReply | str:
    """The reply, or what is wrong with it (a message that quotes nothing of it)."""
    if not isinstance(reply, str):
        return "The reply must be text. " + _HOW_TO_COPY
    text = "".join(reply.split())  # URLs and codes hold no whitespace; line breaks from copying
    text = text.strip(_QUOTES)
    if not text:
        return "Nothing was pasted. " + _HOW_TO_COPY

    query: str | None = None
    if "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError:
            return "The pasted address is not a valid URL. " + _HOW_TO_COPY
        query = parts.query
        if not any(k + "=" in query for k in ("code", "error")) and parts.fragment:
            query = parts.fragment
    elif text.startswith("?") or text.startswith("#"):
        query = text[1:]
    elif re.match(r"^(code|state|iss|error|error_description|session_state)=", text) or "&" in text:
        query = text

    if query is None:
        if len(text) < MIN_CODE_LENGTH or not _CODE_RE.fullmatch(text):
            # Not a reply at all (a word, a stray line): nothing worth a call to the token
            # endpoint, whose answer would only be a misleading invalid_grant.
            return ("The pasted text is neither the redirect address nor an authorization "
                    "code. " + _HOW_TO_COPY)
        return AuthorizationReply(code=Secret(text), from_redirect=False)

    params = parse_qs(query, keep_blank_values=True)
    values: dict[str, str] = {}
    for key in _REPLY_KEYS:
        got = params.get(key)
        if not got:
            continue
        if len(got) > 1:
            return (f"The pasted address repeats the {key!r} parameter, which a real reply "
                    "never does. " + _HOW_TO_COPY)
        values[key] = got[0]
    if not values.get("code") and not values.get("error"):
        return "The pasted address has no authorization code. " + _HOW_TO_COPY
    return AuthorizationReply(
        code=Secret(values["code"]) if values.get("code") else None,
        state=values.get("state"),  # "" (present but empty) is checked, not ignored
        iss=values.get("iss"),
        error=values.get("error") or None,
        error_description=values.get("error_description") or None,
        from_redirect=True,
    )
