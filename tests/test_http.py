"""Transport: loopback never via a proxy, https via the environment's proxy as requests does."""

from __future__ import annotations

import socket
import threading
import time
from http.server import ThreadingHTTPServer

import pytest
from fixtures_hostile import HostileProvider, _handler, answer, flood, trickle

from make_notebook_auth import (
    MakeAuth,
    MakeError,
    MakeNetworkError,
    ProviderResponseError,
    RevocationWarning,
    oidc,
)
from make_notebook_auth import _http as transport
from make_notebook_auth._http import call

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class ProxyStandIn:
    """A TCP server on a free loopback port that records the first line of every connection
    and answers 502: whatever reaches it went through the proxy."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.seen.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def env_proxy(monkeypatch):
    proxy = ProxyStandIn()
    for name in PROXY_VARS:
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield proxy
    proxy.close()


def test_loopback_api_calls_bypass_the_environment_proxy(env_proxy, scripted_api,
                                                          token_session):
    server = scripted_api(lambda req: (200, {}, {"ok": True}))
    make = token_session(server.api_url)
    assert make.json("users/me") == {"ok": True}
    assert make.get("users/me").json() == {"ok": True}
    assert make.get(server.base + "/elsewhere").status_code == 200  # no token, still direct
    assert env_proxy.seen == []
    assert server.calls() == 3


def test_loopback_login_bypasses_the_environment_proxy(env_proxy, hostile):
    auth = MakeAuth(hostile.client_id, issuer=hostile.issuer,
                    redirect_uri=hostile.redirect_uri, api_url=hostile.issuer + "/api/v2")
    session = auth.finish(hostile.authorize(auth.start().url))
    assert session.logged_in
    assert session.userinfo()["sub"] == "user-1"
    assert session.logout() is True
    assert env_proxy.seen == []
    assert hostile.calls("/oauth/v2/token") == 1 and hostile.calls("/oauth/v2/revoke") == 2


def test_https_off_loopback_still_uses_the_environment_proxy(env_proxy, token_session):
    with pytest.raises(MakeNetworkError, match="discovery"):
        call("GET", "https://www.make.example/.well-known/openid-configuration", "discovery")
    make = token_session("http://127.0.0.1:9/api/v2/")
    with pytest.raises(MakeNetworkError):
        make.get("https://hook.eu1.make.example/abc")
    # (the API session retries a failed connection: several CONNECTs for the webhook host)
    assert {line.rsplit(" ", 1)[0] for line in env_proxy.seen} == {
        "CONNECT www.make.example:443", "CONNECT hook.eu1.make.example:443"}


# --- calls to the authorization server ------------------------------------------------------


def _auth(hostile: HostileProvider) -> MakeAuth:
    return MakeAuth(hostile.client_id, "s3cr3t-value-xyz", issuer=hostile.issuer,
                    api_url=hostile.issuer + "/api/v2")


def _only(path: str, action):
    return lambda method, p, form: action if p == path else None


@pytest.mark.parametrize("path", [
    "/oauth/v2/token", "/oauth/v2/oidc/jwks", "/.well-known/openid-configuration"])
def test_redirects_from_the_authorization_server_are_not_followed(hostile, scripted_api, path):
    target = scripted_api(lambda req: (200, {}, {"stolen": True}))
    hostile.raw = _only(path, answer(307, headers={"Location": target.base + "/steal"}))
    auth = _auth(hostile)
    with pytest.raises(ProviderResponseError, match="redirect") as info:
        auth.finish(hostile.authorize(auth.start().url))
    endpoint = {"/oauth/v2/token": "token", "/oauth/v2/oidc/jwks": "JWKS",
                "/.well-known/openid-configuration": "discovery"}[path]
    assert info.value.endpoint == endpoint
    assert f"Make's {endpoint} endpoint" in str(info.value)
    assert target.calls() == 0  # no code, verifier, secret or token went there
    hostile.raw = None
    if path != "/.well-known/openid-configuration":  # the pending login is still usable
        assert auth.finish(hostile.authorize(auth.start().url)).logged_in


def test_redirects_from_userinfo_and_revocation_are_not_followed(hostile, scripted_api):
    target = scripted_api(lambda req: (200, {}, {"sub": "user-1"}))
    auth = _auth(hostile)
    session = auth.finish(hostile.authorize(auth.start().url))
    hostile.raw = lambda m, p, f: answer(302, headers={"Location": target.base + "/x"}) \
        if p in ("/oauth/v2/oidc/userinfo", "/oauth/v2/revoke") else None
    with pytest.raises(ProviderResponseError, match="userinfo"):
        session.userinfo()
    with pytest.warns(RevocationWarning, match="redirect"):
        assert session.logout() is False
    assert target.calls() == 0


def test_trickling_key_set_ends_within_the_deadline(hostile, monkeypatch):
    monkeypatch.setattr(transport, "AUTH_DEADLINE", 2.0)
    sent: list[int] = []
    hostile.raw = _only("/oauth/v2/oidc/jwks", trickle(0.3, sent=sent))
    auth = _auth(hostile)
    with pytest.raises(MakeNetworkError, match="no complete answer within 2 s"):
        auth.finish(hostile.authorize(auth.start().url))
    assert 0 < len(sent) < 60  # it was cut off (a trickle runs for 600 bytes otherwise)


def test_trickling_headers_end_within_the_deadline(hostile, monkeypatch):
    monkeypatch.setattr(transport, "AUTH_DEADLINE", 2.0)
    hostile.raw = _only("/oauth/v2/token", trickle(0.3, in_headers=True))
    auth = _auth(hostile)
    with pytest.raises(MakeNetworkError, match="token endpoint.*no complete answer"):
        auth.finish(hostile.authorize(auth.start().url))
    assert auth.pending is not None  # the login can still be finished


@pytest.mark.parametrize("declared", [300_000_000, None])
def test_oversized_key_set_is_refused_without_reading_it(hostile, declared):
    sent: list[int] = []
    hostile.raw = _only("/oauth/v2/oidc/jwks", flood(declared=declared, sent=sent))
    auth = _auth(hostile)
    with pytest.raises(ProviderResponseError, match="JWKS.*larger than 1024 kB"):
        auth.finish(hostile.authorize(auth.start().url))
    time.sleep(0.5)
    assert sum(sent) < 20_000_000  # the client hung up (the server would send ~330 MB)


def test_a_slow_issuer_does_not_block_a_login_to_another(monkeypatch):
    """Discovery and key sets lock per issuer / key set: two real servers, one hangs."""
    release = threading.Event()
    arrived = threading.Event()

    def hang(handler):
        arrived.set()
        release.wait(20)

    servers = []
    providers = []
    for _ in range(2):
        provider = HostileProvider()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
        server.daemon_threads = True
        provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        providers.append(provider)
    slow, fast = providers
    try:
        for what in ("/.well-known/openid-configuration", "/oauth/v2/oidc/jwks"):
            oidc.forget_discovery()
            slow.raw = _only(what, hang)
            arrived.clear()
            outcome: list[object] = []

            def slow_login():
                try:
                    auth = _auth(slow)
                    outcome.append(auth.finish(slow.authorize(auth.start().url)))
                except MakeError as exc:
                    outcome.append(exc)

            thread = threading.Thread(target=slow_login, daemon=True)
            thread.start()
            assert arrived.wait(10)
            auth = _auth(fast)
            session = auth.finish(fast.authorize(auth.start().url))  # while slow hangs
            assert session.logged_in
            assert thread.is_alive() and outcome == []  # the slow one is still in flight
            release.set()
            thread.join(30)
            release.clear()
            slow.raw = None
    finally:
        release.set()
        for server in servers:
            server.shutdown()
            server.server_close()


def test_trickling_api_answer_ends_within_the_api_deadline(token_session, monkeypatch):
    """json()/paginate() calls have a total deadline too (plain get() keeps requests' own)."""
    from make_notebook_auth import listing

    monkeypatch.setattr(listing, "API_DEADLINE", 2.0)
    provider = HostileProvider()
    provider.raw = lambda m, p, f: trickle(0.3)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        make = token_session(f"http://127.0.0.1:{server.server_address[1]}/api/v2/")
        with pytest.raises(MakeNetworkError, match="API endpoint.*no complete answer within 2 s"):
            make.json("users/me")
        with pytest.raises(MakeNetworkError, match="no complete answer"):
            list(make.paginate("scenarios"))
    finally:
        server.shutdown()
        server.server_close()


def test_loopback_skips_the_proxy_lookup_but_keeps_the_ca_bundle(env_proxy, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/tmp/corporate-ca.pem")
    sess = transport.Session()
    got = sess.merge_environment_settings("https://127.0.0.1:8443/api/v2/x", {}, None, None,
                                          None)
    assert got["proxies"] == {} and got["verify"] == "/tmp/corporate-ca.pem"
    assert sess.merge_environment_settings("https://127.0.0.1:8443/", {}, None, False,
                                           None)["verify"] is False
    away = sess.merge_environment_settings("https://www.make.example/", {}, None, None, None)
    assert away["proxies"]["https"] == env_proxy.url
    assert away["verify"] == "/tmp/corporate-ca.pem"


def _wait_for(flag, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while not flag() and time.monotonic() < end:
        time.sleep(0.02)
    return flag()


def test_deadlines_share_a_watcher_and_each_ends_on_its_own_time():
    with transport.Deadline(60) as long:
        with transport.Deadline(0.2) as short:  # ends before the one already watched
            assert _wait_for(lambda: short.expired)
        assert not long.expired
    with transport.Deadline(0.3) as pushed:
        pushed.extend(1.5)
        time.sleep(0.6)
        assert not pushed.expired  # its first end has passed: the extension holds
        assert _wait_for(lambda: pushed.expired)
    with transport.Deadline(0.2) as done:
        pass
    time.sleep(0.4)
    assert not done.expired  # a finished call is never cut afterwards
