"""The login controller on its own, with a view that records what it is told (the panel and
the terminal are tested as views in test_widget.py, test_console.py, test_console_pty.py)."""

from __future__ import annotations

import socket
import threading

import requests
from providers import loopback_redirect_uri as loopback_uri

from make_notebook_auth import MakeAuth
from make_notebook_auth.login import LoginController, LoginView
from make_notebook_auth.loopback import port_is_free

PASTE_URI = "https://app.example.test/callback"




class Recorder(LoginView):
    pending_hint = "RECORDER-HINT"

    def __init__(self):
        self.events: list[tuple] = []

    def _log(self, *event):
        self.events.append(event)

    def on_started(self, controller):
        self._log("started", controller.listening, controller.busy_port)

    def on_failed(self, message, source):
        self._log("failed", source, message)

    def on_logged_in(self, session, source):
        self._log("logged_in", source)

    def on_listen_timeout(self):
        self._log("timeout")

    def on_closed(self, message):
        self._log("closed", message)

    def on_logged_out(self):
        self._log("logged_out")

    def kinds(self):
        return [e[0] for e in self.events]


def make_auth(provider, redirect_uri=PASTE_URI):
    return MakeAuth(provider.public_client_id, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=redirect_uri)


def browser(url):
    s = requests.Session()
    s.trust_env = False
    return s.get(url, timeout=30, allow_redirects=False)


def test_paste_flow_and_events(provider):
    view = Recorder()
    ctl = LoginController(make_auth(provider), view)
    assert ctl.start()
    assert view.events == [("started", False, None)]
    assert ctl.session.pending_hint == "RECORDER-HINT"  # the view's words for the error
    assert not ctl.finish("hello")
    assert view.events[-1][:2] == ("failed", "paste") and ctl.pending
    assert ctl.finish(provider.authorize(ctl.request.url))
    assert view.kinds()[-1] == "logged_in" and ctl.state == "logged_in" and ctl.wait(0)
    assert ctl.finish("anything")  # already logged in: nothing new reported
    assert view.kinds().count("logged_in") == 1
    ctl.session.logout()
    assert view.kinds()[-1] == "logged_out" and ctl.state == "logged_out"


def test_restart_forgets_the_old_link(provider):
    view = Recorder()
    ctl = LoginController(make_auth(provider), view)
    ctl.start()
    old = ctl.request
    ctl.restart()
    assert ctl.request.state != old.state and view.kinds() == ["started", "started"]
    assert ctl.finish(provider.authorize(ctl.request.url))


def test_close_stops_everything(provider):
    view = Recorder()
    ctl = LoginController(make_auth(provider, loopback_uri()), view)
    ctl.start()
    port = ctl.listener.port
    ctl.close("replaced")
    assert ctl.state == "closed" and ctl.wait(0) and port_is_free(port)
    assert view.events[-1] == ("closed", "replaced")
    assert not ctl.finish("anything") and "closed" in ctl.last_error


def test_listen_timeout_is_reported_and_paste_still_works(provider):
    view = Recorder()
    ctl = LoginController(make_auth(provider, loopback_uri()), view, listen_timeout=0.5)
    ctl.start()
    assert view.events[0][1] is True  # listening
    ctl.listener.wait(10)
    assert "timeout" in view.kinds() and ctl.pending
    assert ctl.finish(provider.authorize(ctl.request.url))


def test_browser_then_declined_then_approved(provider):
    view = Recorder()
    ctl = LoginController(make_auth(provider, loopback_uri()), view, service="Test Service")
    ctl.start()
    first = ctl.listener
    denied = browser(provider.authorize(ctl.request.url, approve=False))
    assert denied.status_code == 400
    assert first.wait(5) == "failed" and ctl.pending
    assert view.events[-1][:2] == ("failed", "browser")
    for _ in range(50):
        if ctl.listener is not None and ctl.listener is not first:
            break
        threading.Event().wait(0.1)
    approved = browser(provider.authorize(ctl.request.url))
    assert approved.status_code == 200
    assert "<title>Logged in to Test Service</title>" in approved.text
    assert view.kinds()[-1] == "logged_in" and view.events[-1][1] == "browser"


def test_busy_port_is_reported_to_the_view(provider):
    uri = loopback_uri()
    port = int(uri.split(":")[2].split("/")[0])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        view = Recorder()
        ctl = LoginController(make_auth(provider, uri), view)
        ctl.start()
    assert view.events == [("started", False, port)]
    assert ctl.finish(provider.authorize(ctl.request.url))
