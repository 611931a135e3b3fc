"""Bounded retries: 429 with Retry-After, 5xx, dropped connections; never a silent re-POST."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from fixtures_api import DROP

from make_notebook_auth import MakeAPIError, MakeNetworkError
from make_notebook_auth.listing import STATUS_RETRIES


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def test_429_waits_as_asked_then_succeeds(api_login, make_api):
    make = api_login()
    make_api.faults.inject(429, count=2, retry_after=1)
    start = time.monotonic()
    assert make.json("users/me")["authUser"]["id"] == 1001
    assert make_api.calls("users/me") == 3
    assert all(g >= 0.95 for g in gaps(make_api.times))
    assert time.monotonic() - start < 5


def test_permanent_429_gives_up_with_make_api_error(api_login, make_api):
    make = api_login()
    make_api.faults.inject(429, count=1000, retry_after=1)
    start = time.monotonic()
    with pytest.raises(MakeAPIError) as info:
        make.json("users/me")
    elapsed = time.monotonic() - start
    err = info.value
    assert err.status == 429 and err.code == "SC429"
    assert elapsed < 15
    assert make_api.calls("users/me") >= 2 and err.tries == make_api.calls("users/me")
    assert all(g >= 0.95 for g in gaps(make_api.times))
    assert err.retry_after == 1
    assert "rate limit" in str(err) and f"after {err.tries} tries" in str(err)


def test_paginate_and_frame_give_up_on_429_too(api_login, make_api):
    make = api_login()
    make_api.faults.inject(429, count=1000, retry_after=1)
    with pytest.raises(MakeAPIError) as info:
        make.frame("scenarios", {"teamId": 1}, progress=False)
    assert info.value.status == 429


def test_503_forever_gives_up_within_bounds(api_login, make_api):
    make = api_login()
    make_api.faults.inject(503, count=1000, retry_after=None)
    start = time.monotonic()
    with pytest.raises(MakeAPIError) as info:
        make.json("users/me")
    elapsed = time.monotonic() - start
    assert info.value.status == 503
    assert elapsed < 25
    assert make_api.calls("users/me") == STATUS_RETRIES + 1
    waits = gaps(make_api.times)
    assert waits[1] >= 0.9 and waits[-1] >= 4  # exponential backoff
    assert "gave up after 6 tries" in str(info.value)


def test_plain_get_retries_but_returns_the_final_response(api_login, make_api):
    make = api_login()
    make_api.faults.inject(502, count=1, retry_after=None)
    assert make.get("users/me").status_code == 200
    assert make_api.calls("users/me") == 2
    make_api.reset()
    make_api.faults.inject(429, count=1000, retry_after=1)
    resp = make.get("users/me")  # no exception: requests' behaviour
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert 2 <= make_api.calls("users/me") <= STATUS_RETRIES + 1


def test_retry_after_beyond_the_budget_gives_up_at_once(api_login, make_api):
    make = api_login()
    make_api.faults.inject(429, count=1000, retry_after=120)
    start = time.monotonic()
    with pytest.raises(MakeAPIError) as info:
        make.json("users/me")
    assert time.monotonic() - start < 3
    assert make_api.calls("users/me") == 1
    assert info.value.retry_after == 120 and "Wait 120 s" in str(info.value)


def test_listing_survives_a_5xx_mid_way(api_login, make_api):
    make = api_login()
    pages = make.pages("scenarios", {"teamId": 2})
    first = next(pages)
    make_api.faults.inject(500, count=1, retry_after=None)
    rest = [item for page in pages for item in page.items]
    assert len(first.items) + len(rest) == 180
    assert make_api.calls("scenarios") == 3


def test_post_answered_429_is_not_retried(api_login, make_api):
    make = api_login()
    make_api.faults.inject(429, count=3, retry_after=1)
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios", method="POST", json={"name": "x"})
    assert make_api.calls() == 1
    err = info.value
    assert err.status == 429
    assert "not processed" in str(err) and "not retried automatically" in str(err)
    resp = make.post("scenarios", json={"name": "x"})  # plain post: the 429 as is
    assert resp.status_code == 429 and make_api.calls() == 2


def test_post_answered_503_is_not_retried(api_login, make_api):
    make = api_login()
    make_api.faults.inject(503, count=3, retry_after=None)
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios", method="POST", json={})
    assert make_api.calls() == 1
    assert "not retried automatically" in str(info.value)


def _drop_first(n):
    seen = {"n": 0}

    def reply(req):
        seen["n"] += 1
        if seen["n"] <= n:
            return DROP
        return 200, {}, {"ok": True, "method": req.method}

    return reply


def test_dropped_connection_on_get_is_retried(scripted_api, token_session):
    server = scripted_api(_drop_first(2))
    make = token_session(server.api_url)
    assert make.json("things") == {"ok": True, "method": "GET"}
    assert server.calls() == 3
    assert server.requests[-1].headers["Authorization"] == "Bearer made-up-token"


def test_dropped_connection_on_post_is_not_retried(scripted_api, token_session):
    server = scripted_api(_drop_first(1))
    make = token_session(server.api_url)
    with pytest.raises(requests.ConnectionError):
        make.post("things", json={})
    assert server.calls() == 1
    server2 = scripted_api(_drop_first(1))
    with pytest.raises(MakeNetworkError, match="API endpoint"):
        token_session(server2.api_url).json("things", method="POST", json={})
    assert server2.calls() == 1


def test_connection_dropped_forever_is_bounded(scripted_api, token_session):
    server = scripted_api(lambda req: DROP)
    make = token_session(server.api_url)
    start = time.monotonic()
    with pytest.raises(MakeNetworkError):
        make.json("things")
    assert time.monotonic() - start < 10
    assert 2 <= server.calls() <= 4


def test_refused_connection_is_a_network_error(token_session):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    make = token_session(f"http://127.0.0.1:{port}/api/v2/")
    start = time.monotonic()
    with pytest.raises(MakeNetworkError) as info:
        make.json("users/me")
    assert time.monotonic() - start < 10
    assert "made-up-token" not in str(info.value)


def test_retry_after_http_date(scripted_api, token_session):
    from email.utils import formatdate

    calls = {"n": 0}

    def reply(req):
        calls["n"] += 1
        if calls["n"] == 1:
            return 429, {"Retry-After": formatdate(time.time() + 2, usegmt=True)}, {
                "message": "Requests limit for organization exceeded, please try again later.",
                "code": "SC429"}
        return 200, {}, {"ok": True}

    server = scripted_api(reply)
    assert token_session(server.api_url).json("things") == {"ok": True}
    assert server.calls() == 2
    assert gaps([r.time for r in server.requests])[0] >= 0.9


def test_token_echoed_in_an_api_error_is_masked(scripted_api, token_session):
    def reply(req):
        token = req.headers["Authorization"].split()[1]
        return 401, {}, {"message": f"Invalid token {token}", "detail": f"{token} expired",
                         "code": "IM005", "suberrors": [{"message": f"bad {token}"}]}

    make = token_session(scripted_api(reply).api_url)
    with pytest.raises(MakeAPIError) as info:
        make.json("users/me")
    err = info.value
    text = "\n".join([str(err), repr(err.message), repr(err.detail), repr(err.suberrors)])
    assert "made-up-token" not in text
    assert err.status == 401 and err.code == "IM005" and "Invalid token ***" in str(err)
