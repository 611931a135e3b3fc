"""Every error the package raises on purpose.

Messages say what happened and what to do next. They never contain a token, an
authorization code, a code verifier or a client secret: only the provider's error code,
its description, an endpoint's name and host, or the name of a failed check.
"""

from __future__ import annotations

import sys
import traceback
from urllib.parse import urlsplit

import requests

KNOWN_ZONES = (
    "eu1.make.com",
    "eu2.make.com",
    "us1.make.com",
    "us2.make.com",
    "eu1.make.celonis.com",
    "us1.make.celonis.com",
)


class MakeError(Exception):
    """Base of every error make-notebook-auth raises on purpose.

    The tree::

        MakeError
        +-- MakeConfigError          a setting is missing or unusable
        |   +-- InsecureTransportError
        +-- MakeAuthError            logins and tokens
        |   +-- MissingClientIdError (also a MakeConfigError)
        |   +-- AuthorizationResponseError  (StateMismatchError, IssuerMismatchError,
        |   |                                AuthorizationDeniedError)
        |   +-- ProviderResponseError       the authorization server answered unusably
        |   |   +-- TokenEndpointError      ... the token endpoint, or it refused
        |   |   +-- IDTokenError            ... an ID token failed a check
        |   +-- NotLoggedInError
        |   |   +-- LoginPendingError
        |   +-- LoginExpiredError
        +-- MakeNetworkError         an endpoint (API or login) could not be reached in time
        +-- MakeAPIError             the Make API answered with an error
        |   +-- ListingError         ... or with something that is not a usable listing
        +-- RateBudgetError          a request would wait too long for its rate budget

    In IPython the error shows as its sentence (``_render_traceback_``), not as a traceback
    through requests; ``%tb`` shows the full traceback.
    """

    def _render_traceback_(self) -> list[str]:
        # IPython shows an error while handling it; %tb shows the last one afterwards, when
        # nothing is being handled: then the whole story.
        if sys.exc_info()[1] is not self:
            return "".join(traceback.format_exception(self)).rstrip("\n").splitlines()
        return [f"{type(self).__name__}: {self}",
                "(The full traceback: run %tb in the next cell.)"]


class MakeConfigError(MakeError):
    """A setting is missing or unusable (an API zone, an insecure URL, ...)."""


class InsecureTransportError(MakeConfigError):
    """A URL would carry credentials over plain http to a host that is not loopback."""

    def __init__(self, what: str, url: str) -> None:
        self.what = what
        self.url = safe_url(url)
        super().__init__(
            f"{what} must use https (plain http is only allowed for loopback hosts "
            f"such as 127.0.0.1 or localhost): {self.url}"
        )


class MakeAuthError(MakeError):
    """A login or token problem."""


class MissingClientIdError(MakeAuthError, MakeConfigError):
    """No OAuth client id was given or found in the environment."""


class AuthorizationResponseError(MakeAuthError):
    """The reply pasted after approving could not be used."""


class StateMismatchError(AuthorizationResponseError):
    """The reply's ``state`` does not belong to a pending login (CSRF protection)."""


class IssuerMismatchError(AuthorizationResponseError):
    """The reply's ``iss`` (RFC 9207) names another authorization server (mix-up attack)."""


class AuthorizationDeniedError(AuthorizationResponseError):
    """The provider answered the authorization request with ``error=...``."""

    def __init__(self, error: str, error_description: str | None = None) -> None:
        self.error = error
        self.error_description = error_description
        if error == "access_denied":
            hint = (
                "The sign-in was declined or cancelled. Open the link again and choose "
                "Approve/Allow to continue."
            )
        else:
            hint = "Open the link again; if it keeps failing, check the client settings."
        detail = f": {error_description}" if error_description else ""
        super().__init__(f"Make refused the authorization ({error}{detail}). {hint}")


class ProviderResponseError(MakeAuthError):
    """The authorization server's answer could not be used (a redirect, too large, not the
    JSON expected, ...). ``endpoint`` names the endpoint."""

    answered: int | None = None

    DEFAULT_HINT = "Try again; if it persists, check the issuer setting (MAKE_ISSUER)."

    def __init__(self, endpoint: str, url: str | None, reason: str,
                 hint: str | None = None, *, answered: int | None = None) -> None:
        self.endpoint = endpoint
        self.url = safe_url(url) if url else None
        self.answered = answered  # the HTTP status of the unusable answer, when known
        where = f" at {self.url}" if self.url else ""
        super().__init__(
            f"Make's {endpoint} endpoint{where} gave an unusable answer: {reason.rstrip('.')}. "
            + (hint or self.DEFAULT_HINT)
        )


class TokenEndpointError(ProviderResponseError):
    """The token endpoint refused a request (code exchange or refresh)."""

    _HINTS = {
        "invalid_grant": (
            "Make did not accept the authorization code (or refresh token): it may have "
            "expired, been used already, or belong to another login or redirect URI. Open "
            "the sign-in link again and use the new reply."
        ),
        "invalid_client": (
            "Make did not accept the client credentials. Check MAKE_CLIENT_ID and "
            "MAKE_CLIENT_SECRET (or leave the secret unset for a public client; in a notebook, "
            "%make_login --confidential lets you type the secret into the panel)."
        ),
        "invalid_request": "Make rejected the request as malformed; check the redirect URI.",
        "unauthorized_client": "This client may not use this grant; check the client's settings.",
        "unsupported_grant_type": "This client may not use this grant; check its settings.",
        "invalid_scope": "A requested scope is not allowed; check MAKE_SCOPES.",
    }

    def __init__(
        self,
        error: str,
        error_description: str | None = None,
        status: int | None = None,
        *,
        action: str = "token request",
    ) -> None:
        self.error = error
        self.error_description = error_description
        self.status = status
        detail = f": {error_description}" if error_description else ""
        status_txt = f", HTTP {status}" if status is not None else ""
        hint = self._HINTS.get(error, "Try logging in again.")
        self.endpoint = "token"
        self.url = None
        MakeAuthError.__init__(self, f"Make's token endpoint refused the {action} ({error}{detail}"
                         f"{status_txt}). {hint}")


class IDTokenError(ProviderResponseError):
    """The ID token failed a check; ``check`` names which one."""

    def __init__(self, check: str, detail: str) -> None:
        self.check = check
        self.endpoint = "token"
        self.url = None
        MakeAuthError.__init__(
            self,
            f"The ID token was rejected ({check}): {detail}. The login was not completed; "
            "open the sign-in link again. If this persists, the issuer setting may be wrong."
        )


class NotLoggedInError(MakeAuthError):
    """No session for this profile."""

    def __init__(self, profile: str = "default", extra: str = "", *, lead: str = "") -> None:
        self.profile = profile
        flag = "" if profile == "default" else f" --profile {profile}"
        arg = "" if profile == "default" else f"profile={profile!r}"
        first = f"{lead} " if lead else ""
        super().__init__(
            f"{first}Not logged in to Make (profile {profile!r}). In a notebook run "
            f"`%load_ext make_notebook_auth` then `make = %make_login{flag}`; in Python use "
            f"`auth = MakeAuth({arg})`, open `auth.start().url`, then "
            f"`auth.finish(<pasted redirect URL>)`.{extra}"
        )


class LoginPendingError(NotLoggedInError):
    """The session was handed out before its login finished."""

    def __init__(self, profile: str = "default", how: str | None = None) -> None:
        super().__init__(profile)
        # ``how``: how to finish, in the words of the front end that started the login (the
        # panel, the terminal); neutral without one.
        self.args = (
            "The Make login is not finished yet: "
            + (how or "open the sign-in link shown when the login started, approve, then "
                      "finish the login where it was started (or start it again)."),
        )


class UnattendedLoginError(MakeAuthError):
    """Nobody can complete a browser login here (papermill, nbclient, a scheduler) and no
    remembered login or API token was found; the message says how to run unattended."""


class LoginExpiredError(MakeAuthError):
    """The access token expired and cannot be refreshed."""

    def __init__(self, profile: str = "default", reason: str = "") -> None:
        self.profile = profile
        flag = "" if profile == "default" else f" --profile {profile}"
        why = f" {reason}" if reason else ""
        super().__init__(
            f"The Make login for profile {profile!r} has expired.{why} Log in again: "
            f"`make = %make_login{flag} --force` (or MakeAuth(...).start() / .finish())."
        )


class MakeNetworkError(MakeError, requests.ConnectionError):
    """An endpoint (the API's or the login's) could not be reached, or did not answer in time.

    Also a ``requests.ConnectionError``, so code written for plain ``requests`` still catches
    it from ``session.get(...)``. ``answered`` is the HTTP status when the answer had begun
    (its body was then cut off), else None.
    """

    def __init__(self, endpoint: str, url: str, reason: str, *,
                 answered: int | None = None) -> None:
        self.endpoint = endpoint
        self.url = safe_url(url)
        self.answered = answered
        super().__init__(
            f"Could not reach Make's {endpoint} endpoint at {self.url}: {reason}. "
            "Check the network connection (or proxy / REQUESTS_CA_BUNDLE) and try again."
        )


class MakeAPIError(MakeError):
    """The Make API answered with an error (``{"message", "detail", "code": "SC403", ...}``).

    ``status`` is the HTTP status, ``code`` Make's error code (``"SC403"``), ``message`` and
    ``detail`` Make's texts, ``suberrors`` its list of sub-errors. For a 429 (rate limit) or a
    5xx, ``retry_after`` holds the server's ``Retry-After`` in seconds (when sent) and ``tries``
    how many times the request was sent before giving up.
    """

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        detail: str | None = None,
        *,
        suberrors: list | None = None,
        url: str | None = None,
        retry_after: float | None = None,
        tries: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.suberrors = list(suberrors or [])
        self.url = safe_url(url) if url else None
        self.retry_after = retry_after
        self.tries = tries
        self.hint = hint
        parts = [f"Make API error {status}"]
        if code:
            parts[0] += f" {code}"
        texts = [t for t in (message, detail) if t]
        if len(texts) == 2 and texts[0] == texts[1]:
            texts = texts[:1]
        text = ": ".join(texts)
        if text:
            parts.append(text)
        for sub in self.suberrors[:3]:
            if isinstance(sub, dict) and sub.get("message"):
                parts.append(str(sub["message"]))
        msg = parts[0] + (": " + "; ".join(parts[1:]) if parts[1:] else "")
        if self.url:
            msg += f" ({self.url})"
        if hint:
            msg += ". " + hint
        super().__init__(msg)


class ListingError(MakeAPIError):
    """An answer that is not a usable listing: not its shape, or no progress across pages."""

    def __init__(self, message: str, *, status: int = 200, url: str | None = None) -> None:
        super().__init__(status, message=message, url=url)
        self.args = (message + (f" ({self.url})" if self.url else ""),)


class RateBudgetError(MakeError):
    """A request would have waited longer than allowed for its organization's rate budget."""

    def __init__(self, organization_id: int | None, waited: float, needed: float,
                 limit: int | None, window: float, max_wait: float) -> None:
        self.organization_id = organization_id
        self.waited = waited
        self.needed = needed
        self.max_wait = max_wait
        super().__init__(
            f"Organization {organization_id}'s rate budget ({limit} requests per {window:.0f} s) "
            f"would need another {needed:.0f} s after waiting {waited:.0f} s, and a request "
            f"waits at most {max_wait:.0f} s: gave up. Other clients may be using the "
            "organization's limit (Make answered 429): try again later."
        )


class SkippedWarning(UserWarning):
    """A fan-out skipped teams or organizations this login may not read (SC403)."""


class RevocationWarning(UserWarning):
    """Logged out locally, but the provider could not revoke every token."""


class RememberedLoginError(MakeError):
    """The folder of remembered logins is unsafe to use (another user's, or open to others),
    or another process held its lock for too long."""


class RememberedLoginWarning(UserWarning):
    """A login remembered on disk could not be read, written or used; it was ignored."""


def safe_url(url: str) -> str:
    """The URL without query, fragment or user info: what is safe to show in a message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if not parts.scheme:
        return parts.path or "<empty URL>"
    return f"{parts.scheme}://{host}{parts.path}"
