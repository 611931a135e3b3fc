"""Make API tokens: ``MakeAuth.from_api_token``, ``MAKE_API_TOKEN``, the sandbox's API tokens,
and the same host rules as the OAuth bearer (issue 8) for ``Authorization: Token``."""

from __future__ import annotations

import traceback

import pytest
import requests
from IPython.core.error import UsageError
from test_session_hosts import ALWAYS, NEVER, Catch

from make_notebook_auth import (
    MakeAPIError,
    MakeAuth,
    MakeConfigError,
    NotLoggedInError,
    SkippedWarning,
    get_session,
    logout,
    userinfo_frame,
)

ZONE = "https://eu1.make.com/api/v2/"
MADE_UP = "0f6a3d52-0a4e-4c8e-9c51-3b8d2e7f1a90"


def caught_session(token: str = MADE_UP, **where):
    make = MakeAuth.from_api_token(token, **(where or {"zone": "eu1"}))
    catch = Catch()
    make.mount("https://", catch)
    make.mount("http://", catch)
    return make, catch


# --- the header, and where it goes ---------------------------------------------------------


@pytest.mark.parametrize("url", NEVER)
def test_api_token_never_goes_outside_the_api_base(url):
    make, catch = caught_session()
    assert make.get(url).status_code == 204  # the request still works, without the token
    assert catch.sent[-1][1] is None


@pytest.mark.parametrize("url", ALWAYS)
def test_api_token_goes_under_the_api_base_with_make_s_scheme(url):
    make, catch = caught_session()
    make.get(url)
    assert catch.sent[-1][1] == "Token " + MADE_UP


def test_relative_paths_carry_the_api_token():
    make, catch = caught_session()
    make.get("users/me")
    assert catch.sent[-1] == ("https://eu1.make.com/api/v2/users/me", "Token " + MADE_UP)


def test_api_token_follows_redirects_only_under_the_base(scripted_api):
    other = scripted_api(lambda req: (200, {}, {"ok": True}))

    def redirecting(req):
        if req.path.endswith("/to-other-port"):
            return 307, {"Location": other.api_url + "users/me"}, {}
        if req.path.endswith("/to-outside"):
            return 307, {"Location": "/outside"}, {}
        return 200, {}, {"ok": True}

    api = scripted_api(redirecting)
    make = MakeAuth.from_api_token(MADE_UP, api_url=api.api_url)
    make.get("to-other-port")
    assert other.requests[-1].headers.get("Authorization") is None
    make.get("to-outside")
    assert api.requests[-1].path == "/outside"
    assert api.requests[-1].headers.get("Authorization") is None
    make.get("users/me")
    assert api.requests[-1].headers.get("Authorization") == "Token " + MADE_UP


def test_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAKE_API_TOKEN", f"  {MADE_UP}\n")
    monkeypatch.setenv("MAKE_ZONE", "eu2")
    make = MakeAuth.from_api_token()
    assert make.logged_in and make.credential == "api_token"
    assert make.api_url == "https://eu2.make.com/api/v2/"
    assert make.takes_token("https://eu2.make.com/api/v2/users/me")
    assert not make.takes_token("https://hook.eu2.make.com/api/v2/users/me")


def test_arguments_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("MAKE_API_URL", "https://us1.make.com/api/v2")
    make = MakeAuth.from_api_token(MADE_UP, zone="eu1")
    assert make.api_url == ZONE


def test_no_zone_is_a_clear_error():
    with pytest.raises(MakeConfigError) as info:
        MakeAuth.from_api_token(MADE_UP)
    message = str(info.value)
    assert "zone" in message and "MAKE_ZONE" in message and "MAKE_API_URL" in message
    assert MADE_UP not in message


def test_no_token_is_a_clear_error():
    with pytest.raises(MakeConfigError) as info:
        MakeAuth.from_api_token(zone="eu1")
    assert "MAKE_API_TOKEN" in str(info.value) and "profile" in str(info.value)


@pytest.mark.parametrize("bad", ["", "   ", "abc def", "abc\r\nX-Evil: 1", "tok\x00en",
                                 "é" * 10, "x" * 5000])
def test_malformed_tokens_are_refused_without_repeating_them(bad):
    with pytest.raises(MakeConfigError) as info:
        MakeAuth.from_api_token(bad, zone="eu1")
    if bad.strip():
        assert bad.strip() not in str(info.value)


def test_no_token_in_reprs():
    make = MakeAuth.from_api_token(MADE_UP, zone="eu1")
    for text in (repr(make), str(make), repr(make.token), str(make.token), repr(make.config)):
        assert MADE_UP not in text
    assert "API token" in repr(make)


# --- against the sandbox ---------------------------------------------------------------------


def test_the_sandbox_issues_api_tokens_and_accepts_them_as_token(sandbox_server):
    sb = sandbox_server
    assert sb.api_token
    make = MakeAuth.from_api_token(sb.api_token, api_url=sb.api_url)
    assert make.json("users/me")["authUser"]["email"] == "alice@example.test"
    frame = make.frame("organizations")
    assert len(frame) >= 1 and "name" in frame.columns
    assert [s["id"] for s in make.paginate("scenarios", {"teamId": 1}, page_size=3,
                                           max_items=5)]
    # The sandbox keeps the schemes apart, as Make does: an API token is no bearer.
    as_bearer = requests.get(sb.api_url + "users/me",
                             headers={"Authorization": "Bearer " + sb.api_token}, timeout=10)
    assert as_bearer.status_code == 401


def test_sandbox_api_tokens_carry_their_scopes(sandbox_server):
    token = sandbox_server.issue_api_token("bob", scopes=("user:read",))
    make = MakeAuth.from_api_token(token, api_url=sandbox_server.api_url, profile="narrow")
    assert make.json("users/me")["authUser"]["name"].startswith("Bob")
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios", {"teamId": 1})
    assert info.value.status == 403 and info.value.code == "SC403"
    sandbox_server.revoke_api_token(token)
    with pytest.raises(MakeAPIError) as info:
        make.json("users/me")
    assert info.value.status == 401
    assert token not in str(info.value)
    error = info.value  # the package's frames only (this test's own frame holds the token)
    text = "".join(traceback.TracebackException(
        type(error), error, error.__traceback__.tb_next, capture_locals=True).format())
    assert token not in text


def test_the_sandbox_shows_its_api_token_on_the_sign_in_page(sandbox_server):
    from fixtures_sandbox import make_authorize  # noqa: F401 - the sandbox's own flow helper

    from make_notebook_auth.flow import AuthorizationRequest

    sb = sandbox_server
    meta = requests.get(sb.issuer + "/.well-known/openid-configuration", timeout=10).json()
    request = AuthorizationRequest.create(meta["authorization_endpoint"], sb.client_id,
                                          sb.redirect_uri, ["openid", "user:read"])
    page = requests.get(request.url, timeout=10)
    assert page.status_code == 200
    assert sb.api_token in page.text and "MAKE_API_TOKEN" in page.text


def test_zones_and_fan_out_with_an_api_token(zoned_sandbox):
    sb = zoned_sandbox
    make = MakeAuth.from_api_token(sb.api_token, api_url=sb.zone_api_urls[0])
    orgs = make.orgs()
    assert len(set(orgs["zone"])) > 1  # organizations in several zones
    with pytest.warns(SkippedWarning):  # alice may not read one team, as with OAuth
        scenarios = make.frame("scenarios", per="team", max_items=2)
    assert {"organizationId", "teamId", "zone"} <= set(scenarios.columns)
    assert len(set(scenarios["zone"])) > 1


def test_userinfo_from_users_me_says_where_it_came_from(sandbox_server, sandbox_provider):
    make = MakeAuth.from_api_token(sandbox_server.api_token, api_url=sandbox_server.api_url,
                                   profile="tok")
    claims = make.userinfo()
    assert claims["email"] == "alice@example.test" and claims["name"] == "Alice Analyst"
    assert claims["sub"] == "1001"
    frame = userinfo_frame("tok")
    assert frame.loc["tok", "source"] == "users/me (API token)"
    assert frame.loc["tok", "email"] == "alice@example.test"
    # An OAuth login of the same user gives the same columns, from OIDC userinfo.
    auth = MakeAuth(sandbox_provider.public_client_id, issuer=sandbox_provider.issuer,
                    api_url=sandbox_provider.api_url, redirect_uri=sandbox_provider.redirect_uri,
                    profile="oauth")
    auth.finish(sandbox_provider.authorize(auth.start().url, user="alice"))
    both = userinfo_frame()
    assert both.loc["oauth", "source"] == "OIDC userinfo"
    assert both.loc["oauth", "email"] == both.loc["tok", "email"]
    assert both.loc["oauth", "sub"] == both.loc["tok", "sub"]


def test_logout_forgets_the_api_token_locally(sandbox_server):
    make = MakeAuth.from_api_token(sandbox_server.api_token, api_url=sandbox_server.api_url)
    assert get_session() is make
    assert logout() is False  # nothing revoked: Make revokes API tokens in the profile
    assert not make.logged_in
    with pytest.raises(NotLoggedInError):
        get_session()
    with pytest.raises(NotLoggedInError):
        make.get("users/me")
    # the token itself still works: this package does not revoke it
    again = MakeAuth.from_api_token(sandbox_server.api_token, api_url=sandbox_server.api_url)
    assert again.json("users/me")["authUser"]["id"] == 1001


# --- %make_login ------------------------------------------------------------------------------


def test_make_login_uses_make_api_token_when_no_client_is_configured(shell, rec, monkeypatch,
                                                                     sandbox_server):
    monkeypatch.setenv("MAKE_API_TOKEN", sandbox_server.api_token)
    monkeypatch.setenv("MAKE_API_URL", sandbox_server.api_url)
    make = shell.run_line_magic("make_login", "")
    assert make.logged_in and make.credential == "api_token"
    assert not rec.shown  # no panel, no browser
    assert "API token from MAKE_API_TOKEN" in rec.text
    assert sandbox_server.api_token not in rec.text
    assert make.json("users/me")["authUser"]["email"] == "alice@example.test"
    frame = shell.run_line_magic("make_userinfo", "")
    assert frame.loc["default", "source"] == "users/me (API token)"
    shell.run_line_magic("make_logout", "")
    assert not make.logged_in
    assert "does not revoke API tokens" in rec.text and "Make profile" in rec.text


def test_a_configured_client_wins_unless_api_token_is_asked_for(shell, rec, monkeypatch,
                                                                 sandbox_provider, sandbox_server):
    monkeypatch.setenv("MAKE_API_TOKEN", sandbox_server.api_token)
    monkeypatch.setenv("MAKE_API_URL", sandbox_server.api_url)
    monkeypatch.setenv("MAKE_ISSUER", sandbox_provider.issuer)
    monkeypatch.setenv("MAKE_CLIENT_ID", sandbox_provider.public_client_id)
    monkeypatch.setenv("MAKE_REDIRECT_URI", "https://app.example.test/callback")
    oauth = shell.run_line_magic("make_login", "--no-listen")
    assert oauth.pending and oauth.credential == "oauth" and rec.shown
    token = shell.run_line_magic("make_login", "--api-token --force --profile t")
    assert token.logged_in and token.credential == "api_token"


def test_the_api_token_never_goes_on_the_line(shell, rec, sandbox_server):
    for line in (f"--api-token {MADE_UP} --zone eu1", f"--api-token={MADE_UP}"):
        with pytest.raises(UsageError) as info:
            shell.run_line_magic("make_login", line)
        assert MADE_UP not in str(info.value) and "MAKE_API_TOKEN" in str(info.value)


def test_api_token_panel_logs_in_and_keeps_nothing(shell, rec, sandbox_server):
    from make_notebook_auth.widget import ApiTokenPanel

    make = shell.run_line_magic("make_login", f"--api-token --api-url {sandbox_server.api_url}")
    panel = rec.shown[-1]
    assert isinstance(panel, ApiTokenPanel)
    assert make.pending
    assert not panel.submit_token("not a token")
    assert panel.token.value == ""  # cleared after a failed submit too
    assert "not a Make API token" in panel.status.value
    assert "not a token" not in panel.status.value
    panel.token.value = sandbox_server.api_token  # typed, Enter
    assert make.logged_in and make.credential == "api_token"
    assert panel.token.value == ""
    assert sandbox_server.api_token not in panel.status.value + panel.header.value
    assert "API token" in panel.status.value
    assert make.json("users/me")["authUser"]["id"] == 1001


def test_api_token_login_without_a_zone_is_a_clear_error(shell, rec, monkeypatch):
    monkeypatch.setenv("MAKE_API_TOKEN", MADE_UP)
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("make_login", "")
    assert "MAKE_ZONE" in str(info.value) and MADE_UP not in str(info.value)


def test_sandbox_with_api_token(shell, rec):
    make = shell.run_line_magic("make_login", "--sandbox --api-token")
    assert make.credential == "api_token"
    assert make.json("users/me")["authUser"]["email"] == "alice@example.test"
