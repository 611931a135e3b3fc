"""Log into the Make API (make.com) from Jupyter with OAuth 2.0 PKCE and OpenID Connect.

>>> from make_notebook_auth import MakeAuth
>>> auth = MakeAuth()              # MAKE_CLIENT_ID etc. from the environment
>>> print(auth.start().url)        # open, approve, copy the address you land on
>>> make = auth.finish("http://127.0.0.1:8765/callback?code=...&state=...")
>>> make.get("users/me").json()
>>> make.frame("scenarios", {"teamId": 1})     # every page, as a DataFrame

In a notebook: ``%load_ext make_notebook_auth`` then ``make = %make_login``.
"""

from __future__ import annotations

import logging

from ._version import __version__
from .api import get_session, logout, userinfo_frame
from .auth import MakeAuth
from .errors import (
    KNOWN_ZONES,
    AuthorizationDeniedError,
    AuthorizationResponseError,
    IDTokenError,
    InsecureTransportError,
    IssuerMismatchError,
    ListingError,
    LoginExpiredError,
    LoginPendingError,
    MakeAPIError,
    MakeAuthError,
    MakeConfigError,
    MakeError,
    MakeNetworkError,
    MissingClientIdError,
    NotLoggedInError,
    ProviderResponseError,
    RateBudgetError,
    RememberedLoginWarning,
    RevocationWarning,
    SkippedWarning,
    StateMismatchError,
    TokenEndpointError,
    UnattendedLoginError,
)
from .flow import AuthorizationRequest
from .session import MakeSession


def _no_debug_records(record: logging.LogRecord) -> bool:
    # requests-oauthlib and oauthlib log tokens, codes and request bodies at DEBUG level.
    return record.levelno > logging.DEBUG


for _name in ("requests_oauthlib", "requests_oauthlib.oauth2_session", "oauthlib"):
    logging.getLogger(_name).addFilter(_no_debug_records)


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """``%load_ext make_notebook_auth``: register the ``%make_*`` magics."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    from .magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "KNOWN_ZONES",
    "AuthorizationDeniedError",
    "AuthorizationRequest",
    "AuthorizationResponseError",
    "IDTokenError",
    "InsecureTransportError",
    "IssuerMismatchError",
    "ListingError",
    "LoginExpiredError",
    "LoginPendingError",
    "MakeAPIError",
    "MakeAuth",
    "MakeAuthError",
    "MakeConfigError",
    "MakeError",
    "MakeNetworkError",
    "MakeSession",
    "MissingClientIdError",
    "NotLoggedInError",
    "ProviderResponseError",
    "RateBudgetError",
    "RememberedLoginWarning",
    "RevocationWarning",
    "SkippedWarning",
    "StateMismatchError",
    "TokenEndpointError",
    "UnattendedLoginError",
    "__version__",
    "get_session",
    "logout",
    "userinfo_frame",
]
