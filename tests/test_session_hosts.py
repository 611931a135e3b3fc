"""Where the bearer goes: only under a trusted API base, decided on the URL as it is sent."""

from __future__ import annotations

import time

import pytest
import requests

from make_notebook_auth import MakeConfigError, MakeSession
from make_notebook_auth.config import MakeConfig
from make_notebook_auth.hosts import normalise_base, under_base, zone_base
from make_notebook_auth.tokens import Token

ZONE = "https://eu1.make.com/api/v2/"

NEVER = [
    "https://hook.eu1.make.com/abc123",  # a webhook: Make's host, not the API
    "https://hook.eu1.make.com/api/v2/users/me",
    "https://www.make.com/api/v2/users/me",
    "https://eu2.make.com/api/v2/users/me",  # another zone, not routed by the package
    "https://eu1.make.com:8443/api/v2/users/me",  # another port
    "http://eu1.make.com/api/v2/users/me",  # plain http off loopback
    "https://evilmake.com/api/v2/users/me",
    "https://eu1.make.com.evil.example/api/v2/users/me",
    "https://eu1.make.com./api/v2/users/me",
    "https://user@eu1.make.com/api/v2/users/me",  # user info
    "https://user:pw@eu1.make.com/api/v2/users/me",
    "https://attacker.example\\@eu1.make.com/api/v2/users/me",  # backslash: urllib3 -> attacker
    "https://eu1.make.com\\.evil.example/api/v2/users/me",
    "https://eu1.make.com%2f@evil.example/api/v2/users/me",
    "https://eu1.make.com/api/v2/../../hooks/x",  # dot segments: sent as is
    "https://eu1.make.com/api/v2/%2e%2e/%2e%2e/x",
    "https://eu1.make.com/api/v2/..%2f..%2fx",
    "https://eu1.make.com/api/v2\\..\\x",
    "https://eu1.make.com/api/v20/users",  # a prefix of the path is not the path
    "https://eu1.make.com/api/",
    "https://eu1.make.com/",
]

ALWAYS = [
    "https://eu1.make.com/api/v2/users/me",
    "https://EU1.Make.com/api/v2/users/me?x=1",
    "https://eu1.make.com:443/api/v2/scenarios?teamId=1#frag",
]


class Catch(requests.adapters.BaseAdapter):
    """Answers every request with 204 and keeps what was sent (no network)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str | None]] = []

    def send(self, request, **kw):
        self.sent.append((request.url, request.headers.get("Authorization")))
        resp = requests.Response()
        resp.status_code = 204
        resp.request = request
        resp.url = request.url
        return resp

    def close(self):
        pass


def zone_session(api_url: str = ZONE) -> tuple[MakeSession, Catch]:
    config = MakeConfig.resolve("cid", issuer="https://www.make.com", api_url=api_url)
    token = Token({"access_token": "made-up-token", "token_type": "Bearer",
                   "expires_in": 3600, "expires_at": time.time() + 3600})
    session = MakeSession(config, token=token)
    catch = Catch()
    session.mount("https://", catch)
    session.mount("http://", catch)
    return session, catch


@pytest.mark.parametrize("url", NEVER)
def test_bearer_never_goes_outside_the_api_base(url):
    session, catch = zone_session()
    resp = session.get(url)  # the request still works, without the header
    assert resp.status_code == 204
    assert catch.sent[-1][1] is None


@pytest.mark.parametrize("url", ALWAYS)
def test_bearer_goes_under_the_api_base(url):
    session, catch = zone_session()
    session.get(url)
    assert catch.sent[-1][1] == "Bearer made-up-token"


def test_relative_paths_carry_the_bearer():
    session, catch = zone_session()
    session.get("users/me")
    assert catch.sent[-1] == (ZONE + "users/me", "Bearer made-up-token")


def test_an_authorization_header_of_the_callers_own_is_kept():
    session, catch = zone_session()
    session.get("users/me", headers={"Authorization": "Token api-token-1"})
    assert catch.sent[-1][1] == "Token api-token-1"


def test_prepared_requests_follow_the_same_rule():
    session, _ = zone_session()
    bad = session.prepare_request(
        requests.Request("GET", "https://attacker.example\\@eu1.make.com/api/v2/x"))
    good = session.prepare_request(requests.Request("GET", ZONE + "x"))
    assert "Authorization" not in bad.headers
    assert good.headers["Authorization"] == "Bearer made-up-token"


@pytest.mark.parametrize("url", [*NEVER, "ftp://eu1.make.com/api/v2/users/me"])
def test_under_base_refuses(url):
    assert not under_base(requests.Request("GET", url).prepare().url, ZONE)


def test_under_base_loopback_http_only():
    assert under_base("http://127.0.0.1:5000/api/v2/x", "http://127.0.0.1:5000/api/v2/")
    assert not under_base("http://127.0.0.1:5001/api/v2/x", "http://127.0.0.1:5000/api/v2/")
    assert not under_base("http://example.com/api/v2/x", "http://example.com/api/v2/")


def test_allowed_zone_bases():
    session, catch = zone_session()
    assert session._token_bases == [ZONE]
    session.get("https://eu2.make.com/api/v2/users/me")
    assert catch.sent[-1][1] is None
    assert session._allow_token_base("https://EU2.make.com/api/v2") == \
        "https://eu2.make.com/api/v2/"
    assert session._token_bases == [ZONE, "https://eu2.make.com/api/v2/"]
    session.get("https://eu2.make.com/api/v2/users/me")
    assert catch.sent[-1][1] == "Bearer made-up-token"
    session.get("https://hook.eu2.make.com/api/v2/users/me")
    assert catch.sent[-1][1] is None


@pytest.mark.parametrize("base", [
    "https://hook.eu1.make.com/api/v2/",
    "https://www.make.com/api/v2/",
    "http://eu2.make.com/api/v2/",
    "https://eu2.make.com:8443/api/v2/",
    "https://eu2.make.com/api/v1/",
    "https://eu2.make.com/",
    "https://evil.example/api/v2/",
    "https://user@eu2.make.com/api/v2/",
    "https://eu2.make.com/api/v2/?x=1",
    "http://127.0.0.1:5000/api/v2/",  # loopback only when the configured base is loopback
])
def test_allow_token_base_refuses_what_is_not_a_zone(base):
    session, _ = zone_session()
    with pytest.raises(MakeConfigError):
        session._allow_token_base(base)
    assert session._token_bases == [ZONE]


def test_allow_token_base_takes_loopback_zones_for_a_loopback_api():
    session, catch = zone_session("http://127.0.0.1:5000/api/v2/")
    assert session._allow_token_base("http://127.0.0.1:5001/zone/eu2/api/v2") == \
        "http://127.0.0.1:5001/zone/eu2/api/v2/"
    session.get("http://127.0.0.1:5001/zone/eu2/api/v2/users/me")
    assert catch.sent[-1][1] == "Bearer made-up-token"
    with pytest.raises(MakeConfigError):
        session._allow_token_base("http://127.0.0.1:5001/other/")


def test_normalised_bases():
    assert normalise_base("HTTPS://EU1.make.com:443/api/v2") == ZONE
    assert normalise_base("http://[::1]:80/api/v2/") == "http://[::1]/api/v2/"
    assert zone_base("https://us1.make.celonis.com/api/v2/", allow_loopback=False) == \
        "https://us1.make.celonis.com/api/v2/"


# --- against real servers -----------------------------------------------------------------


def _ok(req):
    return 200, {}, {"ok": True}


def test_backslash_and_userinfo_urls_reach_no_server_with_the_token(scripted_api, token_session):
    api = scripted_api(_ok)
    other = scripted_api(_ok)
    make = token_session(api.api_url)
    api_port = api.base.rsplit(":", 1)[1]
    other_host = other.base.split("//")[1]
    # urlsplit reads the API's host here; urllib3 connects to the other server.
    make.get(f"http://{other_host}\\@127.0.0.1:{api_port}/api/v2/users/me")
    make.get(f"http://someone@127.0.0.1:{api_port}/api/v2/users/me")
    make.get(other.api_url + "users/me")  # same host, another port
    make.get(api.base + "/outside/the/base")  # same origin, outside the API base
    assert other.calls() == 2 and api.calls() == 2
    assert [r.headers.get("Authorization") for r in other.requests + api.requests] == \
        [None] * 4
    make.get("users/me")
    assert api.requests[-1].headers.get("Authorization") == "Bearer made-up-token"


def test_redirects_keep_the_bearer_only_under_the_base(scripted_api, token_session):
    other = scripted_api(_ok)
    targets = {}

    def redirecting(req):
        if req.path.endswith("/to-other-port"):
            return 307, {"Location": other.api_url + "users/me"}, {}
        if req.path.endswith("/to-outside"):
            return 307, {"Location": "/outside"}, {}
        if req.path.endswith("/to-inside"):
            return 307, {"Location": targets["inside"]}, {}
        return 200, {}, {"ok": True}

    api = scripted_api(redirecting)
    targets["inside"] = api.api_url + "users/me"
    make = token_session(api.api_url)
    make.get("to-other-port")
    assert other.requests[-1].headers.get("Authorization") is None
    make.get("to-outside")  # same host and port: requests itself would keep the header
    assert api.requests[-1].path == "/outside"
    assert api.requests[-1].headers.get("Authorization") is None
    make.get("to-inside")
    assert api.requests[-1].path == "/api/v2/users/me"
    assert api.requests[-1].headers.get("Authorization") == "Bearer made-up-token"
    make.get("to-other-port", headers={"Authorization": "Token own-api-token"})
    assert other.requests[-1].headers.get("Authorization") is None
    make.get("to-inside", headers={"Authorization": "Token own-api-token"})
    assert api.requests[-1].headers.get("Authorization") == "Token own-api-token"


# --- the session object -------------------------------------------------------------------


def test_authorized_only_while_logged_in(token_session):
    config = MakeConfig.resolve("cid", issuer="https://www.make.com", api_url=ZONE)
    pending = MakeSession(config)
    assert pending.authorized is False
    make = token_session("http://127.0.0.1:9/api/v2/")
    assert make.authorized is True
    make.metadata = None
    make.config = MakeConfig.resolve("cid", issuer="http://127.0.0.1:9", api_url=ZONE)
    with pytest.warns(UserWarning):
        make.logout()  # no provider at port 9: logged out locally, with a warning
    assert make.authorized is False


@pytest.mark.parametrize("name", [
    "fetch_token", "refresh_token", "authorization_url", "token_from_fragment",
    "register_compliance_hook", "new_state", "auto_refresh_url", "_client",
])
def test_no_oauth2session_method_bypasses_the_package(name):
    session, _ = zone_session()
    assert isinstance(session, requests.Session)
    assert not hasattr(session, name)
    assert session.token["access_token"] == "made-up-token"
