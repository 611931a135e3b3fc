"""Settings: arguments over environment, scopes, zones, redirect URI, transport rule."""

from __future__ import annotations

import pytest

from make_notebook_auth import InsecureTransportError, MakeConfigError, MissingClientIdError
from make_notebook_auth.config import (
    DEFAULT_REDIRECT_URI,
    DEFAULT_SCOPES,
    MakeConfig,
    api_base_for_zone,
    is_loopback_host,
    parse_scopes,
    require_secure,
)


def test_defaults():
    cfg = MakeConfig.resolve("cid", environ={})
    assert cfg.issuer == "https://www.make.com"
    assert cfg.redirect_uri == DEFAULT_REDIRECT_URI == "http://127.0.0.1:8765/callback"
    assert cfg.scopes == DEFAULT_SCOPES and "openid" in cfg.scopes
    assert not cfg.confidential and cfg.api_url is None


def test_environment_and_arguments():
    env = {"MAKE_CLIENT_ID": "env-id", "MAKE_CLIENT_SECRET": "env-secret", "MAKE_ZONE": "us2",
           "MAKE_SCOPES": "openid, scenarios:read  teams:read", "MAKE_ISSUER": "https://x.test/"}
    cfg = MakeConfig.resolve(environ=env)
    assert cfg.client_id == "env-id" and cfg.confidential
    assert cfg.scopes == ("openid", "scenarios:read", "teams:read")
    assert cfg.api_url == "https://us2.make.com/api/v2/"
    assert cfg.issuer == "https://x.test"
    cfg = MakeConfig.resolve("arg-id", scopes=["openid", "user:read"], zone="eu1", environ=env)
    assert cfg.client_id == "arg-id" and cfg.scopes == ("openid", "user:read")
    assert cfg.api_url == "https://eu1.make.com/api/v2/"
    assert "env-secret" not in repr(cfg)


def test_missing_client_id():
    with pytest.raises(MissingClientIdError) as info:
        MakeConfig.resolve(environ={"MAKE_CLIENT_ID": "  "})
    assert "MAKE_CLIENT_ID" in str(info.value)
    assert "127.0.0.1:8765/callback" in str(info.value)


@pytest.mark.parametrize(("zone", "base"), [
    ("eu1", "https://eu1.make.com/api/v2/"),
    ("EU2.make.com", "https://eu2.make.com/api/v2/"),
    ("us1.make.celonis.com", "https://us1.make.celonis.com/api/v2/"),
    ("https://us1.make.com", "https://us1.make.com/api/v2/"),
    ("https://us1.make.com/api/v2/", "https://us1.make.com/api/v2/"),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000/api/v2/"),
    ("US2", "https://us2.make.com/api/v2/"),
    # A dotted host or a URL is a custom zone, taken as given.
    ("eu3.make.com", "https://eu3.make.com/api/v2/"),
    ("make.example.com", "https://make.example.com/api/v2/"),
])
def test_zones(zone, base):
    assert api_base_for_zone(zone) == base


@pytest.mark.parametrize("zone", ["", "eu1 make", "a/b"])
def test_bad_zone_lists_known_zones(zone):
    with pytest.raises(MakeConfigError, match="eu1.make.celonis.com"):
        api_base_for_zone(zone)


@pytest.mark.parametrize("zone", ["nonsense", "eu3", "us", "make"])
def test_unknown_short_zone_is_an_error_listing_the_known_ones(zone):
    with pytest.raises(MakeConfigError) as info:
        MakeConfig.resolve("cid", zone=zone, environ={})
    message = str(info.value)
    assert f"{zone!r} is not a Make zone" in message
    for known in ("eu1", "eu2", "us1", "us2", "eu1.make.celonis.com"):
        assert known in message
    with pytest.raises(MakeConfigError):
        MakeConfig.resolve("cid", environ={"MAKE_ZONE": zone})


def test_api_url_with_or_without_slash():
    a = MakeConfig.resolve("c", api_url="https://eu1.make.com/api/v2", environ={})
    b = MakeConfig.resolve("c", api_url="https://eu1.make.com/api/v2/", environ={})
    assert a.api_url == b.api_url == "https://eu1.make.com/api/v2/"


def test_scope_parsing():
    assert parse_scopes("a b,c ,, a") == ["a", "b", "c"]
    assert parse_scopes(["x", " y ", "", "x"]) == ["x", "y"]
    assert parse_scopes(None) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost",
                                  "LOCALHOST", "app.localhost"])
def test_loopback_hosts(host):
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "make.com", "localhost.evil.com", "", None,
                                  "127.0.0.1.nip.io"])
def test_not_loopback(host):
    assert not is_loopback_host(host)


def test_require_secure():
    assert require_secure("https://www.make.com/x", "it")
    assert require_secure("http://127.0.0.1:1/x", "it")
    with pytest.raises(InsecureTransportError):
        require_secure("http://www.make.com/x?token=abc", "it")
    with pytest.raises(MakeConfigError):
        require_secure("ftp://www.make.com/", "it")
    with pytest.raises(MakeConfigError):
        require_secure("www.make.com", "it")
    try:
        require_secure("http://www.make.com/x?token=abc", "it")
    except InsecureTransportError as exc:
        assert "token=abc" not in str(exc)
