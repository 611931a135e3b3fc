"""Settings for one Make login: arguments first, then ``MAKE_*`` environment variables.

Also the transport rule every URL passes before anything is sent: https, or plain http
to a loopback host (127.0.0.0/8, ::1, localhost) for local servers and tests.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import (
    KNOWN_ZONES,
    InsecureTransportError,
    MakeConfigError,
    MissingClientIdError,
)

DEFAULT_ISSUER = "https://www.make.com"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/callback"
# A read-only set for exploring, plus ``openid`` for an ID token (see README).
DEFAULT_SCOPES = (
    "openid",
    "user:read",
    "organizations:read",
    "teams:read",
    "scenarios:read",
    "connections:read",
    "datastores:read",
    "hooks:read",
    "dlqs:read",
)

API_TOKEN_ENV = "MAKE_API_TOKEN"
ENV_VARS = (
    "MAKE_CLIENT_ID",
    "MAKE_CLIENT_SECRET",
    "MAKE_SCOPES",
    "MAKE_REDIRECT_URI",
    "MAKE_ZONE",
    "MAKE_ISSUER",
    "MAKE_API_URL",
    API_TOKEN_ENV,
)


class ColabSecrets(Mapping[str, str]):
    """The ``MAKE_*`` settings kept in Colab's secrets (``google.colab.userdata``), read-only.

    ``get(name)`` asks ``userdata.get(name)`` once per name: a secret that does not exist
    (``SecretNotFoundError``) or that this notebook was not granted (``NotebookAccessError``)
    is unset; the names denied are kept in ``denied`` for error messages."""

    def __init__(self, userdata: object) -> None:
        self._userdata = userdata
        self._seen: dict[str, str | None] = {}
        self.denied: set[str] = set()

    def _lookup(self, name: str) -> str | None:
        if name not in ENV_VARS:
            return None
        if name not in self._seen:
            value: str | None = None
            try:
                got = self._userdata.get(name)  # type: ignore[attr-defined]
                value = got if isinstance(got, str) else None
            except Exception as exc:  # noqa: BLE001 - Colab's errors are its own classes
                if type(exc).__name__ == "NotebookAccessError":
                    self.denied.add(name)
                elif type(exc).__name__ != "SecretNotFoundError":
                    raise MakeConfigError(
                        f"Colab's secrets could not be read ({type(exc).__name__}).") from None
            self._seen[name] = value
        return self._seen[name]

    def __getitem__(self, name: str) -> str:
        value = self._lookup(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter([n for n in ENV_VARS if self._lookup(n) is not None])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def hint(self) -> str:
        """A sentence naming the secrets this notebook may not read, or ''."""
        if not self.denied:
            return ""
        return (" Colab's secrets " + ", ".join(sorted(self.denied)) + " exist but this "
                "notebook has no access to them: allow it in Colab's Secrets panel (the key "
                "icon), then run the cell again.")


_colab: ColabSecrets | None = None


def settings_source(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """Where the ``MAKE_*`` settings come from: ``environ`` (default ``os.environ``); in Colab,
    when the environment holds none of them, Colab's secrets (:class:`ColabSecrets`)."""
    global _colab
    if environ is not None:
        return environ
    env = os.environ
    if any(env.get(name, "").strip() for name in ENV_VARS):
        return env
    if _colab is None:
        try:
            from google.colab import userdata  # type: ignore[import-not-found]
        except ImportError:
            return env
        _colab = ColabSecrets(userdata)
    return _colab


def setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """One ``MAKE_*`` setting (stripped) from :func:`settings_source`, or None when unset."""
    value = settings_source(environ).get(name)
    return value.strip() or None if isinstance(value, str) else None


def colab_hint(environ: Mapping[str, str] | None = None) -> str:
    source = settings_source(environ)
    return source.hint() if isinstance(source, ColabSecrets) else ""

_HOW_TO_GET_A_CLIENT = (
    "Request an OAuth 2.0 client from Make (developer docs: 'Requesting an OAuth 2.0 "
    "client', https://developers.make.com/api-documentation/authentication/"
    "requesting-an-oauth-2.0-client; approval is manual), register the redirect URI "
    f"{DEFAULT_REDIRECT_URI}, then set MAKE_CLIENT_ID (and MAKE_CLIENT_SECRET for a "
    "confidential client) or pass client_id=... . To try the package without a Make "
    "account, use the sandbox: `%make_login --sandbox`."
)


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure(url: str, what: str) -> str:
    """Return ``url`` if it is https, or http to a loopback host; raise otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise MakeConfigError(f"{what} is not a valid URL.") from exc
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    if parts.scheme not in ("http", "https") or not host:
        raise MakeConfigError(f"{what} must be an absolute https URL, got {url!r}.")
    raise InsecureTransportError(what, url)


def parse_scopes(scopes: str | Iterable[str] | None) -> list[str]:
    """Scopes from a list, or a string separated by spaces and/or commas; order kept, no repeats."""
    if scopes is None:
        return []
    if isinstance(scopes, str):
        items: Iterable[str] = re.split(r"[\s,]+", scopes)
    else:
        items = (s.strip() for s in scopes)
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


def api_base_for_zone(zone: str) -> str:
    """``eu1``, ``eu1.make.com`` or ``https://eu1.make.com[/api/v2]`` -> ``https://eu1.make.com/api/v2/``."""
    z = zone.strip().rstrip("/")
    if not z:
        raise MakeConfigError("MAKE_ZONE is empty. " + zones_hint())
    if "://" in z:
        try:
            parts = urlsplit(z)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise MakeConfigError(f"MAKE_ZONE {zone!r} is not a URL. " + zones_hint()) from None
        if not parts.hostname:
            raise MakeConfigError(f"MAKE_ZONE {zone!r} is not a host name. " + zones_hint())
        base = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        if not path.endswith("/api/v2"):
            path = path + "/api/v2" if path else "/api/v2"
        return require_secure(base + path + "/", "MAKE_ZONE")
    host = z.lower()
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", host):
        raise MakeConfigError(f"MAKE_ZONE {zone!r} is not a zone. " + zones_hint())
    if "." not in host:
        known = _short_zones()
        if host not in known:
            raise MakeConfigError(
                f"MAKE_ZONE {zone!r} is not a Make zone: the known ones are "
                + ", ".join(known) + " (or their hosts: " + ", ".join(KNOWN_ZONES) + "). "
                "A custom zone needs its full host name or URL."
            )
        host = f"{host}.make.com"
    return f"https://{host}/api/v2/"


def _short_zones() -> tuple[str, ...]:
    """``eu1``, ``eu2``, ... : the short names of the known ``*.make.com`` zones."""
    return tuple(z.split(".", 1)[0] for z in KNOWN_ZONES if z.count(".") == 2)


def zones_hint() -> str:
    return (
        "Set MAKE_ZONE (or zone=...) to your Make zone, the host in your Make dashboard's "
        "address bar: one of " + ", ".join(KNOWN_ZONES) + " (short forms like 'eu1' work; "
        "another host or URL is taken as a custom zone), "
        "or set MAKE_API_URL to the full API base."
    )


def _normalise_api_url(url: str) -> str:
    url = url.strip()
    require_secure(url, "MAKE_API_URL")
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class MakeConfig:
    """Resolved settings of one login. ``client_secret`` never appears in the repr."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    redirect_uri: str = DEFAULT_REDIRECT_URI
    issuer: str = DEFAULT_ISSUER
    zone: str | None = None
    api_url: str | None = None  # normalised API base ending in "/", or None when unknown
    profile: str = "default"

    @property
    def confidential(self) -> bool:
        return bool(self.client_secret)

    @property
    def wants_id_token(self) -> bool:
        return "openid" in self.scopes

    @classmethod
    def for_api_token(
        cls,
        *,
        zone: str | None = None,
        api_url: str | None = None,
        profile: str = "default",
        environ: Mapping[str, str] | None = None,
    ) -> MakeConfig:
        """Settings of a login with a Make API token: no client, but a zone or API base is
        required (an API token belongs to one zone)."""
        zone_value = (zone or "").strip() or None
        api = (api_url or "").strip() or None
        if not api and not zone_value:  # arguments win over the environment
            zone_value = setting("MAKE_ZONE", environ)
            api = setting("MAKE_API_URL", environ)
        if api:
            api = _normalise_api_url(api)
        elif zone_value:
            api = api_base_for_zone(zone_value)
        else:
            raise MakeConfigError(
                "An API token belongs to one Make zone, and none is set. " + zones_hint()
                + colab_hint(environ))
        if not profile or not str(profile).strip():
            raise MakeConfigError("The profile name must not be empty.")
        return cls(client_id="", scopes=(), zone=zone_value, api_url=api,
                   profile=str(profile).strip())

    @classmethod
    def resolve(
        cls,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        scopes: str | Iterable[str] | None = None,
        redirect_uri: str | None = None,
        zone: str | None = None,
        issuer: str | None = None,
        api_url: str | None = None,
        profile: str = "default",
        environ: Mapping[str, str] | None = None,
    ) -> MakeConfig:
        env = settings_source(environ)

        def pick(value: str | None, name: str) -> str | None:
            if value is not None and str(value).strip():
                return str(value).strip()
            got = env.get(name, "").strip()
            return got or None

        cid = pick(client_id, "MAKE_CLIENT_ID")
        if not cid:
            raise MissingClientIdError("No Make OAuth client id: MAKE_CLIENT_ID is not set. "
                                       + _HOW_TO_GET_A_CLIENT + colab_hint(environ))
        secret = pick(client_secret, "MAKE_CLIENT_SECRET")
        scope_list = parse_scopes(scopes) if scopes is not None else []
        if not scope_list:
            scope_list = parse_scopes(env.get("MAKE_SCOPES")) or list(DEFAULT_SCOPES)
        redirect = pick(redirect_uri, "MAKE_REDIRECT_URI") or DEFAULT_REDIRECT_URI
        require_secure(redirect, "The redirect URI (MAKE_REDIRECT_URI)")
        iss = (pick(issuer, "MAKE_ISSUER") or DEFAULT_ISSUER).rstrip("/")
        require_secure(iss, "The issuer (MAKE_ISSUER)")
        zone_value = pick(zone, "MAKE_ZONE")
        api = pick(api_url, "MAKE_API_URL")
        if api:
            api = _normalise_api_url(api)
        elif zone_value:
            api = api_base_for_zone(zone_value)
        if not profile or not str(profile).strip():
            raise MakeConfigError("The profile name must not be empty.")
        return cls(
            client_id=cid,
            client_secret=secret,
            scopes=tuple(scope_list),
            redirect_uri=redirect,
            issuer=iss,
            zone=zone_value,
            api_url=api,
            profile=str(profile).strip(),
        )
