"""HTTP calls to the authorization server: timeouts, transport rule, errors without secrets.

All calls go through ``requests`` so that proxies and ``REQUESTS_CA_BUNDLE`` apply to every
one of them, the JWKS fetch included.
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from ._version import __version__
from .config import require_secure
from .errors import MakeNetworkError

TIMEOUT = (10.0, 30.0)  # connect, read
USER_AGENT = f"make-notebook-auth/{__version__}"

_local = threading.local()


def auth_server_session() -> requests.Session:
    """One ``requests.Session`` per thread for calls to the authorization server."""
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = requests.Session()
        sess.headers["User-Agent"] = USER_AGENT
        sess.headers["Accept"] = "application/json"
        _local.session = sess
    return sess


def call(
    method: str,
    url: str,
    endpoint: str,
    *,
    session: requests.Session | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send one request to a named endpoint; network failures become ``MakeNetworkError``."""
    require_secure(url, f"Make's {endpoint} endpoint")
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("allow_redirects", False)
    sess = session or auth_server_session()
    try:
        return sess.request(method, url, **kwargs)
    except requests.Timeout:
        raise MakeNetworkError(endpoint, url, "the request timed out") from None
    except requests.exceptions.SSLError:
        raise MakeNetworkError(
            endpoint, url, "the TLS certificate could not be verified "
            "(behind a corporate proxy, set REQUESTS_CA_BUNDLE to its CA bundle)"
        ) from None
    except requests.ConnectionError:
        raise MakeNetworkError(endpoint, url, "the connection failed") from None
    except requests.RequestException as exc:
        raise MakeNetworkError(endpoint, url, type(exc).__name__) from None


def json_body(resp: requests.Response) -> Any:
    """The response's JSON, or None when it is not JSON."""
    try:
        return resp.json()
    except ValueError:
        return None
