"""Make's zones: the home zone found by itself, each organization's zone, request routing.

An organization's API lives on its zone (``https://eu1.make.com/api/v2/``). ``organizations``
lists every organization of the user, in every zone, with its ``zone``; ``teams`` lists an
organization's teams. From these a session learns, once, which zone serves each organization
and team, and sends a request that names an ``organizationId`` or ``teamId`` (in its params,
or as ``organizations/{id}`` / ``teams/{id}`` in its path) to that zone, with the token.

Token custody: a zone learned from Make's answers is used only through
``MakeSession._allow_token_base``, which accepts Make zones' API bases (a known zone host,
https, port 443, ``/api/v2/``), or loopback bases when the home base is itself loopback (the
sandbox's zones ``127.0.0.1:PORT``). An organization in any other "zone" is refused with a
clear error, and its requests are not sent.

Look-ups (``organizations``, ``teams?organizationId=``) are made once per session, lazily,
when a request names an id the session does not know yet; they are tried once (no retries)
and a failed look-up is not retried for a minute: the request then goes where it was going.

Core module: no pandas, no printing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .config import api_base_for_zone, is_loopback_host
from .errors import KNOWN_ZONES, MakeConfigError, MakeError

if TYPE_CHECKING:
    from .session import MakeSession

#: The order in which a session without a configured zone asks the known zones for
#: ``users/me``; the first to answer is the home zone.
HOME_ZONE_ORDER: tuple[str, ...] = KNOWN_ZONES
ORG_COLUMNS = ("id", "name", "zone", "license")
LOOKUP_RETRY_AFTER = 60.0  # seconds before a failed look-up is tried again
_PATH_ID = re.compile(r"(organizations|teams)/(\d+)(?:[/?#]|$)")
_HOST_PORT = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})")


def api_base_of_zone(zone: str) -> str:
    """The API base of a zone: ``eu1.make.com`` -> ``https://eu1.make.com/api/v2/``; a loopback
    ``127.0.0.1:PORT`` (the sandbox's zones) -> ``http://127.0.0.1:PORT/api/v2/``."""
    text = zone.strip()
    hp = _HOST_PORT.fullmatch(text)
    if hp and is_loopback_host(hp.group(1)):
        return f"http://{hp.group(1)}:{int(hp.group(2))}/api/v2/"
    return api_base_for_zone(text)


def _first_int(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def named_ids(params: Any, rest: str) -> tuple[int | None, int | None]:
    """``(organizationId, teamId)`` a request names in its params or its path below the base."""
    org = team = None
    if params:
        if isinstance(params, (str, bytes)):
            text = params.decode() if isinstance(params, bytes) else params
            pairs: Iterable[tuple[Any, Any]] = parse_qsl(text)
        elif isinstance(params, Mapping):
            pairs = params.items()
        else:
            pairs = params
        for name, value in pairs:
            if name == "organizationId" and org is None:
                org = _first_int(value)
            elif name == "teamId" and team is None:
                team = _first_int(value)
    if org is None and team is None and rest:
        match = _PATH_ID.match(rest)
        if match:
            if match.group(1) == "organizations":
                org = int(match.group(2))
            else:
                team = int(match.group(2))
    if "?" in rest and org is None and team is None:
        return named_ids(rest.split("?", 1)[1].split("#", 1)[0], "")
    return org, team


@dataclass(frozen=True)
class Organization:
    id: int
    name: str | None
    zone: str | None
    base: str | None  # API base of its zone (None: unknown or refused)
    api_limit: int | None  # license.apiLimit, where Make gave it
    refused: str | None = None  # why its zone is not used


@dataclass(frozen=True)
class Team:
    id: int
    name: str | None
    organization_id: int


@dataclass
class ZoneMap:
    """What a session knows about the user's organizations and teams (thread-safe)."""

    orgs: dict[int, Organization] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # the organizations listing's order
    teams: dict[int, Team] = field(default_factory=dict)
    teams_of: dict[int, list[int]] = field(default_factory=dict)  # org -> team ids, API order
    loaded: bool = False
    failed_at: float = float("-inf")
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    # -- learning -------------------------------------------------------------------------

    def _learn_org(self, session: MakeSession, item: Mapping[str, Any]) -> Organization | None:
        org_id = _first_int(item.get("id"))
        if org_id is None:
            return None
        zone = item.get("zone") if isinstance(item.get("zone"), str) else None
        license_ = item.get("license")
        limit = _first_int(license_.get("apiLimit")) if isinstance(license_, Mapping) else None
        old = self.orgs.get(org_id)
        base = refused = None
        if zone:
            try:
                base = session._allow_token_base(api_base_of_zone(zone))
            except MakeConfigError as exc:
                refused = str(exc)
        elif old is not None:
            zone, base, refused = old.zone, old.base, old.refused
        if limit is None and old is not None:
            limit = old.api_limit
        name = item.get("name") if isinstance(item.get("name"), str) else None
        org = Organization(org_id, name or (old.name if old else None), zone, base, limit,
                           refused)
        self.orgs[org_id] = org
        return org

    def load_orgs(self, session: MakeSession, *, quiet: bool = True) -> bool:
        """List the user's organizations (once). Quiet: failures return False."""
        from . import listing, ratelimit

        with self.lock:
            if self.loaded:
                return True
            if quiet and time.monotonic() - self.failed_at < LOOKUP_RETRY_AFTER:
                return False
            self._local.busy = True
            try:
                params = [("cols[]", c) for c in ORG_COLUMNS]
                if quiet:
                    with ratelimit.no_retries():
                        items = list(listing.paginate(session, "organizations", params,
                                                      key="organizations",
                                                      page_size=listing.MAX_PAGE_SIZE))
                else:
                    items = list(listing.paginate(session, "organizations", params,
                                                  key="organizations",
                                                  page_size=listing.MAX_PAGE_SIZE))
            except MakeError:
                self.failed_at = time.monotonic()
                if quiet:
                    return False
                raise
            finally:
                self._local.busy = False
            order = []
            for item in items:
                if isinstance(item, Mapping):
                    org = self._learn_org(session, item)
                    if org is not None:
                        order.append(org.id)
            self.order = order
            self.loaded = True
            return True

    def learn_teams(self, organization_id: int, items: Iterable[Any]) -> list[Team]:
        teams = []
        with self.lock:
            for item in items:
                if not isinstance(item, Mapping):
                    continue
                team_id = _first_int(item.get("id"))
                if team_id is None:
                    continue
                name = item.get("name") if isinstance(item.get("name"), str) else None
                team = Team(team_id, name, organization_id)
                self.teams[team_id] = team
                teams.append(team)
            self.teams_of[organization_id] = [t.id for t in teams]
        return teams

    def load_teams(self, session: MakeSession, organization_id: int, *,
                   quiet: bool = True) -> list[Team] | None:
        """The teams of one organization (listed once, on its zone)."""
        from . import listing, ratelimit

        with self.lock:
            if organization_id in self.teams_of:
                return [self.teams[t] for t in self.teams_of[organization_id]]
        params = [("organizationId", organization_id)]
        try:
            if quiet:
                with ratelimit.no_retries():
                    items = list(listing.paginate(session, "teams", params, key="teams",
                                                  page_size=listing.MAX_PAGE_SIZE))
            else:
                items = list(listing.paginate(session, "teams", params, key="teams",
                                              page_size=listing.MAX_PAGE_SIZE))
        except MakeError:
            if quiet:
                return None
            raise
        return self.learn_teams(organization_id, items)

    def set_api_limit(self, organization_id: int, api_limit: int | None) -> None:
        with self.lock:
            org = self.orgs.get(organization_id)
            if org is None:
                org = Organization(organization_id, None, None, None, api_limit)
            self.orgs[organization_id] = replace(org, api_limit=api_limit)

    # -- lookups --------------------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(getattr(self._local, "busy", False))

    def organization(self, session: MakeSession, organization_id: int) -> Organization | None:
        org = self.orgs.get(organization_id)
        if (org is None or org.zone is None) and not self.loaded and not self._busy():
            self.load_orgs(session)
            org = self.orgs.get(organization_id)
        return org

    def organization_of_team(self, session: MakeSession, team_id: int) -> int | None:
        team = self.teams.get(team_id)
        if team is not None:
            return team.organization_id
        if self._busy():
            return None
        if not self.loaded and not self.load_orgs(session):
            return None
        if len(self.order) == 1:
            return self.order[0]
        with self.lock:
            if team_id in self.teams:
                return self.teams[team_id].organization_id
            self._local.busy = True
            try:
                for org_id in self.order:
                    if org_id not in self.teams_of:
                        self.load_teams(session, org_id)
            finally:
                self._local.busy = False
        team = self.teams.get(team_id)
        return team.organization_id if team is not None else None

    # -- routing --------------------------------------------------------------------------

    def route(self, session: MakeSession, url: str, params: Any
              ) -> tuple[str, int | None]:
        """Where a request goes and the organization it is for (None: it names none)."""
        base = session._token_base_of(url)
        if base is None:
            return url, None
        rest = url[len(base):]
        org_id, team_id = named_ids(params, rest)
        if org_id is None and team_id is not None:
            org_id = self.organization_of_team(session, team_id)
        if org_id is None:
            return url, None
        org = self.organization(session, org_id)
        if org is None:
            return url, org_id
        if org.refused is not None:
            raise MakeConfigError(
                f"Organization {org_id} is in zone {org.zone!r}, which is not a Make zone; "
                "its requests are not sent (they would carry your token). "
                + org.refused.split(": ", 1)[-1])
        if org.base is not None and org.base != base:
            url = org.base + rest
        return url, org_id


def check_candidates(zones: Sequence[str]) -> list[str]:
    """API bases of the candidate home zones (a test/sandbox seam): known Make zones, or only
    loopback ones (a sandbox's zones). Anything else is refused."""
    bases = [api_base_of_zone(z) for z in zones]
    if not bases:
        raise MakeConfigError("zones= needs at least one zone.")
    from urllib3.util import parse_url

    hosts = [(parse_url(b).scheme, (parse_url(b).host or "").lower()) for b in bases]
    loopback = [is_loopback_host(h) for _, h in hosts]
    if all(loopback):
        return bases
    if any(loopback) or any(s != "https" or h not in KNOWN_ZONES for s, h in hosts):
        raise MakeConfigError(
            "zones= takes Make's zones (" + ", ".join(KNOWN_ZONES) + ") or, for tests and the "
            "sandbox, loopback zones (127.0.0.1:PORT) only, not a mix.")
    return bases


__all__ = [
    "HOME_ZONE_ORDER",
    "Organization",
    "Team",
    "ZoneMap",
    "api_base_of_zone",
    "check_candidates",
    "named_ids",
]
