"""MakeAuth's refusals, end to end over HTTP against the scriptable provider on loopback."""

from __future__ import annotations

import threading
import time
import warnings
from urllib.parse import parse_qs, urlsplit

import pytest
from fixtures_hostile import answer

from make_notebook_auth import (
    AuthorizationDeniedError,
    AuthorizationResponseError,
    IDTokenError,
    IssuerMismatchError,
    LoginExpiredError,
    MakeAuth,
    MakeAuthError,
    MakeError,
    NotLoggedInError,
    ProviderResponseError,
    RevocationWarning,
    StateMismatchError,
    TokenEndpointError,
    get_session,
)
from make_notebook_auth.oidc import ProviderMetadata


def make_auth(hostile, **kw):
    kw.setdefault("client_secret", "s3cr3t-value-xyz")
    return MakeAuth(hostile.client_id, issuer=hostile.issuer,
                    api_url=hostile.issuer + "/api/v2", **kw)


def login(hostile, **kw):
    auth = make_auth(hostile, **kw)
    return auth, auth.finish(hostile.authorize(auth.start().url))


def test_happy_path_and_request_parameters(hostile):
    auth = make_auth(hostile)
    req = auth.start()
    q = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
    assert req.url.startswith(hostile.issuer + "/oauth/v2/authorize?")
    assert q["response_type"] == "code"
    assert q["client_id"] == hostile.client_id
    assert q["redirect_uri"] == "http://127.0.0.1:8765/callback"
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43
    assert q["state"] == req.state and q["nonce"]
    assert "openid" in q["scope"].split()
    assert req._code_verifier not in repr(req) and q["nonce"] not in repr(req)
    session = auth.finish(hostile.authorize(req.url))
    assert session.id_claims["sub"] == "user-1"
    assert session.logged_in and get_session() is session
    token_call = [f for m, p, f in hostile.requests if p == "/oauth/v2/token"][0]
    assert token_call["client_secret"] == "s3cr3t-value-xyz"  # client_secret_post
    assert token_call["redirect_uri"] == "http://127.0.0.1:8765/callback"
    assert len(token_call["code_verifier"]) >= 43
    assert "_authorization" not in token_call  # no Basic auth


def _finish_with(hostile, mutate=None, *, id_token_for=None):
    if mutate is not None:
        hostile.claims_for = lambda nonce: mutate(hostile.default_claims(nonce))
    if id_token_for is not None:
        hostile.id_token_for = id_token_for
    auth = make_auth(hostile)
    req = auth.start()
    with pytest.raises(IDTokenError) as info:
        auth.finish(hostile.authorize(req.url))
    assert auth.pending is req  # the login can be tried again
    return info.value


@pytest.mark.parametrize(
    ("check", "mutate"),
    [
        ("aud", lambda c: {**c, "aud": "someone-else"}),
        ("iss", lambda c: {**c, "iss": "https://evil.example"}),
        ("exp", lambda c: {**c, "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}),
        ("iat", lambda c: {**c, "iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}),
        ("nonce", lambda c: {**c, "nonce": "not-the-nonce"}),
        ("nonce", lambda c: {k: v for k, v in c.items() if k != "nonce"}),
        ("azp", lambda c: {**c, "aud": [c["aud"], "other"]}),
        ("azp", lambda c: {**c, "aud": [c["aud"], "other"], "azp": "other"}),
        ("sub", lambda c: {k: v for k, v in c.items() if k != "sub"}),
    ],
)
def test_id_token_claim_checks(hostile, check, mutate):
    err = _finish_with(hostile, mutate)
    assert err.check == check
    assert check in str(err)


def test_several_audiences_with_matching_azp_is_accepted(hostile):
    hostile.claims_for = lambda n: {**hostile.default_claims(n),
                                    "aud": [hostile.client_id, "other"], "azp": hostile.client_id}
    _, session = login(hostile)
    assert session.id_claims["azp"] == hostile.client_id


def test_bad_signature(hostile):
    other = hostile.signer.new_key()  # same kid as published, signed by another key
    err = _finish_with(hostile, id_token_for=lambda c: hostile.signer.sign(
        c, kid=other, headers={"kid": hostile.signer.current}))
    assert err.check == "signature"


def test_alg_none_and_hmac_are_refused(hostile):
    err = _finish_with(hostile, id_token_for=lambda c: hostile.signer.sign(c, alg="none"))
    assert err.check == "alg"
    err = _finish_with(hostile, id_token_for=lambda c: hostile.signer.sign(c, alg="HS256"))
    assert err.check == "alg"


def test_advertised_hmac_is_still_refused(hostile):
    hostile.discovery_extra = {"id_token_signing_alg_values_supported": ["HS256", "none"]}
    err = _finish_with(hostile, id_token_for=lambda c: hostile.signer.sign(c, alg="HS256"))
    assert err.check == "alg"


def test_unknown_kid_refetches_jwks_once(hostile):
    _, session = login(hostile)  # warms the key-set cache
    session.logout()
    assert hostile.calls("/oauth/v2/oidc/jwks") == 1
    new = hostile.signer.new_key()
    hostile.signer.publish(new)
    hostile.signer.current = new
    _, session = login(hostile)
    assert session.logged_in
    assert hostile.calls("/oauth/v2/oidc/jwks") == 2
    # a kid the provider never publishes: exactly one more fetch, then a clear refusal
    hostile.signer.current = hostile.signer.new_key()
    err = _finish_with(hostile)
    assert err.check == "signature"
    assert hostile.calls("/oauth/v2/oidc/jwks") == 3


def test_missing_id_token_is_refused(hostile):
    hostile.id_token_for = lambda c: ""
    err = _finish_with(hostile)
    assert err.check == "missing"


def test_state_mismatch_keeps_pending_usable(hostile):
    auth = make_auth(hostile)
    req = auth.start()
    reply = hostile.authorize(req.url)
    forged = reply.replace(req.state, "forged-state")
    with pytest.raises(StateMismatchError) as info:
        auth.finish(forged)
    assert "state" in str(info.value)
    assert auth.finish(reply).logged_in


def test_iss_mismatch_and_missing_iss(hostile):
    hostile.discovery_extra = {"authorization_response_iss_parameter_supported": True}
    auth = make_auth(hostile)
    req = auth.start()
    reply = hostile.authorize(req.url)
    with pytest.raises(IssuerMismatchError):
        auth.finish(reply.replace("iss=", "iss=https%3A%2F%2Fevil.example&x="))
    without_iss = reply.split("&iss=")[0]
    with pytest.raises(IssuerMismatchError):
        auth.finish(without_iss)
    code = parse_qs(urlsplit(reply).query)["code"][0]
    assert auth.finish(code).logged_in  # a bare code carries no iss: accepted


def test_denied_and_provider_error(hostile):
    auth = make_auth(hostile)
    req = auth.start()
    with pytest.raises(AuthorizationDeniedError) as info:
        auth.finish(hostile.authorize(req.url, approve=False))
    assert info.value.error == "access_denied"
    assert "access_denied" in str(info.value) and "Approve" in str(info.value)
    assert auth.finish(hostile.authorize(req.url)).logged_in


@pytest.mark.parametrize("form", ["url", "query", "query?", "code", "quoted", "spaced"])
def test_paste_forms(hostile, form):
    auth = make_auth(hostile)
    reply = hostile.authorize(auth.start().url)
    query = urlsplit(reply).query
    code = parse_qs(query)["code"][0]
    pasted = {"url": reply, "query": query, "query?": "?" + query, "code": code,
              "quoted": f'  "{reply}"\n', "spaced": f"\t'{code}'  "}[form]
    assert auth.finish(pasted).logged_in


@pytest.mark.parametrize("bad", ["", "   ", "hello world!", "https://x.test/cb?foo=bar",
                                 "code=a&code=b&state=s"])
def test_wrong_paste_is_explained_and_echoes_nothing(hostile, bad):
    auth = make_auth(hostile)
    req = auth.start()
    with pytest.raises(AuthorizationResponseError) as info:
        auth.finish(bad)
    assert "address bar" in str(info.value) or "repeats" in str(info.value)
    if bad.strip():
        assert bad.strip() not in str(info.value)
    assert auth.pending is req


def test_reused_code_reports_invalid_grant_and_stays_pending(hostile):
    auth = make_auth(hostile)
    req = auth.start()
    reply = hostile.authorize(req.url)
    hostile.codes.clear()  # the provider has forgotten the code (expired/used)
    with pytest.raises(TokenEndpointError) as info:
        auth.finish(reply)
    assert info.value.error == "invalid_grant" and info.value.status == 400
    assert "invalid_grant" in str(info.value) and "again" in str(info.value)
    assert auth.finish(hostile.authorize(req.url)).logged_in


def test_reply_after_completion_is_explained(hostile):
    auth = make_auth(hostile)
    reply = hostile.authorize(auth.start().url)
    auth.finish(reply)
    with pytest.raises(AuthorizationResponseError, match="already used"):
        auth.finish(reply)


def test_discovery_naming_another_issuer_is_refused(hostile):
    hostile.discovery_extra = {"issuer": "https://evil.example"}
    with pytest.raises(MakeAuthError, match="another issuer"):
        make_auth(hostile).start()


def test_discovery_failure_falls_back_to_make_paths(hostile):
    hostile.discovery_status = 500
    auth = make_auth(hostile)
    assert auth.start().url.startswith(hostile.issuer + "/oauth/v2/authorize?")
    assert auth.metadata == ProviderMetadata.make_defaults(hostile.issuer)


def test_discovery_and_jwks_once_per_process(hostile):
    for _ in range(3):
        login(hostile)
    assert hostile.calls("/.well-known/openid-configuration") == 1
    assert hostile.calls("/oauth/v2/oidc/jwks") == 1
    assert hostile.calls("/oauth/v2/token") == 3


def test_threads_at_expiry_refresh_once(hostile):
    hostile.expires_in = 2
    hostile.refresh_delay = 0.3
    _, session = login(hostile)
    assert not session._needs_refresh(session.token)  # a short token is not stale on arrival
    old_refresh = session.token["refresh_token"]
    time.sleep(2.1)
    got: list[str] = []
    barrier = threading.Barrier(12)

    def worker():
        barrier.wait()
        got.append(session.access_token())

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hostile.refresh_count == 1
    assert len(set(got)) == 1 and len(got) == 12
    assert session.token["refresh_token"] != old_refresh  # rotation kept


def test_public_session_past_expiry_says_log_in_again(hostile):
    hostile.expires_in = 1
    hostile.refresh_tokens = False
    _, session = login(hostile, client_secret=None)
    time.sleep(1.2)
    with pytest.raises(LoginExpiredError, match="Log in again"):
        session.get("users/me")


def test_failed_revocation_still_logs_out_and_says_so(hostile):
    hostile.revoke_status = 503
    _, session = login(hostile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert session.logout() is False
    assert any(issubclass(w.category, RevocationWarning) for w in caught)
    assert "Logged out locally" in str(caught[0].message)
    assert not session.logged_in
    with pytest.raises(MakeAuthError):
        get_session()
    revokes = [f for m, p, f in hostile.requests if p == "/oauth/v2/revoke"]
    assert [f["token_type_hint"] for f in revokes] == ["refresh_token", "access_token"]
    assert all(f["client_secret"] == "s3cr3t-value-xyz" for f in revokes)


def test_userinfo_falls_back_to_id_token(hostile):
    _, session = login(hostile)
    original = hostile.handle

    def handle(method, path, form):
        if path == "/oauth/v2/oidc/userinfo" and form.get("_authorization", "").startswith(
                "Bearer at-"):
            hostile.requests.append((method, path, form))
            return 401, {"error": "invalid_token"}
        return original(method, path, form)

    hostile.handle = handle
    assert session.userinfo()["name"] == "Hostile Tester"
    bearers = [f["_authorization"] for m, p, f in hostile.requests
               if p == "/oauth/v2/oidc/userinfo"]
    assert bearers[0].startswith("Bearer at-")
    assert bearers[1] == "Bearer " + session.token["id_token"]


def test_userinfo_for_another_user_is_refused(hostile):
    _, session = login(hostile)
    hostile.userinfo_claims = {"sub": "somebody-else"}
    with pytest.raises(MakeAuthError, match="another user"):
        session.userinfo()


def test_threads_waiting_on_a_failed_refresh_do_not_refresh_again(hostile):
    hostile.expires_in = 2
    _, session = login(hostile)
    time.sleep(2.1)
    hostile.refresh_delay = 0.3
    hostile.token_status, hostile.token_body = 503, {"error": "temporarily_unavailable"}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        try:
            session.access_token()
        except MakeAuthError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(hostile.refresh_calls()) == 1  # the waiters share the failure
    assert len(errors) == 8 and all(isinstance(e, TokenEndpointError) for e in errors)
    hostile.token_body = None  # the provider is back: a later call tries again
    assert session.access_token().startswith("at-")
    assert len(hostile.refresh_calls()) == 2


def test_failed_early_refresh_keeps_using_the_still_valid_token(hostile):
    _, session = login(hostile)  # expires_in 3600: refreshed 60 s before expiry
    current = session.token["access_token"]
    session.token["expires_at"] = time.time() + 30  # inside the early-refresh window
    hostile.token_status, hostile.token_body = 503, {"error": "temporarily_unavailable"}
    assert session.access_token() == current  # the outage does not break a valid login
    assert len(hostile.refresh_calls()) == 1
    hostile.token_body = None  # the provider is back: the next call refreshes
    assert session.access_token() != current
    assert len(hostile.refresh_calls()) == 2
    session.token["expires_at"] = time.time() + 0.5  # now (almost) expired: errors surface
    hostile.token_status, hostile.token_body = 503, {"error": "temporarily_unavailable"}
    with pytest.raises(TokenEndpointError):
        session.access_token()


def test_rejected_refreshed_id_token_does_not_replay_the_refresh_token(hostile):
    hostile.expires_in = 2
    _, session = login(hostile)
    time.sleep(2.1)
    plain_token = hostile._token

    def token_for_another_user(form):
        status, body = plain_token(form)
        if form.get("grant_type") == "refresh_token":  # rotated, but for someone else
            body["id_token"] = hostile.signer.sign({**hostile.default_claims(None),
                                                    "sub": "someone-else"})
        return status, body

    hostile._token = token_for_another_user
    with pytest.raises(IDTokenError) as info:
        session.access_token()
    assert info.value.check == "sub"
    assert session.id_claims["sub"] == "user-1"
    with pytest.raises(LoginExpiredError):  # not a second refresh with the spent token
        session.access_token()
    assert len(hostile.refresh_calls()) == 1


def test_malformed_discovery_alg_list_falls_back_to_rs256(hostile):
    hostile.discovery_extra = {"id_token_signing_alg_values_supported": 5}
    _, session = login(hostile)
    assert session.logged_in


def test_jwks_without_kid_and_alg_accepts_a_token_that_names_a_kid(hostile):
    published = hostile.signer.jwks

    def without_kid():
        doc = published()
        for jwk in doc["keys"]:
            del jwk["kid"], jwk["alg"]
        return doc

    hostile.signer.jwks = without_kid
    _, session = login(hostile)  # the token's header still names a kid
    assert session.logged_in
    # ...but the signature is still checked against the published (kid-less) keys
    stranger = hostile.signer.new_key()
    err = _finish_with(hostile, id_token_for=lambda c: hostile.signer.sign(c, kid=stranger))
    assert err.check == "signature"


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_other_asymmetric_algorithms(hostile, alg):
    import json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if alg == "ES256":
        key, family = ec.generate_private_key(ec.SECP256R1()), jwt.algorithms.ECAlgorithm
    elif alg == "EdDSA":
        key, family = ed25519.Ed25519PrivateKey.generate(), jwt.algorithms.OKPAlgorithm
    else:
        key, family = hostile.signer.keys[hostile.signer.current], jwt.algorithms.RSAAlgorithm
    hostile.discovery_extra = {"id_token_signing_alg_values_supported": [alg]}
    hostile.signer.jwks = lambda: {"keys": [json.loads(family.to_jwk(key.public_key()))]}
    hostile.id_token_for = lambda claims: jwt.encode(claims, key, algorithm=alg)
    _, session = login(hostile)
    assert session.id_claims["sub"] == "user-1"


@pytest.mark.parametrize(("status", "revoked"), [(401, True), (404, False), (500, False)])
def test_userinfo_failure_is_explained(hostile, status, revoked):
    _, session = login(hostile)
    original = hostile.handle
    hostile.handle = lambda m, p, f: ((status, {"error": "x"}) if p.endswith("/userinfo")
                                      else original(m, p, f))
    with pytest.raises(MakeAuthError, match=f"HTTP {status}") as info:
        session.userinfo()
    assert ("revoked" in str(info.value)) is revoked


def test_refresh_after_logout_says_logged_out(hostile):
    _, session = login(hostile)
    session.logout()
    with pytest.raises(NotLoggedInError, match="logged out"):
        session.refresh()


# --- hostile answers: every failure is a MakeError, and nothing is used as a bearer ---------



@pytest.mark.parametrize("token_type", ["DPoP", "mac", "", 5, None])
def test_only_bearer_tokens_are_accepted(hostile, token_type):
    hostile.token_body = {"access_token": "at-not-a-bearer", "token_type": token_type,
                          "expires_in": 3600}
    auth = make_auth(hostile)
    with pytest.raises(TokenEndpointError, match="token type"):
        auth.finish(hostile.authorize(auth.start().url))
    assert auth.session.pending and not auth.session.logged_in
    with pytest.raises(NotLoggedInError):
        auth.session.get("users/me")  # never sent as a bearer


def test_bearer_token_type_is_case_insensitive(hostile):
    plain = hostile._token

    def lower(form):
        status, body = plain(form)
        body["token_type"] = "bEaReR"
        return status, body

    hostile._token = lower
    _, session = login(hostile)
    assert session.logged_in


@pytest.mark.parametrize("raw_expiry", ["1e400", "-1e400", "NaN", "-5", '"soon"', "true",
                                        "[3600]", "1e12"])
def test_unusable_expires_in_is_a_token_error(hostile, raw_expiry):
    auth = make_auth(hostile)
    request = auth.start()
    body = '{"access_token": "at-1", "token_type": "Bearer", "expires_in": ' + raw_expiry + "}"
    hostile.raw = lambda m, p, f: answer(200, body) if p == "/oauth/v2/token" else None
    with pytest.raises(TokenEndpointError, match="expires_in"):
        auth.finish(hostile.authorize(request.url))
    assert auth.session.pending


def test_expires_in_as_a_digit_string_is_read(hostile):
    plain = hostile._token

    def stringly(form):
        status, body = plain(form)
        body["expires_in"] = "3600"
        return status, body

    hostile._token = stringly
    _, session = login(hostile)
    assert 3500 < session.expires_in <= 3600


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"a string"', "", "null",
                                  "[" * 100_000 + "]" * 100_000])
def test_malformed_token_answers_are_token_errors(hostile, body):
    auth = make_auth(hostile)
    request = auth.start()
    hostile.raw = lambda m, p, f: answer(200, body) if p == "/oauth/v2/token" else None
    with pytest.raises(TokenEndpointError):
        auth.finish(hostile.authorize(request.url))


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"keys": "x"}', '{"keys": [5]}',
                                  '{"keys": [{"kty": "RSA", "n": "!!", "e": 5, "kid": "a"}]}'])
def test_malformed_key_sets_are_id_token_errors(hostile, body):
    hostile.raw = lambda m, p, f: answer(200, body) if p == "/oauth/v2/oidc/jwks" else None
    auth = make_auth(hostile)
    with pytest.raises(IDTokenError, match="key set"):
        auth.finish(hostile.authorize(auth.start().url))


@pytest.mark.parametrize("headers, check", [
    ({"crit": ["exp"]}, "crit"),
    ({"crit": "x"}, "crit"),
    ({"alg": "RS256", "crit": []}, "crit"),
    ({"kid": 5}, "format"),
    ({"kid": ["k"]}, "format"),
])
def test_hostile_id_token_headers_are_refused(hostile, headers, check):
    def signed(claims):
        return hostile.signer.sign(claims, alg="raw", headers=headers)

    assert _finish_with(hostile, id_token_for=signed).check == check


@pytest.mark.parametrize("claim, value", [
    ("exp", float("inf")), ("exp", float("nan")), ("iat", float("inf")), ("iat", "x"),
    ("aud", {"x": 1}), ("iss", 5), ("sub", 5),
])
def test_hostile_id_token_claims_are_id_token_errors(hostile, claim, value):
    def signed(claims):
        return hostile.signer.sign(claims, alg="raw")

    _finish_with(hostile, lambda c: {**c, claim: value}, id_token_for=signed)


def _expire_now(session):
    session.token["expires_at"] = time.time() - 1


@pytest.mark.parametrize("extra", [{}, {"refresh_token": 5}])
def test_unusable_refresh_answer_without_a_rotated_token_ends_the_login(hostile, extra):
    _, session = login(hostile)
    hostile.token_body = {"access_token": "at-2", "token_type": "DPoP", "expires_in": 60,
                          **extra}
    with pytest.raises(LoginExpiredError, match="refresh"):
        session.refresh()
    hostile.token_body = None
    _expire_now(session)
    with pytest.raises(LoginExpiredError):
        session.access_token()
    assert len(hostile.refresh_calls()) == 1  # the spent refresh token was not sent again


def test_unusable_refresh_answer_keeps_the_rotated_token(hostile):
    _, session = login(hostile)
    spent = session.token["refresh_token"]
    before = session.token["access_token"]
    hostile.token_body = {"access_token": "at-2", "token_type": "Bearer",
                          "expires_in": float("nan"), "refresh_token": "rt-rotated"}
    with pytest.raises(TokenEndpointError, match="expires_in"):
        session.refresh()
    assert session.token["refresh_token"] == "rt-rotated"
    assert session.token["access_token"] == before  # the unusable answer's token is not used
    hostile.token_body = None
    session.refresh()
    forms = hostile.refresh_calls()
    assert [f["refresh_token"] for f in forms] == [spent, "rt-rotated"]


def test_refused_refresh_keeps_the_refresh_token(hostile):
    # An OAuth error (the provider refused, nothing was spent): the token stays for a retry.
    _, session = login(hostile)
    kept = session.token["refresh_token"]
    hostile.token_status, hostile.token_body = 400, {"error": "invalid_request"}
    with pytest.raises(TokenEndpointError):
        session.refresh()
    assert session.token["refresh_token"] == kept


def test_provider_errors_are_make_errors():
    assert issubclass(ProviderResponseError, MakeAuthError)
    assert issubclass(TokenEndpointError, ProviderResponseError)
    assert issubclass(IDTokenError, ProviderResponseError)
    assert issubclass(ProviderResponseError, MakeError)


@pytest.mark.parametrize("cut", ["trickle", "flood"])
def test_refresh_answer_cut_off_after_success_ends_the_login(hostile, monkeypatch, cut):
    # HTTP 200 arrived, then the body never completed (deadline) or was too large: the
    # provider may have rotated the refresh token, so the old one is never sent again.
    from fixtures_hostile import flood, trickle

    from make_notebook_auth import _http

    _, session = login(hostile)
    monkeypatch.setattr(_http, "AUTH_DEADLINE", 2.0)
    action = trickle(0.3) if cut == "trickle" else flood()
    hostile.raw = lambda m, p, f: action if p == "/oauth/v2/token" else None
    with pytest.raises(LoginExpiredError, match="may be spent"):
        session.refresh()
    hostile.raw = None
    _expire_now(session)
    with pytest.raises(LoginExpiredError):
        session.access_token()
    assert len(hostile.refresh_calls()) == 1


def test_refresh_that_never_got_an_answer_can_be_tried_again(hostile, monkeypatch):
    from make_notebook_auth import MakeNetworkError, _http

    _, session = login(hostile)
    monkeypatch.setattr(_http, "AUTH_DEADLINE", 2.0)

    def silent(handler):  # not even a status line: nothing was answered
        time.sleep(4)

    hostile.raw = lambda m, p, f: silent if p == "/oauth/v2/token" else None
    with pytest.raises(MakeNetworkError):
        session.refresh()
    hostile.raw = None
    session.refresh()
    assert len(hostile.refresh_calls()) == 2
