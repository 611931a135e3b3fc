"""The whole login, end to end, against real OpenID providers on loopback.

Every test runs twice: against panva's oidc-provider (Node, OpenID Certified) and against
the package's sandbox (Authlib), through the ``provider`` fixture.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import warnings
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import responses

from make_notebook_auth import (
    AuthorizationDeniedError,
    AuthorizationResponseError,
    InsecureTransportError,
    IssuerMismatchError,
    LoginExpiredError,
    MakeAuth,
    MakeConfigError,
    MissingClientIdError,
    NotLoggedInError,
    StateMismatchError,
    TokenEndpointError,
    get_session,
    logout,
    tokens,
    userinfo_frame,
)


def public_auth(provider, **kw):
    return MakeAuth(provider.public_client_id, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri, **kw)


def confidential_auth(provider, *, short=False, **kw):
    cid = provider.short_confidential_client_id if short else provider.confidential_client_id
    secret = (provider.short_confidential_client_secret if short
              else provider.confidential_client_secret)
    return MakeAuth(cid, secret, issuer=provider.issuer, api_url=provider.api_url,
                    redirect_uri=provider.redirect_uri, **kw)


def complete(provider, auth, **kw):
    return auth.finish(provider.authorize(auth.start().url, **kw))


def test_public_login_calls_the_api(provider):
    auth = public_auth(provider)
    session = complete(provider, auth)
    assert session is get_session()
    assert not session.can_refresh  # public clients get no refresh token (like Make)
    me = session.get("users/me")
    assert me.status_code == 200, me.text
    assert me.json()["authUser"]["email"] == provider.users["alice"]["email"]
    assert session.get("/users/me").status_code == 200  # leading slash, same base
    assert session.id_claims["sub"] == provider.users["alice"]["sub"]
    info = session.userinfo()
    assert info["sub"] == session.id_claims["sub"]
    assert isinstance(session.scopes, list) and "openid" in session.scopes
    assert all(isinstance(s, str) for s in session.scopes)
    assert isinstance(session.expires_at, float) and session.expires_at > time.time() + 60


def test_confidential_login_gets_refresh_token_and_second_user(provider):
    session = complete(provider, confidential_auth(provider, profile="work"), user="bob")
    assert session.can_refresh
    assert session.get("users/me").json()["authUser"]["email"] == provider.users["bob"]["email"]
    assert get_session("work") is session
    with pytest.raises(NotLoggedInError, match="make_login"):
        get_session()


def test_userinfo_frame_one_row_per_profile(provider):
    complete(provider, public_auth(provider))
    complete(provider, confidential_auth(provider, profile="work"), user="bob")
    frame = userinfo_frame()
    assert list(frame.index) == ["default", "work"]
    assert frame.index.name == "profile"
    assert frame.loc["work", "email"] == provider.users["bob"]["email"]
    assert frame.loc["default", "sub"] == provider.users["alice"]["sub"]


@pytest.mark.parametrize("form", ["query", "bare-code"])
def test_paste_forms_at_a_real_provider(provider, form):
    auth = public_auth(provider)
    reply = provider.authorize(auth.start().url)
    query = urlsplit(reply).query
    pasted = f"  ?{query}  " if form == "query" else f"'{parse_qs(query)['code'][0]}'"
    assert auth.finish(pasted).get("users/me").status_code == 200


def test_wrong_state_then_the_right_reply(provider):
    auth = public_auth(provider)
    req = auth.start()
    reply = provider.authorize(req.url)
    parts = urlsplit(reply)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    state = params["state"]
    forged = ("y" if state[0] == "x" else "x") + state[1:]  # always another state
    assert forged != state
    with pytest.raises(StateMismatchError):
        auth.finish(reply.replace(state, forged))
    assert auth.finish(reply).logged_in


def test_wrong_iss(provider):
    auth = public_auth(provider)
    reply = provider.authorize(auth.start().url)
    params = {k: v[0] for k, v in parse_qs(urlsplit(reply).query).items()}
    params["iss"] = "https://evil.example"
    with pytest.raises(IssuerMismatchError):
        auth.finish("?" + urlencode(params))
    assert auth.finish(reply).logged_in


def test_reused_code_is_refused_by_the_provider(provider):
    auth = public_auth(provider)
    req = auth.start()
    reply = provider.authorize(req.url)
    auth.finish(reply).logout()
    auth._pending[req.state] = req  # pretend the same login is still pending
    with pytest.raises(TokenEndpointError) as info:
        auth.finish(reply)
    assert info.value.error == "invalid_grant"
    assert auth.pending is req
    # Honest about what invalid_grant means: not a claim that the code expired.
    message = str(info.value)
    assert "may have expired" in message and "used already" in message
    assert "another login or redirect URI" in message
    assert "is expired" not in message


@pytest.mark.parametrize("garbage", ["hello", "  hello world \n", "zzqx", "yes please",
                                     "https://example.test/callback", "12345"])
def test_garbage_paste_makes_no_network_call(provider, garbage):
    auth = public_auth(provider)
    reply = provider.authorize(auth.start().url)  # discovery done, a real reply waiting
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        # Nothing is registered: any request at all would fail with ConnectionError.
        with pytest.raises(AuthorizationResponseError) as info:
            auth.finish(garbage)
        assert len(mock.calls) == 0
    message = str(info.value)
    assert "?code=" in message and "address bar" in message  # what a good paste looks like
    assert garbage.strip() not in message  # never echoed
    assert auth.finish(reply).logged_in  # the pending login was kept


def test_wrong_verifier_is_refused_by_the_provider(provider):
    auth = public_auth(provider)
    req = auth.start()
    tampered = dataclasses.replace(req, _code_verifier="w" * 64)
    auth._pending[req.state] = tampered
    with pytest.raises(TokenEndpointError) as info:
        auth.finish(provider.authorize(req.url))
    assert info.value.error == "invalid_grant"


def test_denied_consent_then_approve(provider):
    auth = public_auth(provider)
    req = auth.start()
    with pytest.raises(AuthorizationDeniedError) as info:
        auth.finish(provider.authorize(req.url, approve=False))
    assert info.value.error == "access_denied"
    assert "access_denied" in str(info.value)
    assert auth.finish(provider.authorize(req.url)).logged_in  # same link, second try


def test_wrong_client_secret(provider):
    auth = MakeAuth(provider.confidential_client_id, "not-the-secret", issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri)
    req = auth.start()
    with pytest.raises(TokenEndpointError) as info:
        auth.finish(provider.authorize(req.url))
    assert info.value.error == "invalid_client"
    assert info.value.status == 401
    assert "MAKE_CLIENT_SECRET" in str(info.value) and "not-the-secret" not in str(info.value)
    assert auth.pending is req


def test_refresh_on_expiry_keeps_rotated_token(provider):
    session = complete(provider, confidential_auth(provider, short=True))
    first = dict(session.token)
    assert session.get("users/me").status_code == 200
    assert first["access_token"] == session.token["access_token"]  # not stale on arrival
    time.sleep(provider.short_ttl + 0.5)
    assert session.get("users/me").status_code == 200
    assert session.token["access_token"] != first["access_token"]
    assert session.token["refresh_token"] != first["refresh_token"]  # rotated and kept
    time.sleep(provider.short_ttl + 0.5)
    assert session.get("users/me").status_code == 200  # the rotated one works too


def test_many_threads_at_expiry_refresh_once(provider, monkeypatch):
    session = complete(provider, confidential_auth(provider, short=True))
    calls = []
    real_refresh = tokens.refresh

    def counting(*args, **kw):
        calls.append(1)
        return real_refresh(*args, **kw)

    monkeypatch.setattr(tokens, "refresh", counting)
    time.sleep(provider.short_ttl + 0.5)
    statuses: list[int] = []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        statuses.append(session.get("users/me").status_code)

    workers = [threading.Thread(target=worker) for _ in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(calls) == 1
    assert statuses == [200] * 16
    # had a second refresh replayed the rotated token, the provider would have killed the grant
    assert session.get("users/me").status_code == 200


def test_public_session_past_expiry_asks_to_log_in_again(provider):
    auth = MakeAuth(provider.short_public_client_id, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri)
    session = complete(provider, auth)
    assert session.get("users/me").status_code == 200
    time.sleep(provider.short_ttl + 0.5)
    with pytest.raises(LoginExpiredError, match="Log in again"):
        session.get("users/me")


def test_logout_revokes_refresh_and_access_tokens(provider):
    session = complete(provider, confidential_auth(provider))
    old = dict(session.token)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logout() is True
    with pytest.raises(NotLoggedInError):
        get_session()
    with pytest.raises(NotLoggedInError):
        session.get("users/me")
    with pytest.raises(TokenEndpointError) as info:
        tokens.refresh(session.config, session.metadata.token_endpoint, old["refresh_token"])
    assert info.value.error == "invalid_grant"
    dead = requests.get(provider.api_url + "users/me",
                        headers={"Authorization": f"Bearer {old['access_token']}"}, timeout=10)
    assert dead.status_code == 401


def test_missing_client_id_names_the_variable():
    with pytest.raises(MissingClientIdError, match="MAKE_CLIENT_ID") as info:
        MakeAuth()
    assert "Requesting an OAuth 2.0 client" in str(info.value)


def test_environment_settings_are_used(provider, monkeypatch):
    monkeypatch.setenv("MAKE_CLIENT_ID", provider.public_client_id)
    monkeypatch.setenv("MAKE_ISSUER", provider.issuer)
    monkeypatch.setenv("MAKE_API_URL", provider.api_url.rstrip("/"))  # no trailing slash
    monkeypatch.setenv("MAKE_REDIRECT_URI", provider.redirect_uri)
    monkeypatch.setenv("MAKE_SCOPES", "openid,user:read")
    auth = MakeAuth()
    assert auth.config.scopes == ("openid", "user:read")
    session = complete(provider, auth)
    assert session.get("users/me").status_code == 200
    assert set(session.scopes) >= {"openid", "user:read"}


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kw):
        attempts.append(args)
        raise AssertionError("no network call may happen before the https check")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("setting", [
    {"issuer": "http://www.make.example"},
    {"api_url": "http://eu1.make.com/api/v2"},
    {"redirect_uri": "http://notebook.example/callback"},
    {"zone": "http://eu1.make.com"},
])
def test_https_required_off_loopback(no_network, setting):
    with pytest.raises(InsecureTransportError) as info:
        MakeAuth("client", **setting)
    assert "https" in str(info.value)
    assert no_network == []


def test_loopback_http_is_allowed_for_every_form(no_network):
    for host in ("127.0.0.1", "localhost", "[::1]", "127.0.0.2"):
        auth = MakeAuth("client", issuer=f"http://{host}:9", api_url=f"http://{host}:9/api/v2")
        assert auth.config.issuer == f"http://{host}:9"


def test_token_is_never_sent_over_plain_http_or_to_other_hosts(provider):
    session = complete(provider, public_auth(provider))
    seen = []

    class Catch(requests.adapters.BaseAdapter):
        def send(self, request, **kw):
            seen.append(request.headers.get("Authorization"))
            resp = requests.Response()
            resp.status_code = 204
            resp.request = request
            return resp

        def close(self):
            pass

    # Such requests still work (no exception), without the header.
    session.mount("http://eu1.make.com/", Catch())
    session.mount("https://elsewhere.example/", Catch())
    assert session.get("http://eu1.make.com/api/v2/users/me").status_code == 204
    assert session.get("https://elsewhere.example/data").status_code == 204
    assert seen == [None, None]


def test_relative_path_without_zone_names_make_zone(provider, monkeypatch):
    auth = MakeAuth(provider.public_client_id, issuer=provider.issuer,
                    redirect_uri=provider.redirect_uri)
    session = complete(provider, auth)
    looked_up = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(host, *args, **kwargs):
        looked_up.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    with pytest.raises(MakeConfigError, match="MAKE_ZONE") as info:
        session.get("users/me")
    assert "eu1.make.com" in str(info.value) and "us2.make.com" in str(info.value)
    # A token from a test provider (not www.make.com) is never tried on Make's real zones.
    assert not [h for h in looked_up if "make" in str(h)], looked_up
