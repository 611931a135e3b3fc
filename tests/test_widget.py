"""LoginPanel driven in-process against the real providers (the browser tests prove rendering)."""

from __future__ import annotations

import json
import re
import threading

import ipywidgets as widgets
import pytest
import requests
from providers import loopback_redirect_uri as loopback_uri

from make_notebook_auth import LoginPendingError, MakeAuth
from make_notebook_auth.loopback import port_is_free
from make_notebook_auth.widget import LoginPanel, browser_link, display_name, userinfo_table

PASTE_URI = "https://app.example.test/callback"  # registered at both providers, never reached



def make_auth(provider, redirect_uri=PASTE_URI, *, confidential=False, secret=None):
    client = provider.confidential_client_id if confidential else provider.public_client_id
    return MakeAuth(client, secret, issuer=provider.issuer, api_url=provider.api_url,
                    redirect_uri=redirect_uri)


def all_widget_state(panel) -> str:
    """Every synced value of the panel and its descendants, as saved into a notebook."""
    seen, stack, states = set(), [panel], []
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        states.append(w.get_state())
        for name in w.keys:
            value = getattr(w, name, None)
            items = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(v for v in items if isinstance(v, widgets.Widget))
    return json.dumps(states, default=str)


def get(url):
    s = requests.Session()
    s.trust_env = False
    return s.get(url, timeout=30, allow_redirects=False)


def test_paste_and_submit(provider):
    auth = make_auth(provider)
    logins = []
    panel = LoginPanel(auth, on_login=logins.append)
    assert panel.state == "pending"
    assert panel.listener is None  # not a loopback redirect URI
    request = panel.request
    assert 'target="_blank"' in panel.link.value
    assert request.url.replace("&", "&amp;") in panel.link.value
    assert "app.example.test/callback?code=" in panel.instructions.value
    with pytest.raises(LoginPendingError, match="finish|login panel"):
        panel.session.get("users/me")

    redirect = provider.authorize(request.url)
    panel.paste.value = redirect
    panel.submit.click()

    assert panel.state == "logged_in", panel.status.value
    user = provider.users["alice"]
    assert "Logged in to Make as" in panel.status.value
    assert user["email"] in panel.status.value
    assert user["email"] in panel.userinfo.value
    assert panel.paste.value == ""
    assert "href" not in panel.link.value
    assert panel.controls.layout.display == "none"
    assert logins == [panel.session]
    assert panel.session.get("users/me").status_code == 200
    assert "logged in" in panel.plain_text()


def test_enter_submits(provider):
    panel = LoginPanel(make_auth(provider))
    panel.paste.value = provider.authorize(panel.request.url)
    panel.paste._handle_custom_msg({"event": "submit"}, [])
    assert panel.state == "logged_in", panel.status.value


def test_error_clears_field_and_keeps_pending_login(provider):
    panel = LoginPanel(make_auth(provider))
    panel.paste.value = "not a url at all !!"
    panel.submit.click()
    assert panel.state == "pending"
    assert "make-login-status-error" in panel.status.value
    assert "neither the redirect address" in panel.status.value
    assert panel.paste.value == ""  # cleared after every submit, failed or not
    assert not panel.submit.disabled

    # A declined sign-in: the error is shown, and the same link can still be approved.
    panel.paste.value = provider.authorize(panel.request.url, approve=False)
    panel.submit.click()
    assert panel.state == "pending"
    assert "declined" in panel.status.value

    panel.paste.value = provider.authorize(panel.request.url)
    panel.submit.click()
    assert panel.state == "logged_in", panel.status.value


def test_hostile_reply_is_escaped(provider):
    panel = LoginPanel(make_auth(provider))
    evil = "<img src=x onerror=alert(1)>"
    reply = (f"{PASTE_URI}?error=access_denied&error_description={requests.utils.quote(evil)}"
             f"&state={panel.request.state}")
    panel.paste.value = reply
    panel.submit.click()
    assert "<img" not in panel.status.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in panel.status.value


def test_display_helpers_escape():
    claims = {"sub": "1", "name": "<b>Eve</b>", "email": "e@x", "nested": {"a": "<i>"}}
    assert display_name(claims) == "<b>Eve</b> (e@x)"
    table = userinfo_table(claims)
    assert "<b>Eve" not in table and "&lt;b&gt;Eve&lt;/b&gt;" in table
    assert "&lt;i&gt;" in table
    assert display_name({"sub": "42"}) == "42"
    many = {f"k{i}": i for i in range(20)}
    assert "8 more" in userinfo_table(many)


def test_nothing_secret_left_in_widgets(provider):
    panel = LoginPanel(make_auth(provider))
    redirect = provider.authorize(panel.request.url)
    code = redirect.split("code=")[1].split("&")[0]
    panel.paste.value = redirect
    panel.submit.click()
    assert panel.state == "logged_in"
    state = all_widget_state(panel)
    token = panel.session.token
    for secret in (code, token["access_token"], token.get("id_token"),
                   panel.request._code_verifier, panel.request.state):
        if secret:
            assert secret not in state


def test_confidential_secret_typed_into_panel(provider):
    auth = make_auth(provider, confidential=True)
    panel = LoginPanel(auth, ask_secret=True)
    assert panel.secret is not None
    panel.secret.value = provider.confidential_client_secret  # typed, then Enter
    assert panel.secret.value == ""  # moved into memory at once
    assert provider.confidential_client_secret not in all_widget_state(panel)
    assert "Received" in panel.secret.placeholder
    panel.paste.value = provider.authorize(panel.request.url)
    panel.submit.click()
    assert panel.state == "logged_in", panel.status.value
    assert panel.secret.value == ""
    assert panel.session.can_refresh
    panel.session.refresh()  # the secret reached the session's config too
    assert provider.confidential_client_secret not in all_widget_state(panel)


def test_confidential_without_secret_fails_then_works(provider):
    auth = make_auth(provider, confidential=True)
    panel = LoginPanel(auth, ask_secret=True)
    redirect = provider.authorize(panel.request.url)
    panel.paste.value = redirect
    panel.submit.click()
    assert panel.state == "pending"
    assert "client" in panel.status.value.lower()
    assert panel.paste.value == ""  # a failed paste holding a code is not kept either
    panel.secret.value = provider.confidential_client_secret
    panel.submit_reply(redirect)
    assert panel.state == "logged_in", panel.status.value


def test_secret_from_environment_hides_field(provider):
    panel = LoginPanel(make_auth(provider, confidential=True,
                                 secret=provider.confidential_client_secret), ask_secret=True)
    assert panel.secret is None


def test_no_secret_field_unless_asked(provider):
    # A public client has no secret: no "Confidential client?" section to puzzle over.
    panel = LoginPanel(make_auth(provider))
    assert panel.secret is None
    assert "Client secret" not in all_widget_state(panel)
    asked = LoginPanel(make_auth(provider), ask_secret=True)
    assert asked.secret is not None
    assert "Confidential client? Client secret" in all_widget_state(asked)


EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")


def test_no_emoji_in_any_status(provider):
    panel = LoginPanel(make_auth(provider))
    seen = [all_widget_state(panel)]
    panel.submit_reply("hello")  # an error status
    seen.append(all_widget_state(panel))
    panel.submit_reply(provider.authorize(panel.request.url))  # the success status
    assert panel.state == "logged_in"
    seen.append(all_widget_state(panel))
    assert "fa-check-circle" in panel.status.value
    for state in seen:
        assert not EMOJI.search(state), EMOJI.findall(state)


def test_start_over(provider):
    panel = LoginPanel(make_auth(provider))
    first = panel.request
    panel.paste.value = "garbage"
    panel.submit.click()
    panel.start_over()
    assert panel.request.state != first.state
    assert panel.paste.value == ""
    assert "error" not in panel.status.value
    panel.paste.value = provider.authorize(panel.request.url)
    panel.submit.click()
    assert panel.state == "logged_in"


def test_loopback_completes_panel(provider):
    uri = loopback_uri()
    panel = LoginPanel(make_auth(provider, uri))
    try:
        assert panel.listener is not None and panel.listener.listening
        assert "listening on 127.0.0.1" in panel.status.value
        response = get(provider.authorize(panel.request.url))
        assert response.status_code == 200
        assert "close this tab" in response.text
        assert panel.state == "logged_in"
        assert panel.listener.wait(5) == "completed"
        assert panel.session.get("users/me").status_code == 200
    finally:
        panel.close_login()


def test_loopback_listens_again_after_a_declined_approval(provider):
    uri = loopback_uri()
    panel = LoginPanel(make_auth(provider, uri))
    try:
        first = panel.listener
        denied = get(provider.authorize(panel.request.url, approve=False))
        assert denied.status_code != 200 or "close this tab" not in denied.text
        assert first.wait(5) == "failed"
        assert "access_denied" in panel.status.value and panel.state == "pending"
        for _ in range(50):  # the panel starts a new listener from the old one's thread
            if panel.listener is not None and panel.listener is not first:
                break
            threading.Event().wait(0.1)
        assert panel.listener is not first and panel.listener.listening
        approved = get(provider.authorize(panel.request.url))
        assert "close this tab" in approved.text
        assert panel.state == "logged_in"
        assert panel.session.get("users/me").status_code == 200
    finally:
        panel.close_login()


def test_loopback_and_paste_race_report_success_once(provider):
    uri = loopback_uri()
    logins = []
    panel = LoginPanel(make_auth(provider, uri), on_login=logins.append)
    redirect = provider.authorize(panel.request.url)
    results = {}
    barrier = threading.Barrier(2)

    def browser():
        barrier.wait()
        try:
            results["browser"] = get(redirect)
        except requests.ConnectionError:  # the paste won and the listener closed first
            results["browser"] = None

    thread = threading.Thread(target=browser)
    thread.start()
    barrier.wait()
    results["paste"] = panel.submit_reply(redirect)
    thread.join(30)
    assert results["paste"] is True
    if results["browser"] is not None:
        assert results["browser"].status_code == 200, results["browser"].text
        assert "close this tab" in results["browser"].text
    assert panel.state == "logged_in"
    assert logins == [panel.session]
    assert panel.status.value.count("Logged in") == 1
    panel.close_login()


def test_busy_port_falls_back_to_paste(provider):
    uri = loopback_uri()
    import socket

    port = int(uri.split(":")[2].split("/")[0])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of earlier tests
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        panel = LoginPanel(make_auth(provider, uri))
        assert panel.listener is None
        status = panel.status.value
        assert f"already listens on 127.0.0.1:{port}" in status  # why it is in paste mode
        assert "paste it below" in status
        panel.paste.value = provider.authorize(panel.request.url)
        panel.submit.click()
        assert panel.state == "logged_in"


def test_no_listen(provider):
    panel = LoginPanel(make_auth(provider, loopback_uri()), listen=False)
    assert panel.listener is None
    assert "Waiting for the pasted address" in panel.status.value


def test_close_login_frees_port(provider):
    uri = loopback_uri()
    panel = LoginPanel(make_auth(provider, uri))
    port = panel.listener.port
    panel.close_login("replaced")
    assert panel.state == "closed"
    assert port_is_free(port)
    assert "replaced" in panel.status.value
    assert "href" not in panel.link.value
    assert not panel.submit_reply("anything")


def test_logout_updates_panel(provider):
    panel = LoginPanel(make_auth(provider))
    panel.paste.value = provider.authorize(panel.request.url)
    panel.submit.click()
    panel.session.logout()
    assert panel.state == "logged_out"
    assert "Logged out" in panel.status.value
    assert panel.userinfo.value == ""


def test_text_plain_fallback_has_link(provider):
    panel = LoginPanel(make_auth(provider), finish_hint="%make_finish <address>")
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert panel.request.url in bundle["text/plain"]
    assert "%make_finish <address>" in bundle["text/plain"]


def test_start_failure_is_shown(monkeypatch):
    auth = MakeAuth("cid", issuer="http://127.0.0.1:9/", redirect_uri=PASTE_URI)

    def boom(**kw):
        from make_notebook_auth.errors import MakeNetworkError

        raise MakeNetworkError("discovery", "http://127.0.0.1:9/x", "refused")

    monkeypatch.setattr(auth, "start", boom)
    panel = LoginPanel(auth)
    assert panel.request is None
    assert "Could not reach" in panel.status.value
    assert "href" not in panel.link.value


@pytest.mark.parametrize("url, env, expected", [
    ("http://127.0.0.1:8764/oauth/v2/authorize?a=1", {"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"},
     "/user/ana/proxy/8764/oauth/v2/authorize?a=1"),
    ("http://localhost:8764/x", {"JUPYTERHUB_SERVICE_PREFIX": "user/ana"},
     "/user/ana/proxy/8764/x"),
    ("https://www.make.com/oauth/v2/authorize?a=1", {"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"},
     "https://www.make.com/oauth/v2/authorize?a=1"),
    ("http://127.0.0.1:8764/x?a=1", {}, "http://127.0.0.1:8764/x?a=1"),
])
def test_browser_link_behind_jupyterhub(url, env, expected):
    assert browser_link(url, env) == expected


def test_link_uses_proxy_path_behind_hub(provider, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ana/")
    panel = LoginPanel(make_auth(provider))
    port = provider.issuer.rsplit(":", 1)[1]
    assert f'href="/user/ana/proxy/{port}/oauth/v2/authorize?' in panel.link.value


# -- a Make API token instead of the sign-in link -------------------------------------------


def test_api_token_instead_of_signing_in(sandbox_provider, sandbox_server):
    token = sandbox_server.api_token
    assert token
    auth = make_auth(sandbox_provider, loopback_uri())
    panel = LoginPanel(auth)
    assert panel.listener is not None and panel.listener.listening
    assert panel.api_token is not None

    panel.api_token.value = "not a token"  # typed, Enter: refused, never repeated
    assert panel.state == "pending"
    assert panel.api_token.value == ""
    assert "not a token" not in panel.status.value
    assert panel.listener is not None and panel.listener.listening  # the link still works

    panel.api_token.value = token
    assert panel.state == "logged_in", panel.status.value
    make = panel.session
    assert make.credential == "api_token"
    assert "API token" in panel.status.value
    assert panel.api_token.value == ""
    assert token not in all_widget_state(panel)
    assert panel.listener is None  # the browser's reply is no longer waited for
    sent = make.get("users/me")
    assert sent.request.headers["Authorization"] == f"Token {token}"
    assert sent.json()["authUser"]["email"] == "alice@example.test"


def test_api_token_typed_into_the_panel_is_never_remembered(sandbox_provider, sandbox_server,
                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(tmp_path / "cache"))
    token = sandbox_server.api_token
    auth = MakeAuth(sandbox_provider.public_client_id, issuer=sandbox_provider.issuer,
                    api_url=sandbox_provider.api_url, redirect_uri=PASTE_URI, remember=True)
    panel = LoginPanel(auth)
    panel.api_token.value = token
    assert panel.session.logged_in
    assert panel.session.json("users/me")["authUser"]["id"]
    on_disk = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(token.encode() in data for data in on_disk)


def test_no_api_token_choice_without_a_zone(provider):
    auth = MakeAuth(provider.public_client_id, issuer=provider.issuer, redirect_uri=PASTE_URI)
    panel = LoginPanel(auth)
    assert panel.api_token is None
    assert "make-login-api-token-box" not in all_widget_state(panel)
