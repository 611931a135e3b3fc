"""A Make-like read-only API under ``/api/v2/``, as a reusable WSGI app.

:class:`MakeLikeAPI` takes a *token validator*: a callable ``token -> (subject, scopes)`` or
``None``. The sandbox passes one that accepts only access tokens it issued; a test can pass one
that asks another OpenID provider (token introspection) and serve the same API for it.
Subjects map to the demo users by OpenID ``sub`` (``"1001"``) or by key (``"alice"``); other
subjects get a stable guest profile.

Behaviour copied from Make's documentation:

* ``Authorization: Bearer <token>``; a missing, unknown, expired or revoked token gets 401.
  With ``validate_api_token``, also ``Authorization: Token <API token>`` (Make's API tokens),
  checked only by that validator.
* ``:read`` scopes allow GET (``scenarios:read`` for ``scenarios``, ``datastores:read`` for
  ``data-stores`` ...), ``:write`` the rest; a missing scope gets 403 with code ``SC403``.
* Lists are paginated with ``pg[offset]`` (default 0), ``pg[limit]`` (default 100, at most
  10000), ``pg[sortBy]`` and ``pg[sortDir]`` (``asc``/``desc``) and come back as
  ``{"<name>": [...], "pg": {"sortBy", "limit", "sortDir", "offset"}}``; ``cols[]`` picks fields.
* ``scenarios`` needs ``teamId`` or ``organizationId`` (not both); ``teams`` needs
  ``organizationId``; ``connections``, ``data-stores`` and ``hooks`` need ``teamId``.
* Errors share one shape: ``{"message", "detail", "code", "suberrors"}``.
* Over the rate limit: 429, "Requests limit for organization exceeded, please try again
  later.", with ``Retry-After`` (per token: ``rate_limit``; per organization: the license's
  ``apiLimit`` per minute, with or without ``Retry-After``, see :class:`FaultInjector`).
* Zones: without ``zone_names`` every organization is in the zone serving the request (its
  ``zone`` is the request's ``Host``). With ``zone_names`` (``["127.0.0.1:PORT", ...]``)
  the app serves zone number ``zone``: ``organizations`` lists every organization of the
  user with its ``zone``, and ``license`` only for those of this zone; a request naming an
  organization or team of another zone (``organizationId``, ``teamId``,
  ``organizations/{id}``, ``teams/{id}``, ``scenarios/{id}``) gets 404 ``SC404`` naming the
  right zone. ``users/me`` answers on every zone.
* ``latency`` seconds of delay before each API answer (to measure concurrency).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import data
from .data import DemoUser, Item
from .faults import FaultInjector
from .wsgi import BodyTooLarge, Request, Response, StartResponse

log = logging.getLogger("make_notebook_auth.sandbox")

TokenValidator = Callable[[str], "tuple[str, Iterable[str]] | None"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 10000
RATE_LIMIT_MESSAGE = "Requests limit for organization exceeded, please try again later."


def make_error(status: int, message: str, detail: str, code: str,
               suberrors: Sequence[str] = (), headers: Iterable[tuple[str, str]] = ()
               ) -> Response:
    """A Make-shaped error response."""
    body = {"message": message, "detail": detail, "code": code,
            "suberrors": [{"message": s} for s in suberrors]}
    return Response.json(body, status, headers)


class ApiError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _bad_request(detail: str, *suberrors: str) -> ApiError:
    return ApiError(make_error(400, "Bad Request", detail, "SC400", suberrors or (detail,)))


def _forbidden(detail: str, *suberrors: str) -> ApiError:
    return ApiError(make_error(403, "Permission denied", detail, "SC403", suberrors))


def _not_found(detail: str) -> ApiError:
    return ApiError(make_error(404, "Not Found", detail, "SC404"))


@dataclass(frozen=True)
class Caller:
    user: DemoUser
    scopes: frozenset[str]


Handler = Callable[[Request, Caller, "re.Match[str]"], Response]


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    resource: str  # scope prefix: "scenarios" -> scenarios:read / scenarios:write
    handler: Handler


class MakeLikeAPI:
    """WSGI app for the Make-like API. Mount it at ``prefix`` (default ``/api/v2/``)."""

    def __init__(self, validate_token: TokenValidator, *, faults: FaultInjector | None = None,
                 prefix: str = "/api/v2/", zone: int = 0,
                 zone_names: Sequence[str] | None = None, latency: float = 0.0,
                 validate_api_token: TokenValidator | None = None) -> None:
        self.validate_token = validate_token
        self.validate_api_token = validate_api_token
        self.faults = faults or FaultInjector()
        self.prefix = "/" + prefix.strip("/") + "/"
        self.zone = zone
        self.zone_names = list(zone_names) if zone_names else None
        self.latency = latency
        r = self._route
        self._routes: list[_Route] = [
            r(r"users/me", "user", self._users_me),
            r(r"users/me/current-authorization", "user", self._current_authorization),
            r(r"organizations", "organizations", self._organizations),
            r(r"organizations/(?P<id>\d+)", "organizations", self._organization),
            r(r"teams", "teams", self._teams),
            r(r"teams/(?P<id>\d+)", "teams", self._team),
            r(r"scenarios", "scenarios", self._scenarios),
            r(r"scenarios/(?P<id>\d+)", "scenarios", self._scenario),
            r(r"scenarios/(?P<id>\d+)/logs", "scenarios", self._scenario_logs),
            r(r"connections", "connections", self._team_list("connections",
                                                             data.connections_for_team)),
            r(r"data-stores", "datastores", self._team_list("dataStores",
                                                            data.data_stores_for_team)),
            r(r"hooks", "hooks", self._team_list("hooks", data.hooks_for_team)),
        ]

    @staticmethod
    def _route(pattern: str, resource: str, handler: Handler) -> _Route:
        return _Route(re.compile(pattern + "/?"), resource, handler)

    # -- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            response = self.handle(Request(environ))
        except BodyTooLarge:
            response = make_error(413, "Payload Too Large", "Request body too large.", "SC413")
        except Exception as exc:  # never echo input; say only what kind of failure it was
            log.warning("sandbox API: internal error (%s)", type(exc).__name__)
            response = make_error(500, "Internal Server Error", "Sandbox failure.", "SC500")
        return response(start_response)

    def handle(self, req: Request) -> Response:
        """Answer one API request (``req.path`` starts with the prefix)."""
        if self.latency > 0:
            time.sleep(self.latency)
        try:
            return self._handle(req)
        except ApiError as error:
            return error.response

    def _handle(self, req: Request) -> Response:
        token = req.bearer()
        result = self.validate_token(token) if token else None
        if token is None and self.validate_api_token is not None:
            # Make's API tokens: "Authorization: Token <token>" (never accepted as a bearer,
            # and OAuth access tokens are never accepted with this scheme)
            token = req.credentials("token")
            result = self.validate_api_token(token) if token else None
        if token is None or result is None:
            return make_error(401, "Access denied", "Invalid access token.", "SC401",
                              headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')])
        subject, scopes = result
        caller = Caller(data.user_for_subject(str(subject)), frozenset(scopes))

        fault = self.faults.take("api")
        if fault is not None:
            return self._fault_response(fault.status, fault.retry_after)
        wait = self.faults.over_limit(token)
        if wait is not None:
            return self._fault_response(429, wait)

        path = req.path[len(self.prefix):] if req.path.startswith(self.prefix) else None
        for route in self._routes if path is not None else []:
            match = route.pattern.fullmatch(path or "")
            if match is None:
                continue
            needed = f"{route.resource}:{'read' if req.method in ('GET', 'HEAD') else 'write'}"
            if needed not in caller.scopes:
                raise _forbidden("Access denied.", f"The token lacks the scope {needed}.")
            if req.method != "GET":
                return make_error(405, "Method Not Allowed",
                                  "The sandbox API is read-only.", "SC405")
            organization_id = self._organization_of(req, match)
            if organization_id in caller.user.organization_ids:  # others get 403 below
                self._check_zone(organization_id)
                license_ = data.ORGANIZATIONS[organization_id]["license"]
                wait = self.faults.over_org_limit(organization_id, int(license_["apiLimit"]))
                if wait is not None:
                    return self._fault_response(
                        429, wait if self.faults.org_retry_after else None)
            return route.handler(req, caller, match)
        raise _not_found("The requested resource was not found.")

    @staticmethod
    def _fault_response(status: int, retry_after: int | None) -> Response:
        headers = [("Retry-After", str(retry_after))] if retry_after else []
        if status == 429:
            return make_error(429, RATE_LIMIT_MESSAGE, RATE_LIMIT_MESSAGE, "SC429",
                              headers=headers)
        return make_error(status, "Internal Server Error",
                          "A failure injected by the sandbox.", f"SC{status}", headers=headers)

    # -- zones -----------------------------------------------------------------------------
    def _organization_of(self, req: Request, match: re.Match[str]) -> int | None:
        """The (existing) organization a request names, if any."""
        org: int | None = None
        team: int | None = None
        path = match.re.pattern
        if "id" in match.groupdict():
            if path.startswith("organizations"):
                org = int(match["id"])
            elif path.startswith("teams"):
                team = int(match["id"])
            elif path.startswith("scenarios"):
                team = int(match["id"]) // 10000
        for name in ("organizationId", "teamId"):
            value = req.arg(name)
            if value and value.isdigit():
                if name == "organizationId":
                    org = int(value)
                else:
                    team = int(value)
        if org is None and team is not None and team in data.TEAMS:
            org = int(data.TEAMS[team]["organizationId"])
        return org if org in data.ORGANIZATIONS else None

    def zone_name(self, organization_id: int, req: Request | None = None) -> str:
        """``127.0.0.1:PORT`` of the organization's zone; with a single zone, the host the
        request came to (every organization is in it)."""
        if self.zone_names is None:
            host = req.headers.get("Host") if req is not None else None
            return str(host or data.ORGANIZATIONS[organization_id]["zone"])
        return self.zone_names[data.ZONE_OF.get(organization_id, 0) % len(self.zone_names)]

    def _in_this_zone(self, organization_id: int) -> bool:
        if self.zone_names is None:
            return True
        return data.ZONE_OF.get(organization_id, 0) % len(self.zone_names) == self.zone

    def _check_zone(self, organization_id: int) -> None:
        if not self._in_this_zone(organization_id):
            raise ApiError(make_error(
                404, "Not Found",
                f"Organization {organization_id} is not in this zone; its API is on zone "
                f"{self.zone_name(organization_id)}.", "SC404"))

    def _organization_item(self, organization: Item, req: Request) -> Item:
        item = dict(organization)
        item["zone"] = self.zone_name(int(organization["id"]), req)
        if not self._in_this_zone(int(organization["id"])):
            for name in ("license", "serviceName", "isPaused"):
                item.pop(name, None)
        return item

    # -- query helpers ---------------------------------------------------------------------
    @staticmethod
    def _int_arg(req: Request, name: str) -> int | None:
        value = req.arg(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise _bad_request(f"Invalid value of parameter '{name}'.",
                               f"Parameter '{name}' must be an integer.") from None

    def _paginate(self, req: Request, items: Sequence[Item], key: str,
                  sort_by: str = "id", sort_dir: str = "asc") -> Response:
        offset = self._int_arg(req, "pg[offset]")
        limit = self._int_arg(req, "pg[limit]")
        offset = 0 if offset is None else offset
        limit = DEFAULT_LIMIT if limit is None else limit
        sort_by = req.arg("pg[sortBy]") or sort_by
        sort_dir = (req.arg("pg[sortDir]") or sort_dir).lower()
        problems = []
        if offset < 0:
            problems.append("pg[offset] must be 0 or more.")
        if not 1 <= limit <= MAX_LIMIT:
            problems.append(f"pg[limit] must be between 1 and {MAX_LIMIT}.")
        if sort_dir not in ("asc", "desc"):
            problems.append("pg[sortDir] must be asc or desc.")
        if items and sort_by not in items[0]:
            problems.append(f"pg[sortBy] cannot be {sort_by!r}.")
        if problems:
            raise _bad_request("Invalid pagination parameters.", *problems)
        ordered = sorted(items, key=lambda item: _sort_key(item.get(sort_by)),
                         reverse=sort_dir == "desc")
        page = [self._columns(req, item) for item in ordered[offset:offset + limit]]
        return Response.json({key: page, "pg": {"sortBy": sort_by, "limit": limit,
                                                "sortDir": sort_dir, "offset": offset}})

    @staticmethod
    def _columns(req: Request, item: Item) -> Item:
        cols = req.query.get("cols[]")
        if not cols:
            return dict(item)
        return {k: v for k, v in item.items() if k in cols}

    def _team_for(self, caller: Caller, team_id: int) -> Item:
        team = data.TEAMS.get(team_id)
        if team is None:
            raise _not_found(f"Team {team_id} was not found.")
        if team_id in caller.user.hidden_team_ids or (
                team_id not in caller.user.team_ids
                and team["organizationId"] not in caller.user.organization_ids):
            raise _forbidden(f"You don't have access to team {team_id}.")
        return team

    def _organization_for(self, caller: Caller, organization_id: int) -> Item:
        organization = data.ORGANIZATIONS.get(organization_id)
        if organization is None:
            raise _not_found(f"Organization {organization_id} was not found.")
        if organization_id not in caller.user.organization_ids:
            raise _forbidden(f"You don't have access to organization {organization_id}.")
        return organization

    def _require_team(self, req: Request, caller: Caller) -> int:
        team_id = self._int_arg(req, "teamId")
        if team_id is None:
            raise _bad_request("Missing value of required parameter 'teamId'.")
        self._team_for(caller, team_id)
        return team_id

    # -- endpoints -------------------------------------------------------------------------
    def _users_me(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        return Response.json({"authUser": caller.user.auth_user()})

    def _current_authorization(self, req: Request, caller: Caller,
                               match: re.Match[str]) -> Response:
        return Response.json({"authorization": {"scope": sorted(caller.scopes)}})

    def _organizations(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        items = [self._organization_item(data.ORGANIZATIONS[i], req)
                 for i in caller.user.organization_ids]
        return self._paginate(req, items, "organizations", sort_by="name")

    def _organization(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        organization = self._organization_for(caller, int(match["id"]))
        return Response.json({"organization": self._organization_item(organization, req)})

    def _teams(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        organization_id = self._int_arg(req, "organizationId")
        if organization_id is None:
            raise _bad_request("Missing value of required parameter 'organizationId'.")
        self._organization_for(caller, organization_id)
        items = [t for t in data.TEAMS.values() if t["organizationId"] == organization_id]
        return self._paginate(req, items, "teams")

    def _team(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        return Response.json({"team": dict(self._team_for(caller, int(match["id"])))})

    def _scenarios(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        team_id = self._int_arg(req, "teamId")
        organization_id = self._int_arg(req, "organizationId")
        if team_id is None and organization_id is None:
            raise _bad_request("Missing value of required parameter 'teamId' or "
                               "'organizationId'.",
                               "One of the parameters 'teamId' and 'organizationId' is "
                               "required.")
        if team_id is not None and organization_id is not None:
            raise _bad_request("Parameters 'teamId' and 'organizationId' cannot be used "
                               "together.")
        if team_id is not None:
            self._team_for(caller, team_id)
            items: Sequence[Item] = data.scenarios_for_team(team_id)
        else:
            assert organization_id is not None
            self._organization_for(caller, organization_id)
            items = [s for t in sorted(data.TEAMS)
                     if data.TEAMS[t]["organizationId"] == organization_id
                     for s in data.scenarios_for_team(t)]
        return self._paginate(req, items, "scenarios")

    def _scenario_item(self, caller: Caller, scenario_id: int) -> Item:
        scenario = data.find_scenario(scenario_id)
        if scenario is None:
            raise _not_found(f"Scenario {scenario_id} was not found.")
        self._team_for(caller, scenario["teamId"])
        return scenario

    def _scenario(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        item = self._scenario_item(caller, int(match["id"]))
        return Response.json({"scenario": self._columns(req, item)})

    def _scenario_logs(self, req: Request, caller: Caller, match: re.Match[str]) -> Response:
        scenario_id = int(match["id"])
        self._scenario_item(caller, scenario_id)
        return self._paginate(req, data.scenario_logs(scenario_id), "scenarioLogs",
                              sort_by="timestamp", sort_dir="desc")

    def _team_list(self, key: str, source: Callable[[int], Sequence[Item]]) -> Handler:
        def handler(req: Request, caller: Caller, match: re.Match[str]) -> Response:
            return self._paginate(req, source(self._require_team(req, caller)), key)
        return handler


def _sort_key(value: Any) -> tuple[int, Any]:
    """Sort None last and mixed types without errors."""
    if value is None:
        return (2, "")
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))
