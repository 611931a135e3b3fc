"""Transport: loopback never via a proxy, https via the environment's proxy as requests does."""

from __future__ import annotations

import socket
import threading

import pytest

from make_notebook_auth import MakeAuth, MakeNetworkError
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
