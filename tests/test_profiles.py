"""Several named logins side by side, and Make zones."""

from __future__ import annotations

import pytest

from make_notebook_auth import (
    KNOWN_ZONES,
    InsecureTransportError,
    MakeAuth,
    MakeConfigError,
    NotLoggedInError,
    get_session,
    logout,
    userinfo_frame,
)


def test_two_accounts_side_by_side(api_login):
    work = api_login("work", user="alice")
    home = api_login("home", user="bob")
    assert get_session("work") is work and get_session("home") is home
    assert work.json("users/me")["authUser"]["email"] == "alice@example.test"
    assert home.json("users/me")["authUser"]["email"] == "bob@example.test"
    assert [o["id"] for o in home.paginate("organizations")] == [1, 2]
    frame = userinfo_frame()
    assert list(frame.index) == ["work", "home"] and frame.index.name == "profile"
    assert list(frame["sub"]) == ["alice", "bob"]
    assert list(userinfo_frame("home")["sub"]) == ["bob"]
    with pytest.raises(NotLoggedInError):
        get_session()  # the default profile was never used
    assert logout("work") is True
    with pytest.raises(NotLoggedInError, match="--profile work"):
        get_session("work")
    assert get_session("home").json("users/me")["authUser"]["id"] == 1002
    assert list(userinfo_frame().index) == ["home"]


def test_logging_in_again_replaces_only_that_profile(api_login):
    first = api_login("work", user="alice")
    other = api_login("home", user="bob")
    second = api_login("work", user="bob")
    assert get_session("work") is second and second is not first
    assert get_session("home") is other
    assert second.json("users/me")["authUser"]["id"] == 1002


def test_two_zones_side_by_side(api_login, make_api):
    eu = api_login("eu", zone="eu1", api_url=None)
    us = api_login("us", zone="us1.make.celonis.com", api_url=None)
    local = api_login("local")
    assert (eu.zone, eu.api_url) == ("eu1.make.com", "https://eu1.make.com/api/v2/")
    assert (us.zone, us.api_url) == ("us1.make.celonis.com",
                                     "https://us1.make.celonis.com/api/v2/")
    assert local.api_url == make_api.api_url and local.zone == "127.0.0.1"
    assert "api_url='https://eu1.make.com/api/v2/'" in repr(eu)
    assert {get_session(p).zone for p in ("eu", "us")} == {"eu1.make.com",
                                                           "us1.make.celonis.com"}


@pytest.mark.parametrize(
    ("zone", "base"),
    [
        ("eu1", "https://eu1.make.com/api/v2/"),
        ("EU2", "https://eu2.make.com/api/v2/"),
        ("us1.make.com", "https://us1.make.com/api/v2/"),
        ("us2.make.com/", "https://us2.make.com/api/v2/"),
        ("eu1.make.celonis.com", "https://eu1.make.celonis.com/api/v2/"),
        ("https://us1.make.celonis.com", "https://us1.make.celonis.com/api/v2/"),
        ("https://eu1.make.com/api/v2", "https://eu1.make.com/api/v2/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/api/v2/"),
    ],
)
def test_zone_forms(zone, base):
    auth = MakeAuth("cid", zone=zone)
    assert auth.config.api_url == base
    assert auth.session.api_url == base
    assert auth.session.zone == base.split("/")[2].split(":")[0]


def test_zone_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAKE_ZONE", "us2")
    assert MakeAuth("cid").session.api_url == "https://us2.make.com/api/v2/"
    monkeypatch.setenv("MAKE_API_URL", "https://eu1.make.com/api/v2")
    assert MakeAuth("cid").session.api_url == "https://eu1.make.com/api/v2/"  # wins
    assert MakeAuth("cid", zone="eu2").session.api_url == "https://eu1.make.com/api/v2/"


def test_missing_zone_error_lists_the_known_zones():
    session = MakeAuth("cid").session
    assert session.zone is None and session.api_url is None
    with pytest.raises(MakeConfigError) as info:
        session.resolve_url("users/me")
    for zone in KNOWN_ZONES:
        assert zone in str(info.value)
    assert "MAKE_ZONE" in str(info.value) and "'eu1'" in str(info.value)
    assert set(KNOWN_ZONES) == {"eu1.make.com", "eu2.make.com", "us1.make.com",
                                "us2.make.com", "eu1.make.celonis.com",
                                "us1.make.celonis.com"}


@pytest.mark.parametrize("bad", [
    "eu1 make",
    "eu1/api",
    "https://",
    "https://eu1.make.com:port",
    "eu1..make.com",
    "-eu1",
])
def test_bad_zones_are_explained(bad):
    with pytest.raises(MakeConfigError) as info:
        MakeAuth("cid", zone=bad)
    assert "eu1.make.com" in str(info.value)


def test_plain_http_zone_is_refused():
    with pytest.raises(InsecureTransportError):
        MakeAuth("cid", zone="http://eu1.make.com")
