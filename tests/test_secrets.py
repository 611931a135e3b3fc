"""No token, code, verifier or client secret in a log record, a repr or an error message."""

from __future__ import annotations

import logging
import socket
import time
import traceback
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_oauthlib
from fixtures_api import DROP

from make_notebook_auth import (
    AuthorizationResponseError,
    IDTokenError,
    MakeAuth,
    MakeError,
    MakeNetworkError,
    TokenEndpointError,
)
from make_notebook_auth.secret import Secret


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


# --- what a traceback shows: chains and the locals of every frame ---------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception chained to it, suppressed or not (``raise ... from None``
    hides ``__context__`` from the default display, but it stays reachable: error reporters
    read it)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def rendered(exc: BaseException) -> str:
    """The error as shown with locals: Python's ``capture_locals`` and IPython's
    ``%xmode Verbose``, for it and every exception of its chain. The test's own frame (the
    first; it holds the secrets it checks for) is left out."""
    from IPython.core.ultratb import VerboseTB

    assert exc.__traceback__ is not None
    exc = exc.with_traceback(exc.__traceback__.tb_next)
    parts = []
    for one in _chain(exc):
        parts.append("".join(traceback.TracebackException.from_exception(
            one, capture_locals=True).format()))
        parts.append(VerboseTB(color_scheme="NoColor", include_vars=True).text(
            type(one), one, one.__traceback__))
        parts.append(repr(one) + repr(vars(one)))
    return "\n".join(parts)


def assert_hidden(exc: BaseException, secrets: list[str]) -> None:
    text = rendered(exc)
    assert "Traceback" in text and type(exc).__name__ in text  # rendered, with frames
    for value in secrets:
        assert value
        at = text.find(value)
        assert at < 0, "a secret is shown here:\n" + text[max(0, at - 300):at].replace(value, "<S>")


def _code(reply: str) -> str:
    return parse_qs(urlsplit(reply).query)["code"][0]


def test_failed_code_exchange_shows_no_secret_in_tracebacks(provider):
    secret = provider.confidential_client_secret
    auth = MakeAuth(provider.confidential_client_id, secret, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri)
    request = auth.start()
    reply = provider.authorize(request.url)
    wrong = "w" * 20 + request._code_verifier[20:]  # a wrong verifier: invalid_grant
    object.__setattr__(request, "_code_verifier", Secret(wrong))
    with pytest.raises(TokenEndpointError) as info:
        auth.finish(reply)
    assert_hidden(info.value, [secret, _code(reply), wrong, reply])


def test_failed_refresh_shows_no_secret_in_tracebacks(provider):
    secret = provider.confidential_client_secret
    auth = MakeAuth(provider.confidential_client_id, secret, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri)
    session = auth.finish(provider.authorize(auth.start().url))
    tokens = [session.token["access_token"], session.token["refresh_token"]]
    session.token["refresh_token"] = Secret(tokens[1][:-4] + "abcd")  # refused: invalid_grant
    with pytest.raises(MakeError) as info:
        session.refresh()
    assert_hidden(info.value, [secret, *tokens, tokens[1][:-4] + "abcd"])


def test_hostile_id_token_shows_no_secret_in_tracebacks(hostile):
    secret = "s3cr3t-value-xyz"
    auth = MakeAuth(hostile.client_id, secret, issuer=hostile.issuer,
                    api_url=hostile.issuer + "/api/v2")
    request = auth.start()
    reply = hostile.authorize(request.url)
    sent: dict[str, str] = {}
    plain = hostile._token

    def capture(form):
        status, body = plain(form)
        sent.update(body)
        return status, body

    hostile._token = capture
    hostile.id_token_for = lambda claims: hostile.signer.sign(
        {**claims, "exp": float("inf")}, alg="raw")
    with pytest.raises(IDTokenError) as info:
        auth.finish(reply)
    assert_hidden(info.value, [secret, _code(reply), request._code_verifier,
                               sent["access_token"], sent["id_token"], sent["refresh_token"]])


def test_network_failure_mid_exchange_shows_no_secret_in_tracebacks(hostile):
    secret = "s3cr3t-value-xyz"
    auth = MakeAuth(hostile.client_id, secret, issuer=hostile.issuer,
                    api_url=hostile.issuer + "/api/v2")
    request = auth.start()
    reply = hostile.authorize(request.url)

    def hang_up(handler):
        handler.connection.shutdown(socket.SHUT_RDWR)

    hostile.raw = lambda m, p, f: hang_up if p == "/oauth/v2/token" else None
    with pytest.raises(MakeNetworkError) as info:
        auth.finish(reply)
    assert_hidden(info.value, [secret, _code(reply), request._code_verifier, reply])


def test_bad_paste_shows_no_code_in_tracebacks(hostile):
    auth = MakeAuth(hostile.client_id, issuer=hostile.issuer, api_url=hostile.issuer + "/api/v2")
    reply = hostile.authorize(auth.start().url)
    with pytest.raises(AuthorizationResponseError) as info:
        auth.finish(reply + "&code=second")
    assert_hidden(info.value, [_code(reply)])


def test_api_network_failure_shows_no_bearer_in_tracebacks(scripted_api, token_session):
    server = scripted_api(lambda req: DROP)
    make = token_session(server.api_url)
    for call in (lambda: make.post("things", json={}), lambda: make.json("things")):
        with pytest.raises(MakeNetworkError) as info:
            call()
        assert isinstance(info.value, requests.ConnectionError)  # as plain requests raises
        assert_hidden(info.value, ["made-up-token"])


def test_secret_strings_send_as_themselves_but_never_show():
    value = Secret("abc-123")
    assert repr(value) == "'***'" and repr({"code": value}) == "{'code': '***'}"
    assert value == "abc-123" and f"{value}" == "abc-123"
    prepared = requests.Request("POST", "http://127.0.0.1:9/", data={"code": value},
                                headers={"Authorization": Secret("Bearer t0k")}).prepare()
    assert prepared.body == "code=abc-123"
    assert "t0k" not in repr(prepared.headers)
