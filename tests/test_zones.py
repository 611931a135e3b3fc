"""Zones: the home zone found by itself, requests routed to each organization's zone, and the
token only ever sent to a Make zone of this login (the sandbox's three zones on loopback)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests

from make_notebook_auth import MakeAPIError, MakeConfigError
from make_notebook_auth.zones import api_base_of_zone as zone_base
from make_notebook_auth.zones import named_ids


def dead_zone() -> str:
    """A loopback host:port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# --- helpers -----------------------------------------------------------------------------------


def test_zone_base_forms():
    assert zone_base("eu1.make.com") == "https://eu1.make.com/api/v2/"
    assert zone_base("us1.make.celonis.com") == "https://us1.make.celonis.com/api/v2/"
    assert zone_base("127.0.0.1:8123") == "http://127.0.0.1:8123/api/v2/"
    # a port on a host that is not loopback is not a loopback zone: it stays https
    with pytest.raises(MakeConfigError):
        zone_base("evil.example:8123")


@pytest.mark.parametrize(("params", "rest", "ids"), [
    ({"teamId": 5}, "scenarios", (None, 5)),
    ([("organizationId", "4"), ("pg[limit]", 10)], "teams", (4, None)),
    ("teamId=7&x=1", "connections", (None, 7)),
    (None, "organizations/2", (2, None)),
    (None, "teams/6/", (None, 6)),
    (None, "scenarios?teamId=3", (None, 3)),
    (None, "users/me", (None, None)),
    (None, "organizations", (None, None)),
    ({"teamId": ["x"]}, "scenarios", (None, None)),
])
def test_named_ids(params, rest, ids):
    assert named_ids(params, rest) == ids


# --- home zone ---------------------------------------------------------------------------------


def test_home_zone_is_the_first_candidate_to_answer(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    dead = dead_zone()
    make = zoned_login(home=None, zones=[dead, sb.zones[1], sb.zones[0]])
    assert make.api_url is None
    assert make.json("users/me")["authUser"]["name"] == "Alice Analyst"
    assert make.api_url == f"http://{sb.zones[1]}/api/v2/"
    assert make.zone == "127.0.0.1"
    assert make.get("users/me").url.startswith(f"http://{sb.zones[1]}/")


def test_no_candidate_answering_is_a_clear_error(zoned_login):
    make = zoned_login(home=None, zones=[dead_zone(), dead_zone()])
    with pytest.raises(MakeConfigError, match="No Make zone answered users/me") as info:
        make.json("users/me")
    assert "no answer" in str(info.value) and "MAKE_ZONE" in str(info.value)


def test_a_configured_zone_is_never_second_guessed(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    # candidates that would fail: a configured base means they are never asked
    make = zoned_login(home=2, zones=[dead_zone()])
    assert make.json("users/me")["authUser"]["id"] == 1001
    assert make.api_url == sb.zone_api_urls[2]


def test_zone_candidates_are_make_zones_or_loopback_only():
    from make_notebook_auth import MakeAuth

    with pytest.raises(MakeConfigError, match="zones="):
        MakeAuth("cid", zones=["eu1.make.com", "127.0.0.1:9"])
    with pytest.raises(MakeConfigError, match="zones="):
        MakeAuth("cid", zones=["evilmake.com"])
    MakeAuth("cid", zones=["eu1", "us2.make.com"])  # Make's zones are fine


# --- routing -----------------------------------------------------------------------------------


def test_requests_naming_a_team_or_organization_go_to_its_zone(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    make = zoned_login()  # home: zone 0 (organization 1)
    # team 5 belongs to organization 4 on zone 2: the home zone refuses it
    direct = requests.get(sb.zone_api_urls[0] + "scenarios", params={"teamId": 5},
                          headers={"Authorization": make.headers.get("Authorization", "")},
                          timeout=10)
    assert direct.status_code in (401, 404)
    scenarios = make.json("scenarios", {"teamId": 5})["scenarios"]
    assert {s["teamId"] for s in scenarios} == {5}
    resp = make.get("scenarios", params={"teamId": 5})
    assert resp.status_code == 200 and resp.url.startswith(f"http://{sb.zone_of(4)}/api/v2/")
    # by organizationId, and by the id in the path
    org2 = make.get("teams", params={"organizationId": 2})
    assert org2.url.startswith(f"http://{sb.zone_of(2)}/") and org2.status_code == 200
    assert make.json("organizations/2")["organization"]["license"]["apiLimit"] == 240
    assert make.get("teams/3").url.startswith(f"http://{sb.zone_of(2)}/")
    # the home zone's own organization stays home; requests naming none too
    assert make.get("teams/1").url.startswith(sb.zone_api_urls[0])
    assert make.get("users/me").url.startswith(sb.zone_api_urls[0])


def test_routing_also_rewrites_an_absolute_url_of_another_zone(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    make = zoned_login()
    # before the login's zones are known, another loopback port is just another server
    assert make.get(sb.zone_api_urls[1] + "users/me").status_code == 401
    make.orgs()  # now they are
    resp = make.get(sb.zone_api_urls[1] + "scenarios", params={"teamId": 5})
    assert resp.status_code == 200 and resp.url.startswith(f"http://{sb.zone_of(4)}/")


def test_an_unknown_team_goes_home_and_gets_the_apis_answer(zoned_login):
    make = zoned_login()
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios", {"teamId": 9999})
    assert info.value.status == 404


# --- token custody -----------------------------------------------------------------------------


class Catch(requests.adapters.BaseAdapter):
    """Records what would have been sent (URL, Authorization) and answers 200 {}."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def send(self, request, **kw):
        self.seen.append((request.url, request.headers.get("Authorization")))
        resp = requests.Response()
        resp.status_code = 200
        resp._content = b'{"scenarios": [], "pg": {}}'
        resp.request = request
        resp.url = request.url
        return resp

    def close(self):
        pass


def hostile_home(scripted_api, zones: dict[int, str]):
    """A home API whose organizations listing names the given zones."""
    def reply(req):
        if req.path.endswith("/organizations"):
            return 200, {}, {"organizations": [{"id": i, "name": f"Org {i}", "zone": z}
                                               for i, z in zones.items()],
                             "pg": {"offset": 0, "limit": 10000}}
        return 200, {}, {"scenarios": [], "pg": {}}
    return scripted_api(reply)


@pytest.mark.parametrize("zone", [
    "hook.eu1.make.com", "www.make.com", "evilmake.com", "eu1.make.com.evil.example",
    "attacker.example", "eu1.make.com:8443",
])
def test_an_organization_in_a_zone_that_is_not_makes_never_gets_the_token(
        scripted_api, token_session, zone):
    server = hostile_home(scripted_api, {66: zone})
    make = token_session(server.api_url)
    catch = Catch()
    make.mount("https://", catch)
    make.mount("http://evil", catch)
    with pytest.raises(MakeConfigError, match="not a Make zone"):
        make.json("scenarios", {"organizationId": 66})
    assert catch.seen == []
    # a request with the id in the path is refused the same way
    with pytest.raises(MakeConfigError, match="not a Make zone"):
        make.get("organizations/66")
    assert catch.seen == []


def test_an_organization_in_a_make_zone_is_routed_there_with_the_token(
        scripted_api, token_session):
    server = hostile_home(scripted_api, {7: "us1.make.com"})
    make = token_session(server.api_url)
    catch = Catch()
    make.mount("https://", catch)
    make.json("scenarios", {"organizationId": 7})
    (url, auth), = catch.seen
    assert urlsplit(url)[:3] == ("https", "us1.make.com", "/api/v2/scenarios")
    assert auth is not None and auth.startswith("Bearer ")
    # a webhook host of the same zone is not the API: no token, even with the session
    make.get("https://hook.us1.make.com/abc123")
    assert catch.seen[-1] == ("https://hook.us1.make.com/abc123", None)
