"""The sandbox's zones, licenses and per-organization 429s, seen with plain requests."""

from __future__ import annotations

import json
import time

import pytest
import requests

from make_notebook_auth.sandbox import Sandbox
from make_notebook_auth.sandbox.__main__ import build_parser
from make_notebook_auth.sandbox.api import RATE_LIMIT_MESSAGE, MakeLikeAPI
from make_notebook_auth.sandbox.wsgi import Request


def get(base, path, token, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(base + path, params=params, headers=headers, timeout=10)


@pytest.fixture
def token(zoned_login):
    return zoned_login().token["access_token"]


def test_each_zone_has_its_own_port_and_checks_the_token(zoned_sandbox, token):
    sb = zoned_sandbox
    assert len(set(sb.zones)) == 3 and all(z.startswith("127.0.0.1:") for z in sb.zones)
    for base in sb.zone_api_urls:
        assert get(base, "users/me", token).json()["authUser"]["id"] == 1001
        missing = get(base, "users/me", None)
        assert missing.status_code == 401 and missing.json()["code"] == "SC401"
        assert get(base, "users/me", "not-a-token").status_code == 401
    # the extra zones serve the API only
    assert requests.get(f"http://{sb.zones[1]}/.well-known/openid-configuration",
                        timeout=10).status_code == 404


def test_organizations_name_their_zone_and_the_license_of_this_zone_only(zoned_sandbox, token):
    sb = zoned_sandbox
    for number, base in enumerate(sb.zone_api_urls):
        orgs = get(base, "organizations", token).json()["organizations"]
        assert [o["id"] for o in orgs] == [1, 2, 4]
        assert [o["zone"] for o in orgs] == sb.zones
        assert ["license" in o for o in orgs] == [i == number for i in range(3)]
    assert get(sb.zone_api_urls[2], "organizations/4", token).json()[
        "organization"]["license"]["apiLimit"] == 60


def test_an_organization_is_served_by_its_own_zone_only(zoned_sandbox, token):
    sb = zoned_sandbox
    wrong = get(sb.zone_api_urls[0], "teams", token, organizationId=4)
    assert wrong.status_code == 404 and sb.zones[2] in wrong.json()["detail"]
    assert get(sb.zone_api_urls[1], "scenarios", token, teamId=5).status_code == 404
    assert get(sb.zone_api_urls[0], "organizations/2", token).status_code == 404
    assert get(sb.zone_api_urls[2], "scenarios", token, teamId=5).status_code == 200


def test_a_team_alice_cannot_read(zoned_sandbox, token):
    base = zoned_sandbox.zone_api_urls[2]
    teams = get(base, "teams", token, organizationId=4).json()["teams"]
    assert [t["id"] for t in teams] == [5, 6]
    denied = get(base, "scenarios", token, teamId=6)
    assert denied.status_code == 403 and denied.json()["code"] == "SC403"


@pytest.mark.parametrize("retry_after", [True, False])
def test_an_organization_over_its_limit_gets_makes_429(zoned_sandbox, token, retry_after):
    sb = zoned_sandbox
    sb.set_org_limits(True, retry_after=retry_after, overrides={4: 2})
    base = sb.zone_api_urls[2]
    answers = [get(base, "teams/5", token) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    body = answers[2].json()
    assert body["message"] == "Requests limit for organization exceeded, please try again later."
    assert body["message"] == RATE_LIMIT_MESSAGE and body["code"] == "SC429"
    assert ("Retry-After" in answers[2].headers) is retry_after
    # another organization, and requests naming none, are not counted against it
    assert get(sb.zone_api_urls[0], "teams/1", token).status_code == 200
    assert get(base, "users/me", token).status_code == 200
    assert sb.faults.org_429s(4) == 1 and sb.faults.org_requests(4) == 3


def test_latency_delays_every_answer():
    with Sandbox(zones=2, latency_ms=150) as sb:
        start = time.monotonic()
        requests.get(sb.zone_api_urls[1] + "users/me", timeout=10)
        assert time.monotonic() - start >= 0.15


def test_cli_options():
    args = build_parser().parse_args(["--zones", "2", "--latency-ms", "100",
                                      "--no-org-limits", "--no-retry-after"])
    assert (args.zones, args.latency_ms, args.no_org_limits, args.no_retry_after) == \
        (2, 100.0, True, True)
    defaults = build_parser().parse_args([])
    assert (defaults.zones, defaults.latency_ms, defaults.no_org_limits) == (3, 0.0, False)
    with pytest.raises(ValueError):
        Sandbox(zones=0)


def test_a_single_zone_api_names_itself_as_every_organizations_zone():
    api = MakeLikeAPI(lambda token: ("1001", ["organizations:read"]) if token == "t" else None)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/v2/organizations",
               "QUERY_STRING": "", "HTTP_HOST": "127.0.0.1:4567", "HTTP_AUTHORIZATION": "Bearer t"}
    orgs = json.loads(api.handle(Request(environ)).body)["organizations"]
    assert [o["id"] for o in orgs] == [1, 2, 4]
    assert {o["zone"] for o in orgs} == {"127.0.0.1:4567"}
    assert all("license" in o for o in orgs)  # every organization is in this zone
