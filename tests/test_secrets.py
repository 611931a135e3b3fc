"""No token, code, verifier or client secret in a log record, a repr or an error message."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_oauthlib

from make_notebook_auth import MakeAuth, MakeError, TokenEndpointError


def _secrets_of(session, request, reply, secret):
    code = parse_qs(urlsplit(reply).query)["code"][0]
    found = [secret, code, request._code_verifier, request._nonce]
    found += [session.token[k] for k in ("access_token", "refresh_token", "id_token")
              if session.token.get(k)]
    return [s for s in found if s]


def test_full_lifecycle_leaks_nothing(provider, debug_log, capsys):
    secret = provider.short_confidential_client_secret
    auth = MakeAuth(provider.short_confidential_client_id, secret, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri)
    request = auth.start()
    logging.disable(logging.DEBUG)  # the test's own browser stand-in logs the link it follows
    try:
        reply = provider.authorize(request.url)
    finally:
        logging.disable(logging.NOTSET)
    session = auth.finish(reply)
    before_refresh = _secrets_of(session, request, reply, secret)
    assert session.get("users/me").status_code == 200
    session.userinfo()
    time.sleep(provider.short_ttl + 0.5)
    assert session.get("users/me").status_code == 200  # refreshed
    after_refresh = _secrets_of(session, request, reply, secret)
    shown = [repr(session), str(session), repr(auth), repr(request), repr(session.token),
             str(session.token), repr(auth.config), repr(session.config)]
    session.logout()
    shown.append(repr(session))
    out = capsys.readouterr()
    everything = "\n".join(shown + [out.out, out.err, debug_log.text]
                           + [r.getMessage() for r in debug_log.records])
    for value in set(before_refresh + after_refresh):
        assert value not in everything
    assert any(r.name.startswith("urllib3") for r in debug_log.records)  # logging was on


def test_requests_oauthlib_debug_records_are_dropped(debug_log):
    logger = logging.getLogger(requests_oauthlib.oauth2_session.__name__)
    logger.debug("Token: %s", "secret-token-value")
    assert "secret-token-value" not in debug_log.text
    logger.warning("a warning still passes")
    assert "a warning still passes" in debug_log.text


def test_error_messages_hold_no_secret(provider):
    secret = "wrong-secret-0123456789"
    auth = MakeAuth(provider.confidential_client_id, secret, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri)
    request = auth.start()
    reply = provider.authorize(request.url)
    code = parse_qs(urlsplit(reply).query)["code"][0]
    with pytest.raises(TokenEndpointError) as info:
        auth.finish(reply)
    messages = [str(info.value), repr(info.value), repr(info.value.args)]
    for bad in (reply + "&code=x", "garbage " + code):
        with pytest.raises(MakeError) as other:
            auth.finish(bad)
        messages.append(str(other.value))
    text = "\n".join(messages)
    for value in (secret, code, request._code_verifier):
        assert value not in text


def test_secrets_echoed_by_the_token_endpoint_are_masked(hostile):
    secret = "s3cr3t-value-xyz"
    auth = MakeAuth(hostile.client_id, secret, issuer=hostile.issuer,
                    api_url=hostile.issuer + "/api/v2")
    request = auth.start()
    reply = hostile.authorize(request.url)
    code = parse_qs(urlsplit(reply).query)["code"][0]
    hostile.token_status = 400
    hostile.token_body = {
        "error": "invalid_grant",
        "error_description": f"code {code} (verifier {request._code_verifier}, secret {secret})",
    }
    with pytest.raises(TokenEndpointError) as info:
        auth.finish(reply)
    text = str(info.value) + repr(info.value.error_description)
    assert "invalid_grant" in text and "***" in text
    for value in (secret, code, request._code_verifier):
        assert value not in text
    hostile.token_status, hostile.token_body = 200, None
    session = auth.finish(hostile.authorize(request.url))
    refresh_token = session.token["refresh_token"]
    hostile.token_status = 400
    hostile.token_body = {"error": "invalid_request",
                          "error_description": f"refresh token {refresh_token} is malformed"}
    with pytest.raises(TokenEndpointError) as info:
        session.refresh()
    assert refresh_token not in str(info.value)
