"""The loopback listener: one request with the pending state, then closed; nothing logged;
no local process can hold it up, and it never lets another listener take the reply."""

from __future__ import annotations

import errno
import html
import logging
import socket
import threading
import time

import pytest
import requests
from providers import free_port, loopback_redirect_uri

from make_notebook_auth import MakeAuth
from make_notebook_auth.errors import MakeAuthError
from make_notebook_auth.loopback import (
    LoopbackListener,
    loopback_target,
    port_is_free,
)

registered_loopback_uri = loopback_redirect_uri  # registered at both test providers this run


def free_uri(host: str = "127.0.0.1") -> str:
    """A loopback redirect URI on a free port (for listeners that need no provider)."""
    return f"http://{host}:{free_port()}/callback"


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
    assert listener._server.socket.getsockname() == ("127.0.0.1", listener.port)
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
    uri = free_uri()

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
    uri = free_uri()

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
    uri = free_uri()
    got = []
    listener = LoopbackListener(uri, is_pending=lambda s: s == "xyz", complete=got.append)
    assert listener.start()
    assert get(uri + "?code=c0de&state=xyz&iss=http%3A%2F%2Fissuer").status_code == 200
    listener.wait(5)
    assert got == [uri + "?code=c0de&state=xyz&iss=http%3A%2F%2Fissuer"]


def test_localhost_redirect_listens_on_127_0_0_1_only():
    port = free_port()
    uri = f"http://localhost:{port}/callback"
    got = []
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=got.append)
    assert listener.start()
    try:
        assert listener._server.socket.getsockname() == ("127.0.0.1", port)
        assert get(f"http://127.0.0.1:{port}/callback?code=c&state=s").status_code == 200
        assert got == [f"http://localhost:{port}/callback?code=c&state=s"]
    finally:
        listener.stop()


def test_busy_port_is_reported():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        listener = LoopbackListener(f"http://127.0.0.1:{port}/callback",
                                    is_pending=lambda s: True, complete=lambda u: None)
        assert not port_is_free(port)
        assert listener.start() is False
        assert not listener.listening
        assert f"port {port} on 127.0.0.1 is in use" in listener.busy_reason


def test_timeout_closes_the_port():
    uri = free_uri()
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
    uri = free_uri()
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=lambda u: None)
    assert listener.start()
    assert not port_is_free(listener.port)
    listener.stop()
    assert listener.outcome == "stopped"
    assert port_is_free(listener.port)
    listener.stop()  # idempotent


def test_no_log_records(caplog):
    caplog.set_level(logging.DEBUG)
    uri = free_uri()
    listener = LoopbackListener(uri, is_pending=lambda s: True, complete=lambda u: None)
    assert listener.start()
    import urllib.request  # (requests' urllib3 would log the test's own GET)

    with urllib.request.urlopen(uri + "?code=SECRETCODE123&state=s", timeout=10) as resp:
        assert resp.status == 200
    listener.wait(5)
    assert "SECRETCODE123" not in caplog.text


# -- other local processes -------------------------------------------------------------------

def bind_again(port: int) -> None:
    """Listen on 127.0.0.1:port as the next login's listener would (raises if it cannot)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the listener ends this connection within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class Trickler(threading.Thread):
    """A client sending its request one byte every 0.3 s (each read arrives in time)."""

    def __init__(self, port: int, path: str = "/callback?code=c&state=s") -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.request = f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + b"X-Pad: " + b"a" * 500
        self.cut_after: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        try:
            for byte in self.request:
                self.sock.sendall(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            self.cut_after = time.monotonic() - started
        finally:
            self.done.set()
            self.sock.close()


def test_idle_and_trickling_connections_do_not_hold_up_the_reply(provider, auth_for):
    redirect_uri = registered_loopback_uri()
    auth = auth_for(redirect_uri)
    request = auth.start()
    listener = LoopbackListener(redirect_uri, is_pending=auth.is_pending, complete=auth.finish)
    assert listener.start()
    idle = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(20)]
    trickler = Trickler(listener.port)
    try:
        trickler.start()
        half_sent = socket.create_connection(("127.0.0.1", listener.port))
        half_sent.sendall(b"GET /callback?code=x&state=y HTTP/1.1\r\n")  # never ends
        idle.append(half_sent)
        redirect = provider.authorize(request.url)
        result: dict = {}
        browser = threading.Thread(target=lambda: result.update(r=get(redirect)), daemon=True)
        browser.start()
        browser.join(20)  # a bound so a regression fails instead of hanging
        assert "r" in result, "the real redirect did not complete"
        assert result["r"].status_code == 200
        assert auth.session.logged_in
        assert listener.wait(5) == "completed"
    finally:
        for sock in idle:
            sock.close()
        listener.stop()


def test_a_trickling_client_is_cut_off(monkeypatch):
    """The time limit is per connection, in total: a byte every 0.3 s does not extend it."""
    from make_notebook_auth import loopback

    monkeypatch.setattr(loopback, "CONNECTION_TIME_LIMIT", 1.0)
    listener = LoopbackListener(free_uri(), is_pending=lambda s: True, complete=lambda u: None)
    assert listener.start()
    trickler = Trickler(listener.port)
    try:
        trickler.start()
        assert trickler.done.wait(30), "the trickling client was never cut off"
        assert trickler.cut_after is not None and trickler.cut_after < 20
        assert listener.listening  # it got nothing from that client
    finally:
        listener.stop()


def test_open_connections_are_capped(monkeypatch):
    from make_notebook_auth import loopback

    monkeypatch.setattr(loopback, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(loopback, "CONNECTION_TIME_LIMIT", 120.0)
    got = []
    listener = LoopbackListener(free_uri(), is_pending=lambda s: s == "s", complete=got.append)
    assert listener.start()
    idle = []
    try:
        for _ in range(10):
            idle.append(socket.create_connection(("127.0.0.1", listener.port)))
            time.sleep(0.05)
        # The oldest six were dropped to make room; the newest four are still open.
        assert all(closed_by_peer(sock, 10) for sock in idle[:6])
        assert not any(closed_by_peer(sock, 0.3) for sock in idle[6:])
        assert get(listener.redirect_uri + "?code=c&state=s").status_code == 200
        assert listener.wait(5) == "completed"
    finally:
        for sock in idle:
            sock.close()
        listener.stop()


def test_an_overlong_request_line_is_refused():
    listener = LoopbackListener(free_uri(), is_pending=lambda s: True, complete=lambda u: None)
    assert listener.start()
    try:
        response = get(listener.redirect_uri + "?code=c&state=s&pad=" + "a" * 9000)
        assert response.status_code == 414
        assert listener.listening
    finally:
        listener.stop()


@pytest.mark.parametrize("end", ["timeout", "stop"])
def test_deadline_and_stop_hold_whatever_connections_do(end):
    outcomes = []
    listener = LoopbackListener(free_uri(), is_pending=lambda s: True, complete=lambda u: None,
                                on_done=outcomes.append, timeout=1.0 if end == "timeout" else 600)
    assert listener.start()
    port = listener.port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    trickler = Trickler(port)
    trickler.start()
    try:
        if end == "stop":
            listener.stop()
        result = listener.wait(10)
        assert result == ("timeout" if end == "timeout" else "stopped")
        assert outcomes == [result]
        assert all(closed_by_peer(sock, 2.5) for sock in idle)
        bind_again(port)
        again = LoopbackListener(f"http://127.0.0.1:{port}/callback",
                                 is_pending=lambda s: True, complete=lambda u: None)
        assert again.start()
        again.stop()
    finally:
        for sock in idle:
            sock.close()


# -- replies for a login this listener does not know ---------------------------------------------

def test_a_reply_for_another_login_says_where_to_paste_it(provider, auth_for):
    """Two notebooks use the same redirect URI; the first one's listener holds the port and
    receives the second one's reply: its page sends the user back to the second notebook."""
    redirect_uri = registered_loopback_uri()
    first, second = auth_for(redirect_uri), auth_for(redirect_uri)
    first.start()
    listener = LoopbackListener(redirect_uri, is_pending=first.is_pending, complete=first.finish)
    assert listener.start()
    try:
        other = second.start()
        redirect = provider.authorize(other.url)
        response = get(redirect)
        assert response.status_code == 400
        text = " ".join(html.unescape(response.text).split())
        assert "Copy this page's address" in text
        assert "notebook where you started the login" in text
        assert listener.listening and not first.session.logged_in
        # The code was not used: pasting the address into the second notebook finishes it.
        assert second.finish(redirect).logged_in
    finally:
        listener.stop()


def test_a_stale_state_gets_the_same_page():
    listener = LoopbackListener(free_uri(), is_pending=lambda s: s == "current",
                                complete=lambda u: None)
    assert listener.start()
    try:
        for query in ("?code=c&state=stale", "?code=c", "?code=c&state=current&state=x"):
            response = get(listener.redirect_uri + query)
            assert response.status_code == 400
            assert "paste it into the login panel" in response.text
        assert listener.listening
    finally:
        listener.stop()


# -- IPv6 loopback ---------------------------------------------------------------------------

def ipv6_loopback_or_skip() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this machine ({exc})")


def test_localhost_refuses_when_another_program_listens_on_ipv6_loopback():
    ipv6_loopback_or_skip()
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        other.bind(("::1", 0))
        other.listen(5)
        port = other.getsockname()[1]
        if not port_is_free(port):
            pytest.skip(f"port {port} is busy on 127.0.0.1 too")
        listener = LoopbackListener(f"http://localhost:{port}/callback",
                                    is_pending=lambda s: True, complete=lambda u: None)
        assert listener.start() is False
        assert "[::1]" in listener.busy_reason
        assert not listener.listening


def test_localhost_keeps_ipv6_loopback_from_other_programs():
    ipv6_loopback_or_skip()
    port = free_port()
    listener = LoopbackListener(f"http://localhost:{port}/callback",
                                is_pending=lambda s: True, complete=lambda u: None)
    assert listener.start()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as other:
            other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError) as info:
                other.bind(("::1", port))
                other.listen(5)
            assert info.value.errno == errno.EADDRINUSE
        # A browser trying ::1 first is refused at once and falls back to 127.0.0.1.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("::1", port), timeout=5).close()
    finally:
        listener.stop()
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as after:
        after.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        after.bind(("::1", port))  # released with the listener


# -- the package's default redirect URI -------------------------------------------------------

def test_default_redirect_uri_completes_a_login(sandbox_provider):
    """The one test on the default port (every other one listens on a free port): a login
    with no redirect URI given listens on 127.0.0.1:8765 and completes there."""
    provider = sandbox_provider
    for _ in range(60):  # another test run on this machine may hold it for a moment
        if port_is_free(8765):
            break
        time.sleep(0.5)
    else:
        pytest.skip("port 8765 stayed busy for 30 s (another program holds it)")
    auth = MakeAuth(provider.public_client_id, issuer=provider.issuer, api_url=provider.api_url)
    assert auth.config.redirect_uri == "http://127.0.0.1:8765/callback"
    request = auth.start()
    listener = LoopbackListener(auth.config.redirect_uri, is_pending=auth.is_pending,
                                complete=auth.finish)
    if not listener.start():
        pytest.skip(f"port 8765 was taken meanwhile: {listener.busy_reason}")
    try:
        assert listener._server.socket.getsockname() == ("127.0.0.1", 8765)
        redirect = provider.authorize(request.url)
        assert redirect.startswith("http://127.0.0.1:8765/callback?")
        assert get(redirect).status_code == 200
        assert listener.wait(10) == "completed"
        assert auth.session.logged_in
    finally:
        listener.stop()
