"""Checks that the ``oidc_provider`` fixture (panva's oidc-provider, configured like Make) works.

Everything here is driven by hand with ``requests``: discovery, PKCE code flow, tokens,
ID token signature, userinfo, the Make-like API, refresh-token rotation, revocation, expiry.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

pytest_plugins = ["fixtures_oidc"]

API_SCOPES = "openid user:read organizations:read teams:read scenarios:read"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)  # 64 characters
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _auth_url(provider, client_id, challenge, state, nonce=None, scope=API_SCOPES, **extra):
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": provider.redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if nonce:
        params["nonce"] = nonce
    params.update(extra)
    return f"{provider.issuer}/oauth/v2/authorize?{urlencode(params)}"


def _callback_params(provider, url: str) -> dict:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == provider.redirect_uri
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def _login(provider, client_id, user="alice", scope=API_SCOPES, client_secret=None):
    """Full code flow by hand; returns the token response JSON."""
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    nonce = secrets.token_urlsafe(16)
    redirect = provider.authorize(
        _auth_url(provider, client_id, challenge, state, nonce, scope), user=user
    )
    params = _callback_params(provider, redirect)
    assert params["state"] == state
    assert params["iss"] == provider.issuer
    data = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": provider.redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    if client_secret is not None:
        data["client_secret"] = client_secret
    response = requests.post(f"{provider.issuer}/oauth/v2/token", data=data, timeout=10)
    assert response.status_code == 200, response.text
    tokens = response.json()
    tokens["_nonce"] = nonce
    return tokens


def _me(provider, access_token) -> requests.Response:
    return requests.get(
        f"{provider.api_url}users/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def _refresh(provider, refresh_token, client_id, client_secret) -> requests.Response:
    return requests.post(
        f"{provider.issuer}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": client_secret,
        },
        timeout=10,
    )


def test_discovery_has_makes_layout(oidc_provider):
    assert oidc_provider.name == "oidc-provider"
    assert oidc_provider.issuer.startswith("http://127.0.0.1:")
    assert not oidc_provider.issuer.endswith("/")
    assert oidc_provider.api_url == oidc_provider.issuer + "/api/v2/"
    doc = requests.get(
        f"{oidc_provider.issuer}/.well-known/openid-configuration", timeout=10
    ).json()
    base = oidc_provider.issuer
    assert doc["issuer"] == base
    assert doc["authorization_endpoint"] == f"{base}/oauth/v2/authorize"
    assert doc["token_endpoint"] == f"{base}/oauth/v2/token"
    assert doc["jwks_uri"] == f"{base}/oauth/v2/oidc/jwks"
    assert doc["userinfo_endpoint"] == f"{base}/oauth/v2/oidc/userinfo"
    assert doc["revocation_endpoint"] == f"{base}/oauth/v2/revoke"
    assert doc["introspection_endpoint"] == f"{base}/oauth/v2/introspect"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "end_session_endpoint" not in doc
    assert {"openid", "user:read", "scenarios:run", "templates:read"} <= set(
        doc["scopes_supported"]
    )
    assert "client_secret_post" in doc["token_endpoint_auth_methods_supported"]
    assert {"authorization_code", "refresh_token"} <= set(doc["grant_types_supported"])

    jwks = requests.get(doc["jwks_uri"], timeout=10).json()
    assert [(k["kty"], k["alg"], k["use"]) for k in jwks["keys"]] == [("RSA", "RS256", "sig")]
    assert "d" not in jwks["keys"][0]  # public part only


def test_handle_fields(oidc_provider):
    # A loopback redirect URI on a port chosen for this run (not the package's default 8765,
    # which two test runs on one machine would share).
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", oidc_provider.redirect_uri)
    assert oidc_provider.redirect_uri != "http://127.0.0.1:8765/callback"
    assert oidc_provider.public_client_id == "public-client"
    assert oidc_provider.confidential_client_id == "confidential-client"
    assert oidc_provider.short_public_client_id == "short-public"
    assert oidc_provider.short_confidential_client_id == "short-confidential"
    assert len(oidc_provider.confidential_client_secret) >= 32
    assert (
        oidc_provider.short_confidential_client_secret != oidc_provider.confidential_client_secret
    )
    assert oidc_provider.short_ttl == 4
    assert oidc_provider.users["alice"] == {
        "sub": "alice",
        "name": "Alice Analyst",
        "email": "alice@example.com",
        "email_verified": True,
    }
    assert oidc_provider.users["bob"]["name"] == "Bob Builder"
    assert "secret" not in repr(oidc_provider).lower()


def test_public_client_pkce_flow_userinfo_and_api(oidc_provider):
    import jwt

    tokens = _login(oidc_provider, oidc_provider.public_client_id)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert set(tokens["scope"].split()) == set(API_SCOPES.split())
    assert "refresh_token" not in tokens  # like Make: public clients get none

    # ID token: RS256, signed with the key from the JWKS, right issuer/audience/nonce/sub.
    jwks = requests.get(f"{oidc_provider.issuer}/oauth/v2/oidc/jwks", timeout=10).json()
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "RS256"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]].key
    claims = jwt.decode(
        tokens["id_token"],
        key,
        algorithms=["RS256"],
        audience=oidc_provider.public_client_id,
        issuer=oidc_provider.issuer,
    )
    assert claims["sub"] == "alice"
    assert claims["nonce"] == tokens["_nonce"]

    userinfo = requests.get(
        f"{oidc_provider.issuer}/oauth/v2/oidc/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json() == oidc_provider.users["alice"]

    me = _me(oidc_provider, tokens["access_token"])
    assert me.status_code == 200, me.text
    assert me.json() == {
        "authUser": {"id": 1, "name": "Alice Analyst", "email": "alice@example.com", "sub": "alice"}
    }


def test_other_user_and_other_redirect_uri(oidc_provider):
    verifier, challenge = _pkce()
    url = _auth_url(
        oidc_provider,
        oidc_provider.public_client_id,
        challenge,
        "s1",
        redirect_uri="https://app.example.test/callback",
    )
    redirect = oidc_provider.authorize(url, user="bob")
    assert redirect.startswith("https://app.example.test/callback?")
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    response = requests.post(
        f"{oidc_provider.issuer}/oauth/v2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": oidc_provider.public_client_id,
            "redirect_uri": "https://app.example.test/callback",
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    me = _me(oidc_provider, response.json()["access_token"])
    assert me.json()["authUser"]["sub"] == "bob"
    assert me.json()["authUser"]["id"] == 2


def test_pkce_is_enforced_and_codes_are_single_use(oidc_provider):
    # No code_challenge at all: refused, reported to the client.
    url = _auth_url(oidc_provider, oidc_provider.confidential_client_id, "x", "s2")
    assert "&code_challenge=x&code_challenge_method=S256" in url
    url = url.replace("&code_challenge=x&code_challenge_method=S256", "")
    params = _callback_params(oidc_provider, oidc_provider.authorize(url))
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]

    # plain is not accepted.
    url = _auth_url(
        oidc_provider, oidc_provider.public_client_id, "a" * 43, "s3", code_challenge_method="plain"
    )
    params = _callback_params(oidc_provider, oidc_provider.authorize(url))
    assert params["error"] == "invalid_request"

    # Wrong verifier: invalid_grant.
    verifier, challenge = _pkce()
    redirect = oidc_provider.authorize(
        _auth_url(oidc_provider, oidc_provider.public_client_id, challenge, "s4")
    )
    code = _callback_params(oidc_provider, redirect)["code"]
    token_url = f"{oidc_provider.issuer}/oauth/v2/token"
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": oidc_provider.redirect_uri,
        "client_id": oidc_provider.public_client_id,
        "code_verifier": _pkce()[0],
    }
    bad = requests.post(token_url, data=data, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"

    # Right verifier works once; a reused code is invalid_grant.
    redirect = oidc_provider.authorize(
        _auth_url(oidc_provider, oidc_provider.public_client_id, challenge, "s5")
    )
    data["code"] = _callback_params(oidc_provider, redirect)["code"]
    data["code_verifier"] = verifier
    first = requests.post(token_url, data=data, timeout=10)
    assert first.status_code == 200, first.text
    again = requests.post(token_url, data=data, timeout=10)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # ... and reuse revokes what the code gave.
    assert _me(oidc_provider, first.json()["access_token"]).status_code == 401


def test_unregistered_redirect_uri_is_not_redirected_to(oidc_provider):
    _, challenge = _pkce()
    url = _auth_url(
        oidc_provider,
        oidc_provider.public_client_id,
        challenge,
        "s6",
        redirect_uri="http://127.0.0.1:9999/callback",
    )
    with pytest.raises(Exception, match="redirect_uri"):
        oidc_provider.authorize(url)


@pytest.mark.parametrize("kind", ["public", "confidential"])
def test_denied_consent(oidc_provider, kind):
    client_id = getattr(oidc_provider, f"{kind}_client_id")
    _, challenge = _pkce()
    redirect = oidc_provider.authorize(
        _auth_url(oidc_provider, client_id, challenge, "deny-state"), approve=False
    )
    params = _callback_params(oidc_provider, redirect)
    assert params["error"] == "access_denied"
    assert params["state"] == "deny-state"
    assert params["iss"] == oidc_provider.issuer
    assert "code" not in params


def test_confidential_client_refresh_rotation(oidc_provider):
    cid, secret = oidc_provider.confidential_client_id, oidc_provider.confidential_client_secret
    tokens = _login(oidc_provider, cid, user="bob", client_secret=secret)
    assert "offline_access" not in tokens["scope"]
    first_refresh = tokens["refresh_token"]
    assert _me(oidc_provider, tokens["access_token"]).json()["authUser"]["sub"] == "bob"

    rotated = _refresh(oidc_provider, first_refresh, cid, secret)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != first_refresh
    assert new["access_token"] != tokens["access_token"]
    assert set(new["scope"].split()) == set(API_SCOPES.split())
    assert _me(oidc_provider, new["access_token"]).json()["authUser"]["email"] == "bob@example.com"

    # Wrong secret: invalid_client.
    wrong = _refresh(oidc_provider, new["refresh_token"], cid, secret + "x")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"

    # Replaying the rotated-away refresh token fails and revokes the whole grant.
    replay = _refresh(oidc_provider, first_refresh, cid, secret)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    after = _refresh(oidc_provider, new["refresh_token"], cid, secret)
    assert after.json()["error"] == "invalid_grant"
    assert _me(oidc_provider, new["access_token"]).status_code == 401


def test_revocation_and_introspection(oidc_provider, oidc_provider_introspection):
    cid, secret = oidc_provider.confidential_client_id, oidc_provider.confidential_client_secret
    tokens = _login(oidc_provider, cid, client_secret=secret)
    intro = oidc_provider_introspection
    auth = (intro["client_id"], intro["client_secret"])

    def introspect(token):
        response = requests.post(
            intro["introspection_endpoint"], data={"token": token}, auth=auth, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    active = introspect(tokens["access_token"])
    assert active["active"] is True
    assert active["sub"] == "alice"
    assert active["client_id"] == cid
    assert "user:read" in active["scope"].split()

    revoke_url = f"{oidc_provider.issuer}/oauth/v2/revoke"
    response = requests.post(
        revoke_url,
        data={
            "token": tokens["access_token"],
            "token_type_hint": "access_token",
            "client_id": cid,
            "client_secret": secret,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert introspect(tokens["access_token"]) == {"active": False}
    me = _me(oidc_provider, tokens["access_token"])
    assert me.status_code == 401
    assert me.json()["code"] == "SC401"
    assert me.json()["message"] == "Access denied"
    userinfo = requests.get(
        f"{oidc_provider.issuer}/oauth/v2/oidc/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert userinfo.status_code == 401

    # Revoking the refresh token ends refreshing.
    response = requests.post(
        revoke_url,
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": cid,
            "client_secret": secret,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    refreshed = _refresh(oidc_provider, tokens["refresh_token"], cid, secret)
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


def test_api_errors_have_makes_shape(oidc_provider):
    missing = requests.get(f"{oidc_provider.api_url}users/me", timeout=10)
    assert missing.status_code == 401
    assert missing.json()["code"] == "SC401"
    garbage = _me(oidc_provider, "not-a-token")
    assert garbage.status_code == 401
    assert set(garbage.json()) >= {"message", "detail", "code"}

    tokens = _login(oidc_provider, oidc_provider.public_client_id, scope="openid scenarios:read")
    forbidden = _me(oidc_provider, tokens["access_token"])
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "SC403"


def test_short_ttl_clients_expire(oidc_provider):
    start = time.time()
    tokens = _login(
        oidc_provider,
        oidc_provider.short_confidential_client_id,
        client_secret=oidc_provider.short_confidential_client_secret,
    )
    assert tokens["expires_in"] <= oidc_provider.short_ttl
    assert "refresh_token" in tokens
    public = _login(oidc_provider, oidc_provider.short_public_client_id)
    assert public["expires_in"] <= oidc_provider.short_ttl
    assert "refresh_token" not in public
    if time.time() - start < oidc_provider.short_ttl - 2:
        assert _me(oidc_provider, tokens["access_token"]).status_code == 200
    time.sleep(max(0.0, start + oidc_provider.short_ttl + 1.2 - time.time()))
    for access_token in (tokens["access_token"], public["access_token"]):
        assert _me(oidc_provider, access_token).status_code == 401
        userinfo = requests.get(
            f"{oidc_provider.issuer}/oauth/v2/oidc/userinfo",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=10,
        )
        assert userinfo.status_code == 401
    # The refresh token still works and gives a fresh short-lived access token.
    refreshed = _refresh(
        oidc_provider,
        tokens["refresh_token"],
        oidc_provider.short_confidential_client_id,
        oidc_provider.short_confidential_client_secret,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert _me(oidc_provider, refreshed.json()["access_token"]).status_code == 200


def test_comma_separated_scopes_like_make(oidc_provider):
    tokens = _login(
        oidc_provider, oidc_provider.public_client_id, scope="openid,user:read,scenarios:read"
    )
    assert set(tokens["scope"].split()) == {"openid", "user:read", "scenarios:read"}
    assert _me(oidc_provider, tokens["access_token"]).status_code == 200


def test_userinfo_accepts_the_id_token_like_makes_docs(oidc_provider):
    tokens = _login(oidc_provider, oidc_provider.public_client_id, user="bob")
    userinfo_url = f"{oidc_provider.issuer}/oauth/v2/oidc/userinfo"
    response = requests.get(
        userinfo_url, headers={"Authorization": f"Bearer {tokens['id_token']}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json() == oidc_provider.users["bob"]

    header, payload, signature = tokens["id_token"].split(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            base64.urlsafe_b64decode(payload + "==").replace(b'"bob"', b'"alice"')
        )
        .rstrip(b"=")
        .decode()
    )
    assert forged_payload != payload
    forged = requests.get(
        userinfo_url,
        timeout=10,
        headers={"Authorization": f"Bearer {header}.{forged_payload}.{signature}"},
    )
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_token"
    # An ID token is not an access token for the API.
    assert _me(oidc_provider, tokens["id_token"]).status_code == 401
