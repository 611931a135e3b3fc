"""Where a URL really goes, and whether it is under an API base that may receive the token.

Every decision is made on a URL as ``requests`` will send it (a prepared request's URL), parsed
with ``urllib3.util.parse_url``: the parser urllib3 uses to pick the host it connects to.
``urllib.parse.urlsplit`` reads some URLs differently (``https://attacker.example\\@eu1.make.com/``
is ``eu1.make.com`` to it, ``attacker.example`` to urllib3), so it is never used to decide a host.

Pure functions: no network, no state.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .config import is_loopback_host
from .errors import KNOWN_ZONES, MakeConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}
ZONE_API_PATH = "/api/v2/"


class Target(NamedTuple):
    """Scheme, host, port (default filled in) and path of a URL, as urllib3 reads it."""

    scheme: str
    host: str
    port: int
    path: str


@lru_cache(maxsize=256)
def target(url: str) -> Target | None:
    """Where ``url`` goes, or None when it is not a plain http(s) URL without user info.

    Cached: a request's URL is asked about several times (token, proxies), an API base on
    every request; the answer depends on the string alone."""
    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError, TypeError):
        return None
    scheme = (parts.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not parts.host or parts.auth is not None:
        return None
    port = parts.port if parts.port is not None else DEFAULT_PORTS[scheme]
    return Target(scheme, parts.host.lower(), port, parts.path or "/")


def is_loopback_url(url: str) -> bool:
    """True when urllib3 would connect to a loopback host (127.0.0.0/8, ::1, localhost)."""
    where = target(url)
    return where is not None and is_loopback_host(where.host)


def _clean_path(path: str) -> bool:
    """No dot segments, backslashes or encoded slashes, raw or percent-decoded."""
    for form in (path, unquote(path)):
        if "\\" in form or any(seg in (".", "..") for seg in form.split("/")):
            return False
    return "%2f" not in path.lower() and "%5c" not in path.lower()


def under_base(url: str, base: str) -> bool:
    """True when ``url`` goes to ``base``'s origin (scheme, host, port) and under its path.

    ``base`` ends with ``/``. Plain http counts only for loopback hosts. The path is checked
    as sent (no dot segments, no backslashes, no encoded slashes) and as urllib3 normalises it.
    """
    got, want = target(url), target(base)
    if got is None or want is None or got[:3] != want[:3]:
        return False
    if got.scheme != "https" and not is_loopback_host(got.host):
        return False
    try:
        sent_path = urlsplit(url).path  # what requests puts on the request line
    except ValueError:
        return False
    prefix = want.path if want.path.endswith("/") else want.path + "/"
    return (
        _clean_path(sent_path)
        and sent_path.startswith(prefix)
        and got.path.startswith(prefix)
    )


def normalise_base(url: str) -> str:
    """``scheme://host[:port]/path/`` with a lower-case host and no default port."""
    where = target(url)
    if where is None or not _clean_path(where.path):
        raise MakeConfigError(f"Not a usable API base URL: {url!r}.")
    try:
        extra = urlsplit(url)
    except ValueError:
        raise MakeConfigError(f"Not a usable API base URL: {url!r}.") from None
    if extra.query or extra.fragment:
        raise MakeConfigError(f"An API base URL has no query or fragment: {url!r}.")
    host = where.host  # urllib3 keeps the brackets of an IPv6 address
    port = "" if where.port == DEFAULT_PORTS[where.scheme] else f":{where.port}"
    path = where.path if where.path.endswith("/") else where.path + "/"
    return f"{where.scheme}://{host}{port}{path}"


def zone_base(url: str, *, allow_loopback: bool) -> str:
    """``url`` normalised, if it is a Make zone's API base (a known zone host, https, port
    443, path ``/api/v2/``) or, when ``allow_loopback``, a loopback base ending in ``/api/v2/``
    (test and sandbox zones); otherwise ``MakeConfigError``."""
    base = normalise_base(url)
    where = target(base)
    assert where is not None
    if (where.scheme, where.port, where.path) == ("https", 443, ZONE_API_PATH) and \
            where.host in KNOWN_ZONES:
        return base
    if allow_loopback and is_loopback_host(where.host) and where.path.endswith(ZONE_API_PATH):
        return base
    raise MakeConfigError(
        f"{url!r} is not a Make zone's API base (https://<zone>/api/v2/ with a zone among "
        + ", ".join(KNOWN_ZONES) + "): the access token is not sent there."
    )


__all__ = ["Target", "is_loopback_url", "normalise_base", "target", "under_base", "zone_base"]
