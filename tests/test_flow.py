"""The authorization request and the parsing of a pasted reply."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from make_notebook_auth import AuthorizationResponseError
from make_notebook_auth.flow import AuthorizationRequest, parse_reply


def make_request(scopes=("openid", "user:read")):
    return AuthorizationRequest.create("https://www.make.com/oauth/v2/authorize", "cid",
                                       "http://127.0.0.1:8765/callback", scopes)


def test_request_has_pkce_s256_state_and_nonce():
    req = make_request()
    q = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
    digest = hashlib.sha256(req._code_verifier.encode()).digest()
    assert q["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(req._code_verifier) <= 128
    assert q["state"] == req.state and len(req.state) >= 32
    assert q["nonce"] == req._nonce
    assert q["scope"] == "openid user:read"
    assert req._code_verifier not in repr(req) and req._nonce not in repr(req)
    assert make_request().state != req.state


def test_no_nonce_without_openid():
    req = make_request(("user:read",))
    assert "nonce" not in parse_qs(urlsplit(req.url).query)
    assert req._nonce is None


@pytest.mark.parametrize(("text", "code", "state"), [
    ("http://127.0.0.1:8765/callback?code=abc&state=s1&iss=x", "abc", "s1"),
    ("code=abc&state=s1", "abc", "s1"),
    ("?code=abc&state=s1", "abc", "s1"),
    ("  'http://127.0.0.1:8765/callback?code=abc&state=s1'\n", "abc", "s1"),
    ("http://127.0.0.1:8765/callback?code=abc\n&state=s1", "abc", "s1"),
    ("https://app.test/cb#code=abc&state=s1", "abc", "s1"),
    ("abc.DEF-123_~xyz0123456", "abc.DEF-123_~xyz0123456", None),
    ("\u201cabcdefghij0123456789\u201d", "abcdefghij0123456789", None),
])
def test_reply_forms(text, code, state):
    reply = parse_reply(text)
    assert reply.code == code and reply.state == state
    assert code not in repr(reply)


def test_error_reply():
    reply = parse_reply("http://127.0.0.1:8765/callback?error=access_denied"
                        "&error_description=User+said+no&state=s")
    assert reply.error == "access_denied" and reply.error_description == "User said no"


def test_empty_state_is_kept_for_checking():
    assert parse_reply("?code=a&state=").state == ""


@pytest.mark.parametrize("text", ["", "  \n", "not a code!", "https://x.test/?foo=1",
                                  "?state=only", "code=a&code=b"])
def test_bad_replies(text):
    with pytest.raises(AuthorizationResponseError):
        parse_reply(text)
