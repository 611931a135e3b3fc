"""The sandbox over real HTTP, with ``requests`` only (not the package's own client)."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit
from wsgiref.util import setup_testing_defaults

import jwt
import pytest
import requests
from authlib.oauth2 import rfc9207
from authlib.oidc.discovery import OpenIDProviderMetadata
from fixtures_sandbox import make_authorize

from make_notebook_auth.sandbox import (
    CONFIDENTIAL_CLIENT_ID,
    PUBLIC_CLIENT_ID,
    SHORT_PUBLIC_CLIENT_ID,
    MakeLikeAPI,
    Sandbox,
    ensure_sandbox,
)
from make_notebook_auth.sandbox import models as sandbox_models

READ_SCOPES = ("openid user:read organizations:read teams:read scenarios:read "
               "connections:read datastores:read hooks:read")
TIMEOUT = 10


# -- helpers -----------------------------------------------------------------------------
def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(provider, client_id: str, *, scope: str = READ_SCOPES, challenge=None,
                  method="S256", state="st-123", nonce="n-456", redirect_uri=None, **extra):
    params = {"response_type": "code", "client_id": client_id,
              "redirect_uri": redirect_uri or provider.redirect_uri, "scope": scope,
              "state": state, "nonce": nonce}
    if challenge is not None:
        params["code_challenge"] = challenge
    if method is not None and challenge is not None:
        params["code_challenge_method"] = method
    params.update(extra)
    params = {k: v for k, v in params.items() if v is not None}
    return f"{provider.issuer}/oauth/v2/authorize?{urlencode(params)}"


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def token_request(provider, **data):
    return requests.post(f"{provider.issuer}/oauth/v2/token", data=data, timeout=TIMEOUT)


def login(provider, *, confidential=False, client_id=None, secret=None, scope=READ_SCOPES,
          user="alice", nonce="n-456"):
    """Full authorization-code flow; returns the token response JSON."""
    verifier, challenge = pkce_pair()
    if client_id is None:
        client_id = provider.confidential_client_id if confidential else provider.public_client_id
    if confidential and secret is None:
        secret = provider.confidential_client_secret
    url = authorize_url(provider, client_id, scope=scope, challenge=challenge, nonce=nonce)
    back = query_of(provider.authorize(url, user=user))
    assert "code" in back, back
    data = {"grant_type": "authorization_code", "code": back["code"], "client_id": client_id,
            "redirect_uri": provider.redirect_uri, "code_verifier": verifier}
    if secret:
        data["client_secret"] = secret
    response = token_request(provider, **data)
    assert response.status_code == 200, response.text
    return response.json()


def api_get(provider, path, token, **params):
    return requests.get(provider.api_url + path, params=params, timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {token}"})


def refresh(provider, refresh_token, secret=None):
    return token_request(provider, grant_type="refresh_token", refresh_token=refresh_token,
                         client_id=provider.confidential_client_id,
                         client_secret=secret or provider.confidential_client_secret)


# -- discovery and keys ------------------------------------------------------------------
def test_discovery_document_is_like_makes(sandbox_provider):
    p = sandbox_provider
    doc = requests.get(f"{p.issuer}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert doc["issuer"] == p.issuer
    for key, path in [("authorization_endpoint", "/oauth/v2/authorize"),
                      ("token_endpoint", "/oauth/v2/token"), ("jwks_uri", "/oauth/v2/oidc/jwks"),
                      ("userinfo_endpoint", "/oauth/v2/oidc/userinfo"),
                      ("revocation_endpoint", "/oauth/v2/revoke")]:
        assert doc[key] == p.issuer + path
    assert doc["response_types_supported"] == ["code"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_post", "none"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert {"openid", "scenarios:read", "user:read"} <= set(doc["scopes_supported"])
    assert "sub" in doc["claims_supported"]
    OpenIDProviderMetadata(doc).validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])


def test_jwks_has_one_public_rsa_key_with_kid(sandbox_provider):
    keys = requests.get(f"{sandbox_provider.issuer}/oauth/v2/oidc/jwks", timeout=TIMEOUT).json()
    [key] = keys["keys"]
    assert key["kty"] == "RSA" and key["kid"] and key["alg"] == "RS256"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_each_sandbox_has_its_own_key_and_secrets():
    with Sandbox() as one, Sandbox(confidential=True) as two:
        k1 = requests.get(f"{one.issuer}/oauth/v2/oidc/jwks", timeout=TIMEOUT).json()
        k2 = requests.get(f"{two.issuer}/oauth/v2/oidc/jwks", timeout=TIMEOUT).json()
        assert k1["keys"][0]["kid"] != k2["keys"][0]["kid"]
        assert k1["keys"][0]["n"] != k2["keys"][0]["n"]
        assert (one.clients[CONFIDENTIAL_CLIENT_ID].client_secret
                != two.clients[CONFIDENTIAL_CLIENT_ID].client_secret)


# -- PKCE at the authorize endpoint --------------------------------------------------------
@pytest.mark.parametrize("challenge,method", [(None, None), ("plain", "plain"), ("plain", None)])
def test_public_client_without_s256_challenge_gets_no_code(sandbox_provider, challenge, method):
    p = sandbox_provider
    value = None if challenge is None else secrets.token_urlsafe(48)
    url = authorize_url(p, p.public_client_id, challenge=value, method=method)
    # The refusal comes straight from the authorize endpoint: no sign-in page, no code.
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302
    back = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(p.redirect_uri)
    assert back["error"] == "invalid_request"
    assert "code" not in back
    assert back["state"] == "st-123"
    assert back["iss"] == p.issuer


def test_confidential_client_may_skip_pkce_but_never_plain(sandbox_provider):
    p = sandbox_provider
    plain = authorize_url(p, p.confidential_client_id, challenge=secrets.token_urlsafe(48),
                          method="plain")
    assert query_of(p.authorize(plain))["error"] == "invalid_request"
    no_pkce = authorize_url(p, p.confidential_client_id)
    back = query_of(p.authorize(no_pkce))
    response = token_request(p, grant_type="authorization_code", code=back["code"],
                             client_id=p.confidential_client_id,
                             client_secret=p.confidential_client_secret,
                             redirect_uri=p.redirect_uri)
    assert response.status_code == 200, response.text


def test_public_client_token_request_needs_the_right_verifier(sandbox_provider):
    p = sandbox_provider
    verifier, challenge = pkce_pair()
    for sent in (None, secrets.token_urlsafe(48)):
        back = query_of(p.authorize(authorize_url(p, p.public_client_id, challenge=challenge)))
        data = {"grant_type": "authorization_code", "code": back["code"],
                "client_id": p.public_client_id, "redirect_uri": p.redirect_uri}
        if sent:
            data["code_verifier"] = sent
        response = token_request(p, **data)
        assert response.status_code == 400
        assert response.json()["error"] in ("invalid_request", "invalid_grant")


# -- full flows ------------------------------------------------------------------------------
def test_public_flow(sandbox_provider):
    p = sandbox_provider
    tokens = login(p)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["id_token"] and tokens["access_token"]
    assert "refresh_token" not in tokens  # like Make: public clients get no refresh token
    me = api_get(p, "users/me", tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["authUser"]["email"] == p.users["alice"]["email"]


def test_authorization_response_carries_code_state_and_iss(sandbox_provider):
    p = sandbox_provider
    _, challenge = pkce_pair()
    location = p.authorize(authorize_url(p, p.public_client_id, challenge=challenge,
                                         state="a b&c"))
    assert location.startswith(p.redirect_uri + "?")
    back = query_of(location)
    assert back["state"] == "a b&c" and back["iss"] == p.issuer and back["code"]


def test_confidential_flow_and_client_authentication(sandbox_provider):
    p = sandbox_provider
    tokens = login(p, confidential=True, user="bob")
    assert tokens["refresh_token"] and tokens["id_token"]
    assert api_get(p, "users/me", tokens["access_token"]).json()["authUser"]["name"] == \
        p.users["bob"]["name"]
    verifier, challenge = pkce_pair()
    for secret in (None, "wrong-secret"):
        back = query_of(p.authorize(authorize_url(p, p.confidential_client_id,
                                                  challenge=challenge)))
        data = {"grant_type": "authorization_code", "code": back["code"],
                "client_id": p.confidential_client_id, "redirect_uri": p.redirect_uri,
                "code_verifier": verifier}
        if secret:
            data["client_secret"] = secret
        response = token_request(p, **data)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_comma_separated_scopes_are_accepted(sandbox_provider):
    tokens = login(sandbox_provider, scope="openid,user:read,scenarios:read")
    assert set(tokens["scope"].split()) == {"openid", "user:read", "scenarios:read"}


def test_unknown_scope_is_refused(sandbox_provider):
    p = sandbox_provider
    _, challenge = pkce_pair()
    back = query_of(p.authorize(authorize_url(p, p.public_client_id, challenge=challenge,
                                              scope="openid admin:write")))
    assert back["error"] == "invalid_scope" and "code" not in back


def test_deny_returns_access_denied(sandbox_provider):
    p = sandbox_provider
    _, challenge = pkce_pair()
    location = p.authorize(authorize_url(p, p.public_client_id, challenge=challenge),
                           approve=False)
    back = query_of(location)
    assert back["error"] == "access_denied" and back["state"] == "st-123"
    assert back["iss"] == p.issuer and "code" not in back


def test_code_is_single_use_and_replay_ends_its_tokens(sandbox_provider):
    p = sandbox_provider
    verifier, challenge = pkce_pair()
    back = query_of(p.authorize(authorize_url(p, p.public_client_id, challenge=challenge)))
    data = {"grant_type": "authorization_code", "code": back["code"],
            "client_id": p.public_client_id, "redirect_uri": p.redirect_uri,
            "code_verifier": verifier}
    first = token_request(p, **data)
    assert first.status_code == 200
    second = token_request(p, **data)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert api_get(p, "users/me", first.json()["access_token"]).status_code == 401


def test_code_expires(sandbox_provider, monkeypatch):
    from make_notebook_auth.sandbox import server

    monkeypatch.setattr(server, "CODE_TTL", 1)
    p = sandbox_provider
    verifier, challenge = pkce_pair()
    back = query_of(p.authorize(authorize_url(p, p.public_client_id, challenge=challenge)))
    time.sleep(1.2)
    response = token_request(p, grant_type="authorization_code", code=back["code"],
                             client_id=p.public_client_id, redirect_uri=p.redirect_uri,
                             code_verifier=verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_client_and_redirect_uri(sandbox_provider):
    p = sandbox_provider
    verifier, challenge = pkce_pair()
    back = query_of(p.authorize(authorize_url(p, p.public_client_id, challenge=challenge)))
    response = token_request(p, grant_type="authorization_code", code=back["code"],
                             client_id=p.public_client_id,
                             redirect_uri="http://127.0.0.1:8766/callback",
                             code_verifier=verifier)
    assert response.json()["error"] == "invalid_grant"
    back = query_of(p.authorize(authorize_url(p, p.public_client_id, challenge=challenge)))
    response = token_request(p, grant_type="authorization_code", code=back["code"],
                             client_id=SHORT_PUBLIC_CLIENT_ID, redirect_uri=p.redirect_uri,
                             code_verifier=verifier)
    assert response.json()["error"] == "invalid_grant"


# -- refresh and revocation ------------------------------------------------------------------
def test_refresh_tokens_rotate_and_the_old_one_is_refused(sandbox_provider):
    p = sandbox_provider
    tokens = login(p, confidential=True)
    renewed = refresh(p, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["refresh_token"] and body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert set(body["scope"].split()) == set(tokens["scope"].split())
    assert api_get(p, "users/me", body["access_token"]).status_code == 200
    again = refresh(p, tokens["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_replayed_refresh_token_ends_the_grant(sandbox_provider):
    p = sandbox_provider
    tokens = login(p, confidential=True)
    body = refresh(p, tokens["refresh_token"]).json()
    assert refresh(p, tokens["refresh_token"]).status_code == 400
    assert api_get(p, "users/me", body["access_token"]).status_code == 401
    assert refresh(p, body["refresh_token"]).status_code == 400


def test_refresh_needs_the_client_secret(sandbox_provider):
    p = sandbox_provider
    tokens = login(p, confidential=True)
    response = refresh(p, tokens["refresh_token"], secret="not-it")
    assert response.json()["error"] == "invalid_client"
    assert refresh(p, tokens["refresh_token"]).status_code == 200


def test_revoking_the_refresh_token_ends_the_grants_access_tokens(sandbox_provider):
    p = sandbox_provider
    tokens = login(p, confidential=True)
    renewed = refresh(p, tokens["refresh_token"]).json()
    for access in (tokens["access_token"], renewed["access_token"]):
        assert api_get(p, "users/me", access).status_code == 200
    other = login(p, confidential=True)  # another grant: unaffected
    response = requests.post(f"{p.issuer}/oauth/v2/revoke", timeout=TIMEOUT, data={
        "token": renewed["refresh_token"], "token_type_hint": "refresh_token",
        "client_id": p.confidential_client_id, "client_secret": p.confidential_client_secret})
    assert response.status_code == 200
    for access in (tokens["access_token"], renewed["access_token"]):
        assert api_get(p, "users/me", access).status_code == 401
    headers = {"Authorization": f"Bearer {renewed['access_token']}"}
    assert requests.get(f"{p.issuer}/oauth/v2/oidc/userinfo", headers=headers,
                        timeout=TIMEOUT).status_code == 401
    assert refresh(p, renewed["refresh_token"]).status_code == 400
    assert api_get(p, "users/me", other["access_token"]).status_code == 200


def test_revoking_an_access_token(sandbox_provider):
    p = sandbox_provider
    tokens = login(p)
    response = requests.post(f"{p.issuer}/oauth/v2/revoke", timeout=TIMEOUT, data={
        "token": tokens["access_token"], "client_id": p.public_client_id})
    assert response.status_code == 200
    assert api_get(p, "users/me", tokens["access_token"]).status_code == 401
    # Unknown tokens are fine to revoke (RFC 7009).
    unknown = requests.post(f"{p.issuer}/oauth/v2/revoke", timeout=TIMEOUT, data={
        "token": "nope", "client_id": p.public_client_id})
    assert unknown.status_code == 200


def test_short_lived_access_token_expires_on_time(sandbox_provider):
    p = sandbox_provider
    tokens = login(p, client_id=p.short_public_client_id)
    assert tokens["expires_in"] == p.short_ttl
    started = time.monotonic()
    assert api_get(p, "users/me", tokens["access_token"]).status_code == 200
    time.sleep(max(0.0, p.short_ttl - 1 - (time.monotonic() - started)))
    assert api_get(p, "users/me", tokens["access_token"]).status_code == 200  # ~3 s: alive
    time.sleep(max(0.0, p.short_ttl + 1 - (time.monotonic() - started)))
    assert api_get(p, "users/me", tokens["access_token"]).status_code == 401


# -- ID token and userinfo -------------------------------------------------------------------
def test_id_token_verifies_against_the_jwks_and_has_the_nonce(sandbox_provider):
    p = sandbox_provider
    tokens = login(p, nonce="nonce-789", user="carol")
    jwks = jwt.PyJWKSet.from_dict(
        requests.get(f"{p.issuer}/oauth/v2/oidc/jwks", timeout=TIMEOUT).json())
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "RS256"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"],
                        audience=p.public_client_id, issuer=p.issuer)
    assert claims["nonce"] == "nonce-789"
    assert claims["sub"] == p.users["carol"]["sub"]
    assert claims["exp"] > time.time() and claims["iat"] <= time.time() + 1
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_no_id_token_without_openid(sandbox_provider):
    tokens = login(sandbox_provider, scope="user:read")
    assert "id_token" not in tokens


@pytest.mark.parametrize("which", ["access_token", "id_token"])
def test_userinfo_accepts_access_token_and_id_token(sandbox_provider, which):
    p = sandbox_provider
    tokens = login(p, user="bob")
    response = requests.get(f"{p.issuer}/oauth/v2/oidc/userinfo", timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {tokens[which]}"})
    assert response.status_code == 200
    assert response.json() == p.users["bob"]


def test_userinfo_refuses_bad_tokens(sandbox_provider):
    p = sandbox_provider
    url = f"{p.issuer}/oauth/v2/oidc/userinfo"
    assert requests.get(url, timeout=TIMEOUT).status_code == 401
    assert requests.get(url, timeout=TIMEOUT,
                        headers={"Authorization": "Bearer forged"}).status_code == 401
    tokens = login(p, scope="user:read")
    response = requests.get(url, timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 403


# -- the sign-in page ----------------------------------------------------------------------
def test_sign_in_page_lists_scopes_and_escapes_everything(sandbox_provider):
    p = sandbox_provider
    _, challenge = pkce_pair()
    evil = '"><script>alert(1)</script>'
    url = authorize_url(p, p.public_client_id, challenge=challenge, state=evil,
                        nonce="<b>n</b>", scope="openid scenarios:read dlqs:read")
    page = requests.get(url, timeout=TIMEOUT)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>n</b>" not in html
    for scope in ("openid", "scenarios:read", "dlqs:read"):
        assert f">{scope}</code>" in html
    assert 'method="post"' in html and 'action="authorize"' in html  # relative: proxy-safe
    assert 'value="approve"' in html and 'value="deny"' in html
    for user in p.users:
        assert f'value="{user}"' in html
    # The escaped state still comes back intact.
    assert query_of(p.authorize(url))["state"] == evil


def test_unregistered_redirect_uri_or_client_stays_on_the_sandbox(sandbox_provider):
    p = sandbox_provider
    _, challenge = pkce_pair()
    for url in (
        authorize_url(p, p.public_client_id, challenge=challenge,
                      redirect_uri="https://attacker.example/cb"),
        authorize_url(p, "no-such-client", challenge=challenge),
    ):
        response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert "attacker.example/cb?" not in response.text


def test_forged_form_post_is_refused(sandbox_provider):
    p = sandbox_provider
    _, challenge = pkce_pair()
    params = query_of(authorize_url(p, p.public_client_id, challenge=challenge))
    response = requests.post(f"{p.issuer}/oauth/v2/authorize", timeout=TIMEOUT,
                             allow_redirects=False,
                             data=dict(params, user="alice", decision="approve",
                                       consent=f"{int(time.time())}.00"))
    assert response.status_code == 400 and "Location" not in response.headers


def test_browser_base_url_for_proxies():
    public = "https://hub.example.test/user/ana/proxy/8764"
    with Sandbox(browser_base_url=public + "/") as sb:
        doc = requests.get(f"{sb.issuer}/.well-known/openid-configuration",
                           timeout=TIMEOUT).json()
        assert doc["authorization_endpoint"] == public + "/oauth/v2/authorize"
        assert sb.authorization_endpoint == doc["authorization_endpoint"]
        assert doc["issuer"] == sb.issuer.rstrip("/") and sb.issuer.startswith("http://127.0.0.1:")
        assert doc["token_endpoint"].startswith(sb.issuer)
    with Sandbox(browser_base_url="https://hub.example.test/proxy/{port}") as sb:
        assert sb.authorization_endpoint == (
            f"https://hub.example.test/proxy/{sb.port}/oauth/v2/authorize")


# -- the Make-like API ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def read_token(sandbox_provider):
    return login(sandbox_provider)["access_token"]


def test_users_me_organizations_and_teams(sandbox_provider, sandbox_server, read_token):
    p = sandbox_provider
    me = api_get(p, "users/me", read_token).json()["authUser"]
    assert str(me["id"]) == p.users["alice"]["sub"]
    orgs = api_get(p, "organizations", read_token).json()
    ports = {urlsplit(url).port for url in sandbox_server.zone_api_urls}
    assert len(ports) == 3
    assert orgs["organizations"] and all(o["zone"] in {f"127.0.0.1:{n}" for n in ports}
                                         for o in orgs["organizations"])
    assert orgs["pg"]["offset"] == 0
    org_id = orgs["organizations"][0]["id"]
    teams = api_get(p, "teams", read_token, organizationId=org_id).json()["teams"]
    assert teams and all(t["organizationId"] == org_id for t in teams)
    missing = api_get(p, "teams", read_token)
    assert missing.status_code == 400 and "organizationId" in missing.json()["detail"]


def test_scenarios_are_many_and_page_like_make(sandbox_provider, read_token):
    p = sandbox_provider
    first = api_get(p, "scenarios", read_token, teamId=1).json()
    assert first["pg"] == {"sortBy": "id", "limit": 100, "sortDir": "asc", "offset": 0}
    assert len(first["scenarios"]) == 100
    item = first["scenarios"][0]
    assert "type" in item["scheduling"]
    assert any("interval" in s["scheduling"] for s in first["scenarios"])
    assert set(item["createdByUser"]) == {"id", "name", "email"}
    assert item["teamId"] == 1 and isinstance(item["usedPackages"], list)
    ids: list[int] = []
    offset = 0
    while True:
        page = api_get(p, "scenarios", read_token,
                       **{"teamId": 1, "pg[offset]": offset, "pg[limit]": 1000}).json()
        assert page["pg"]["limit"] == 1000 and page["pg"]["offset"] == offset
        ids += [s["id"] for s in page["scenarios"]]
        if len(page["scenarios"]) < 1000:
            break
        offset += 1000
    assert len(ids) == len(set(ids)) >= 2000
    assert ids == sorted(ids)
    desc = api_get(p, "scenarios", read_token,
                   **{"teamId": 1, "pg[sortDir]": "desc", "pg[limit]": 3,
                      "cols[]": ["id", "name"]}).json()
    assert [s["id"] for s in desc["scenarios"]] == sorted(ids, reverse=True)[:3]
    assert all(set(s) == {"id", "name"} for s in desc["scenarios"])
    too_big = api_get(p, "scenarios", read_token, **{"teamId": 1, "pg[limit]": 10001})
    assert too_big.status_code == 400 and too_big.json()["code"] == "SC400"


def test_scenarios_need_team_or_organization(sandbox_provider, read_token):
    response = api_get(sandbox_provider, "scenarios", read_token)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"message", "detail", "code", "suberrors"}
    assert "teamId" in body["detail"] and "organizationId" in body["detail"]
    by_org = api_get(sandbox_provider, "scenarios", read_token, organizationId=1).json()
    assert by_org["scenarios"]
    both = api_get(sandbox_provider, "scenarios", read_token, teamId=1, organizationId=1)
    assert both.status_code == 400


@pytest.mark.parametrize("path,key", [("connections", "connections"),
                                      ("data-stores", "dataStores"), ("hooks", "hooks")])
def test_team_lists(sandbox_provider, read_token, path, key):
    body = api_get(sandbox_provider, path, read_token, teamId=1).json()
    assert body[key] and body["pg"]["offset"] == 0
    assert api_get(sandbox_provider, path, read_token).status_code == 400


def test_other_peoples_teams_are_forbidden(sandbox_provider, read_token):
    response = api_get(sandbox_provider, "scenarios", read_token, teamId=4)  # carol's
    assert response.status_code == 403 and response.json()["code"] == "SC403"


def test_scopes_are_enforced(sandbox_provider):
    p = sandbox_provider
    token = login(p, scope="openid user:read")["access_token"]
    assert api_get(p, "users/me", token).status_code == 200
    for path in ("scenarios", "organizations", "hooks"):
        response = api_get(p, path, token, teamId=1)
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "SC403" and body["message"] == "Permission denied"
    response = requests.post(p.api_url + "scenarios", timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403  # scenarios:write missing


def test_foreign_and_missing_tokens_get_401(sandbox_provider):
    p = sandbox_provider
    assert requests.get(p.api_url + "users/me", timeout=TIMEOUT).status_code == 401
    assert api_get(p, "users/me", "not-a-sandbox-token").status_code == 401
    with Sandbox() as other:
        verifier, challenge = pkce_pair()
        fixture_authorize = make_authorize(other.issuer)
        url = (f"{other.issuer}/oauth/v2/authorize?" + urlencode({
            "response_type": "code", "client_id": other.client_id,
            "redirect_uri": other.redirect_uri, "scope": "user:read",
            "code_challenge": challenge, "code_challenge_method": "S256"}))
        code = query_of(fixture_authorize(url))["code"]
        foreign = requests.post(f"{other.issuer}/oauth/v2/token", timeout=TIMEOUT, data={
            "grant_type": "authorization_code", "code": code, "client_id": other.client_id,
            "redirect_uri": other.redirect_uri, "code_verifier": verifier}).json()
        assert requests.get(other.api_url + "users/me", timeout=TIMEOUT, headers={
            "Authorization": f"Bearer {foreign['access_token']}"}).status_code == 200
    response = api_get(p, "users/me", foreign["access_token"])
    assert response.status_code == 401 and response.json()["code"] == "SC401"


def test_injected_429_has_retry_after(sandbox_provider, sandbox_server, sandbox_faults,
                                      read_token):
    sandbox_server.inject(status=429, count=2, retry_after=3)
    for _ in range(2):
        response = api_get(sandbox_provider, "users/me", read_token)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json()["message"] == ("Requests limit for organization exceeded, "
                                              "please try again later.")
    assert api_get(sandbox_provider, "users/me", read_token).status_code == 200


def test_injected_5xx(sandbox_provider, sandbox_server, sandbox_faults, read_token):
    sandbox_server.inject(status=503, count=1, retry_after=None)
    response = api_get(sandbox_provider, "users/me", read_token)
    assert response.status_code == 503 and "Retry-After" not in response.headers
    assert set(response.json()) == {"message", "detail", "code", "suberrors"}
    sandbox_server.inject(status=500, where="token")
    failed = token_request(sandbox_provider, grant_type="authorization_code", code="x")
    assert failed.status_code == 500 and failed.json()["error"] == "server_error"


def test_rate_limit_per_token(sandbox_provider, sandbox_server, sandbox_faults, read_token):
    sandbox_server.set_rate_limit(3)
    statuses = [api_get(sandbox_provider, "users/me", read_token).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = api_get(sandbox_provider, "users/me", read_token)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_api_serves_any_token_validator():
    """The API as a plain WSGI app against another validator (e.g. introspection)."""
    seen = []

    def validate(token):
        seen.append(token)
        return ("alice", ["scenarios:read"]) if token == "good" else None

    app = MakeLikeAPI(validate)

    def call(path, token=None, query=""):
        environ = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET"}
        if token:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        setup_testing_defaults(environ)
        result = {}
        body = b"".join(app(environ, lambda status, headers: result.update(status=status)))
        return result["status"], body

    assert call("/api/v2/scenarios", "good", "teamId=1")[0].startswith("200")
    assert call("/api/v2/scenarios", "bad", "teamId=1")[0].startswith("401")
    assert call("/api/v2/users/me", "good")[0].startswith("403")
    assert seen == ["good", "bad", "good"]


# -- the in-process object -------------------------------------------------------------------
def test_sandbox_object_settings_and_repr():
    with Sandbox(confidential=True) as sb:
        settings = sb.settings()
        assert list(settings) == ["MAKE_ISSUER", "MAKE_API_URL", "MAKE_CLIENT_ID",
                                  "MAKE_REDIRECT_URI", "MAKE_CLIENT_SECRET"]
        assert sb.api_url.endswith("/api/v2/") and sb.api_url.startswith(sb.issuer)
        assert sb.client_id == CONFIDENTIAL_CLIENT_ID and sb.client_secret
        assert sb.redirect_uri == "http://127.0.0.1:8765/callback"
        assert sb.client_secret not in repr(sb)
        assert sb.client_secret not in repr(sb.clients[CONFIDENTIAL_CLIENT_ID])
        assert sb.running
    assert not sb.running
    with Sandbox() as pub:
        assert pub.client_id == PUBLIC_CLIENT_ID and pub.client_secret is None
        assert "MAKE_CLIENT_SECRET" not in pub.settings()
    with pytest.raises(RuntimeError):
        _ = Sandbox().issuer


def test_registered_redirect_uris():
    with Sandbox() as sb:
        for client in sb.clients.values():
            assert set(sandbox_models.DEFAULT_REDIRECT_URIS) <= set(client.redirect_uris)
        assert len(sb.clients) == 4


def test_ensure_sandbox_is_shared():
    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_sandbox()))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1 and results[0].running
    assert ensure_sandbox() is results[0]


def test_sandbox_logs_nothing_secret(capfd, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("authlib", "make_notebook_auth", "joserfc"):
        caplog.set_level(logging.DEBUG, logger=name)
    with Sandbox(confidential=True) as sb:
        verifier, challenge = pkce_pair()
        url = (f"{sb.issuer}/oauth/v2/authorize?" + urlencode({
            "response_type": "code", "client_id": sb.client_id, "redirect_uri": sb.redirect_uri,
            "scope": "openid user:read", "code_challenge": challenge,
            "code_challenge_method": "S256", "state": "s"}))
        code = query_of(make_authorize(sb.issuer)(url))["code"]
        tokens = requests.post(f"{sb.issuer}/oauth/v2/token", timeout=TIMEOUT, data={
            "grant_type": "authorization_code", "code": code, "client_id": sb.client_id,
            "client_secret": sb.client_secret, "redirect_uri": sb.redirect_uri,
            "code_verifier": verifier}).json()
        requests.get(f"{sb.api_url}users/me", timeout=TIMEOUT,
                     headers={"Authorization": f"Bearer {tokens['access_token']}"})
        renewed = requests.post(f"{sb.issuer}/oauth/v2/token", timeout=TIMEOUT, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": sb.client_id, "client_secret": sb.client_secret}).json()
        requests.post(f"{sb.issuer}/oauth/v2/revoke", timeout=TIMEOUT, data={
            "token": renewed["refresh_token"], "client_id": sb.client_id,
            "client_secret": sb.client_secret})
        requests.get(f"{sb.issuer}/oauth/v2/authorize?code=leak", timeout=TIMEOUT)
        secret = sb.client_secret
    out, err = capfd.readouterr()
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG logging was on
    # Everything but the test's own HTTP client (urllib3 logs the URLs it requests).
    server_side = [r for r in caplog.records if not r.name.startswith("urllib3")]
    logged = out + err + "\n".join(f"{r.name} {r.getMessage()}" for r in server_side)
    for value in (code, tokens["access_token"], tokens["refresh_token"], tokens["id_token"],
                  renewed["access_token"], renewed["refresh_token"], secret, verifier, "leak"):
        assert value not in logged
    assert "GET /" not in logged and "POST /" not in logged


@pytest.mark.parametrize("uri, accepted", [
    ("http://127.0.0.1:8765/callback", True),  # registered
    ("http://127.0.0.1:40123/callback", True),  # RFC 8252 7.3: any port on the loopback IP
    ("http://127.0.0.1:40123/other", False),  # but the registered path
    ("http://127.0.0.1/callback", False),  # with an explicit port
    ("http://localhost:40123/callback", False),  # the IP literal, not a name
    ("https://127.0.0.1:40123/callback", False),
    ("http://user@127.0.0.1:40123/callback", False),
    ("http://127.0.0.2:40123/callback", False),
    ("https://app.example.test/callback", True),
    ("https://app.example.test:8443/callback", False),  # not loopback: exact match only
])
def test_loopback_redirect_uris_take_any_port(uri, accepted):
    client = sandbox_models.default_clients()[0]
    assert client.check_redirect_uri(uri) is accepted
