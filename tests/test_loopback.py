"""The loopback listener: one request with the pending state, then closed; nothing logged."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import requests

from make_notebook_auth import MakeAuth
from make_notebook_auth.errors import MakeAuthError
from make_notebook_auth.loopback import (
    LISTEN_HOST,
    LoopbackListener,
    loopback_target,
    port_is_free,
)

REGISTERED_PORTS = (8765, 8766)  # loopback redirect URIs registered at both test providers


def registered_loopback_uri() -> str:
    for port in REGISTERED_PORTS:
        if port_is_free(port):
            return f"http://127.0.0.1:{port}/callback"
    pytest.skip("ports 8765 and 8766 are both busy on this machine")


def get(url: str, **kw) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.get(url, timeout=30, allow_redirects=False, **kw)


@pytest.fixture
def auth_for(provider):
    def make(redirect_uri: str) -> MakeAuth:
        return MakeAuth(provider.public_client_id, issuer=provider.issuer,
                        api_url=provider.api_url, redirect_uri=redirect_uri)
    return make


# -- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("uri, expected", [
    ("http://127.0.0.1:8765/callback", ("127.0.0.1", 8765, "/callback")),
    ("http://localhost:9000/cb/x", ("localhost", 9000, "/cb/x")),
    ("http://LOCALHOST:9000", ("localhost", 9000, "/")),
    ("https://127.0.0.1:8765/callback", None),  # we serve plain http only
    ("http://127.0.0.1/callback", None),  # no explicit port
    ("http://app.example.test:8765/callback", None),
    ("https://app.example.test/callback", None),
    ("http://[::1]:8765/callback", None),
    ("http://127.0.0.1:notaport/x", None),
])
def test_loopback_target(uri, expected):
    target = loopback_target(uri)
    if expected is None:
        assert target is None
    else:
        assert (target.host, target.port, target.path) == expected


def test_not_a_loopback_uri_is_refused():
    with pytest.raises(ValueError):
        LoopbackListener("https://app.example.test/callback", is_pending=lambda s: True,
                         complete=lambda u: None)


# -- with a real provider ------------------------------------------------------------------------

def test_completes_login_and_closes(provider, auth_for, capfd, debug_log):
    redirect_uri = registered_loopback_uri()
    auth = auth_for(redirect_uri)
    request = auth.start()
    outcomes = []
    listener = LoopbackListener(redirect_uri, is_pending=auth.is_pending, complete=auth.finish,
                                on_done=outcomes.append)
    assert listener.start()
    assert listener.listening
    assert listener._server.server_address[0] == LISTEN_HOST
    redirect = provider.authorize(request.url)
    assert redirect.startswith(redirect_uri + "?")

    response = get(redirect)
    assert response.status_code == 200
    assert "close this tab" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert auth.session.logged_in
    assert auth.session.get("users/me").status_code == 200

    assert listener.wait(5) == "completed"
    assert outcomes == ["completed"]
    assert port_is_free(listener.port)
    # The request line held the code: it must not reach stderr/stdout or any log record.
    code = redirect.split("code=")[1].split("&")[0]
    out, err = capfd.readouterr()
    assert code not in out and code not in err
    assert "GET /callback" not in err
    # (urllib3 logs the test's own GET, playing the browser; that is not the listener.)
    assert all(code not in r.getMessage() for r in debug_log.records
               if not r.name.startswith("urllib3"))


def test_stray_requests_do_not_count(provider, auth_for):
    redirect_uri = registered_loopback_uri()
    auth = auth_for(redirect_uri)
    request = auth.start()
    listener = LoopbackListener(redirect_uri, is_pending=auth.is_pending, complete=auth.finish)
    assert listener.start()
    try:
        base = redirect_uri.rsplit("/", 1)[0]
        assert get(base + "/favicon.ico").status_code == 404
        assert get(redirect_uri + "?code=abc&state=not-the-pending-state").status_code == 400
        assert get(redirect_uri + "?code=abc").status_code == 400
        assert requests.post(redirect_uri, timeout=10).status_code == 405
        assert listener.listening
        assert not auth.session.logged_in

        response = get(provider.authorize(request.url))
        assert response.status_code == 200
        assert listener.wait(5) == "completed"
    finally:
        listener.stop()


def test_denied_reply_shows_error_and_keeps_login_usable(provider, auth_for):
    redirect_uri = registered_loopback_uri()
    auth = auth_for(redirect_uri)
    request = auth.start()
    listener = LoopbackListener(redirect_uri, is_pending=auth.is_pending, complete=auth.finish)
    assert listener.start()
    response = get(provider.authorize(request.url, approve=False))
    assert response.status_code == 400
    assert "Login not completed" in response.text
    assert "declined" in response.text
    assert listener.wait(5) == "failed"
    assert isinstance(listener.error, MakeAuthError)
    assert port_is_free(listener.port)
    # The same pending login can still be finished (e.g. by pasting a new reply).
    assert auth.is_pending(request.state)
    session = auth.finish(provider.authorize(request.url))
    assert session.logged_in


def test_error_page_is_escaped():
    uri = registered_loopback_uri()

    def complete(url):
        raise MakeAuthError("<script>alert(1)</script> & more")

    listener = LoopbackListener(uri, is_pending=lambda s: s == "st", complete=complete)
    assert listener.start()
    response = get(uri + "?code=c&state=st")
    assert response.status_code == 400
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text
    listener.wait(5)


def test_unexpected_error_does_not_hang_the_browser():
    uri = registered_loopback_uri()

    def complete(url):
        raise RuntimeError("boom with secret-ish detail")

    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=complete)
    assert listener.start()
    response = get(uri + "?code=c&state=st")
    assert response.status_code == 500
    assert "RuntimeError" in response.text
    assert "secret-ish" not in response.text
    assert listener.wait(5) == "failed"


def test_complete_receives_full_redirect_url():
    uri = registered_loopback_uri()
    got = []
    listener = LoopbackListener(uri, is_pending=lambda s: s == "xyz", complete=got.append)
    assert listener.start()
    assert get(uri + "?code=c0de&state=xyz&iss=http%3A%2F%2Fissuer").status_code == 200
    listener.wait(5)
    assert got == [uri + "?code=c0de&state=xyz&iss=http%3A%2F%2Fissuer"]


def test_localhost_redirect_listens_on_127_0_0_1_only():
    port = int(registered_loopback_uri().split(":")[2].split("/")[0])
    uri = f"http://localhost:{port}/callback"
    got = []
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=got.append)
    assert listener.start()
    try:
        assert listener._server.server_address == (LISTEN_HOST, port)
        assert get(f"http://127.0.0.1:{port}/callback?code=c&state=s").status_code == 200
        assert got == [f"http://localhost:{port}/callback?code=c&state=s"]
    finally:
        listener.stop()


def test_busy_port_is_reported():
    with socket.socket() as sock:
        sock.bind((LISTEN_HOST, 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        listener = LoopbackListener(f"http://127.0.0.1:{port}/callback",
                                    is_pending=lambda s: True, complete=lambda u: None)
        assert not port_is_free(port)
        assert listener.start() is False
        assert not listener.listening


def test_timeout_closes_the_port():
    uri = registered_loopback_uri()
    outcomes = []
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=lambda u: None,
                                on_done=outcomes.append, timeout=0.5)
    assert listener.start()
    started = time.monotonic()
    assert listener.wait(10) == "timeout"
    assert time.monotonic() - started < 5
    assert outcomes == ["timeout"]
    assert port_is_free(listener.port)


def test_stop_closes_the_port():
    uri = registered_loopback_uri()
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=lambda u: None)
    assert listener.start()
    assert not port_is_free(listener.port)
    listener.stop()
    assert listener.outcome == "stopped"
    assert port_is_free(listener.port)
    listener.stop()  # idempotent


def test_slow_client_does_not_block_forever(monkeypatch):
    from make_notebook_auth import loopback

    monkeypatch.setattr(loopback._Handler, "timeout", 0.5)
    uri = registered_loopback_uri()
    got = []
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=got.append)
    assert listener.start()
    port = listener.port
    idle = socket.create_connection(("127.0.0.1", port))  # connects, never sends
    try:
        result = {}

        def fetch():
            result["r"] = get(uri + "?code=c&state=s")

        thread = threading.Thread(target=fetch)
        thread.start()
        thread.join(15)
        assert result["r"].status_code == 200
    finally:
        idle.close()
        listener.stop()


def test_no_log_records(caplog):
    caplog.set_level(logging.DEBUG)
    uri = registered_loopback_uri()
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=lambda u: None)
    assert listener.start()
    import urllib.request  # (requests' urllib3 would log the test's own GET)

    with urllib.request.urlopen(uri + "?code=SECRETCODE123&state=s", timeout=10) as resp:
        assert resp.status == 200
    listener.wait(5)
    assert "SECRETCODE123" not in caplog.text
