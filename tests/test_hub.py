"""The JupyterHub service ``make-login`` (hub.py) and the kernel's side of it (hubrelay.py).

The store's rules are tested on their own (fake clock), then everything against a real
JupyterHub (``fixtures_hub``: hub, configurable-http-proxy, the service started by the hub from
``configure()``, two users) and the real OpenID provider: the kernel side is the real
``LoginController`` with its ``HubRelay``; browsers are ``requests`` sessions logged into the hub
through its login form (the real-browser test is tests/browser/test_hub_browser.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from traitlets.config import Config

from make_notebook_auth import MakeAuth
from make_notebook_auth.hub import PendingStore, Refused, configure, reply_query
from make_notebook_auth.hubrelay import HubRelay, HubTarget, callback_path, hub_target
from make_notebook_auth.login import LOGGED_IN, PENDING, LoginController

S1 = "A" * 43
S2 = "B" * 43


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro):
    """``asyncio.run`` in a thread of its own (Playwright's sync API may hold this thread's
    event loop when the browser tests ran first in the same session)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=30)


def take(store: PendingStore, user: str, state: str, wait: float = 0.0):
    return run(store.take(user, state, wait))


# -- the store ---------------------------------------------------------------------------------

def test_reply_goes_to_its_own_user_once():
    store = PendingStore(clock=Clock())
    store.register("alice", S1)
    assert take(store, "alice", S1) is None  # nothing yet
    assert store.deliver("alice", f"code=c1&state={S1}&iss=http%3A%2F%2Fi") == S1
    reply = take(store, "alice", S1)
    assert parse_qs(reply) == {"code": ["c1"], "state": [S1], "iss": ["http://i"]}
    with pytest.raises(Refused) as again:
        take(store, "alice", S1)
    assert again.value.status == 404


def test_foreign_reply_is_refused_and_kept_nowhere():
    store = PendingStore(clock=Clock())
    store.register("alice", S1)
    with pytest.raises(Refused) as exc:
        store.deliver("bob", f"code=bobs-look&state={S1}")
    assert exc.value.status == 403
    assert "another JupyterHub user" in exc.value.message
    assert take(store, "alice", S1) is None  # bob's attempt left nothing for alice's kernel
    store.deliver("alice", f"code=real&state={S1}")  # and alice's own reply still goes through
    assert parse_qs(take(store, "alice", S1))["code"] == ["real"]


def test_another_users_kernel_cannot_take_or_steal_a_state():
    store = PendingStore(clock=Clock())
    store.register("alice", S1)
    with pytest.raises(Refused) as steal:
        store.register("bob", S1)
    assert steal.value.status == 409
    store.deliver("alice", f"code=c&state={S1}")
    with pytest.raises(Refused) as peek:
        take(store, "bob", S1)
    assert peek.value.status == 404
    assert parse_qs(take(store, "alice", S1))["code"] == ["c"]  # still there for alice


def test_replayed_reply_is_refused():
    store = PendingStore(clock=Clock())
    store.register("alice", S1)
    store.deliver("alice", f"code=c&state={S1}")
    with pytest.raises(Refused) as before_taken:
        store.deliver("alice", f"code=other&state={S1}")
    assert before_taken.value.status == 409
    take(store, "alice", S1)
    with pytest.raises(Refused) as after_taken:
        store.deliver("alice", f"code=c&state={S1}")
    assert after_taken.value.status == 409
    assert after_taken.value.title == "Already used"


def test_expired_state_is_refused_and_forgotten():
    clock = Clock()
    store = PendingStore(lifetime=300, clock=clock)
    assert store.register("alice", S1, lifetime=5) == 5
    clock.now += 5.01
    with pytest.raises(Refused) as exc:
        store.deliver("alice", f"code=c&state={S1}")
    assert exc.value.status == 410
    assert "expired" in exc.value.message
    assert len(store) == 0


def test_lifetime_is_capped():
    store = PendingStore(lifetime=300, max_lifetime=900, clock=Clock())
    assert store.register("alice", S1, lifetime=10**9) == 900
    assert store.register("alice", S2) == 300
    with pytest.raises(Refused):
        store.register("alice", "C" * 43, lifetime=0)


def test_per_user_cap_drops_the_users_oldest_only():
    store = PendingStore(per_user=2, clock=Clock())
    store.register("bob", "b" * 43)
    store.register("alice", "1" * 43)
    store.register("alice", "2" * 43)
    store.register("alice", "3" * 43)
    with pytest.raises(Refused):
        store.deliver("alice", f"code=c&state={'1' * 43}")  # made room for the third
    store.deliver("alice", f"code=c&state={'3' * 43}")
    store.deliver("bob", f"code=c&state={'b' * 43}")  # another user's state is untouched
    assert len(store) == 3


def test_total_cap():
    store = PendingStore(per_user=10, max_pending=3, clock=Clock())
    for n in range(3):
        store.register(f"user{n}", str(n) * 43)
    with pytest.raises(Refused) as exc:
        store.register("user9", "9" * 43)
    assert exc.value.status == 503
    assert len(store) == 3


@pytest.mark.parametrize("state", ["", "short", "x" * 300, "bad state with spaces" * 2,
                                   "a/b" * 10, None, 42])
def test_malformed_states_are_refused(state):
    store = PendingStore(clock=Clock())
    with pytest.raises(Refused) as exc:
        store.register("alice", state)
    assert exc.value.status == 400
    assert len(store) == 0


def test_reply_query_keeps_only_the_redirects_parameters():
    got = parse_qs(reply_query(f"code=c&state={S1}&iss=i&next=%2Fevil&token=t"))
    assert got == {"code": ["c"], "state": [S1], "iss": ["i"]}
    assert parse_qs(reply_query(f"error=access_denied&state={S1}"))["error"] == ["access_denied"]
    for bad in (f"state={S1}", "code=c", f"code=a&code=b&state={S1}",
                f"code={'x' * 3000}&state={S1}"):
        with pytest.raises(Refused):
            reply_query(bad)


def test_a_waiting_poll_gets_the_reply():
    store = PendingStore(clock=time.monotonic)

    async def scenario():
        store.register("alice", S1)
        poll = asyncio.ensure_future(store.take("alice", S1, 10))
        await asyncio.sleep(0.05)
        store.deliver("alice", f"code=c&state={S1}")
        return await asyncio.wait_for(poll, 5)

    assert parse_qs(run(scenario()))["code"] == ["c"]


def test_long_polls_on_one_state_are_bounded():
    store = PendingStore(clock=time.monotonic)

    async def scenario():
        store.register("alice", S1)
        polls = [asyncio.ensure_future(store.take("alice", S1, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Refused) as third:
            await store.take("alice", S1, 10)
        store.deliver("alice", f"code=c&state={S1}")
        got = await asyncio.wait_for(asyncio.gather(*polls, return_exceptions=True), 5)
        return third.value.status, got

    status, got = run(scenario())
    assert status == 429
    replies = [g for g in got if isinstance(g, str)]
    assert len(replies) == 1 and parse_qs(replies[0])["code"] == ["c"]  # handed on once


# -- configure() -------------------------------------------------------------------------------

def test_configure_adds_the_service_and_the_access_scope():
    c = Config()
    configure(c, url="http://127.0.0.1:10101")
    (service,) = c.JupyterHub.services
    assert service["name"] == "make-login"
    assert service["url"] == "http://127.0.0.1:10101"
    assert service["command"][1:3] == ["-m", "make_notebook_auth.hub"]
    assert service["oauth_no_confirm"] is True
    roles = {r["name"]: r["scopes"] for r in c.JupyterHub.load_roles}
    assert roles["user"] == ["self", "access:services!service=make-login"]
    assert roles["server"] == ["users:activity!user", "access:servers!server",
                               "access:services!service=make-login"]


def test_configure_keeps_what_the_admin_configured():
    c = Config()
    c.JupyterHub.services = [{"name": "other", "url": "http://127.0.0.1:9"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:groups"]}]
    configure(c, url="http://127.0.0.1:10101")
    configure(c, url="http://127.0.0.1:10102")  # twice: still one service, one scope
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["other", "make-login"]
    assert c.JupyterHub.services[1]["url"] == "http://127.0.0.1:10102"
    user = next(r for r in c.JupyterHub.load_roles if r["name"] == "user")
    assert user["scopes"] == ["self", "read:groups", "access:services!service=make-login"]


def test_configure_needs_a_listening_address():
    with pytest.raises(ValueError, match="HOST:PORT"):
        configure(Config(), url="make-login")


# -- which kernels use the service -------------------------------------------------------------

HUB_ENV = {"JUPYTERHUB_API_TOKEN": "t0k3n", "JUPYTERHUB_BASE_URL": "/"}


@pytest.mark.parametrize("uri, env, api", [
    ("https://hub.example.org/services/make-login/callback", HUB_ENV,
     "https://hub.example.org/services/make-login/api/"),
    ("https://hub.example.org/jh/services/make-login/callback",
     {**HUB_ENV, "JUPYTERHUB_BASE_URL": "/jh/"},
     "https://hub.example.org/jh/services/make-login/api/"),
    ("http://127.0.0.1:8000/services/make-login/callback", HUB_ENV,
     "http://127.0.0.1:8000/services/make-login/api/"),
    # not on a hub, another path, plain http off loopback, extras in the URI:
    ("https://hub.example.org/services/make-login/callback", {}, None),
    ("https://hub.example.org/services/other/callback", HUB_ENV, None),
    ("https://hub.example.org/jh/services/make-login/callback", HUB_ENV, None),
    ("http://hub.example.org/services/make-login/callback", HUB_ENV, None),
    ("https://u@hub.example.org/services/make-login/callback", HUB_ENV, None),
    ("https://hub.example.org/services/make-login/callback?x=1", HUB_ENV, None),
    ("http://127.0.0.1:8765/callback", HUB_ENV, None),
])
def test_hub_target(uri, env, api):
    target = hub_target(uri, env)
    assert (target.api if target else None) == api


def test_the_token_stays_out_of_reprs():
    target = hub_target("https://hub.example.org/services/make-login/callback", HUB_ENV)
    assert "t0k3n" not in repr(target)
    relay = HubRelay("https://hub.example.org/services/make-login/callback", S1,
                     target=target, is_pending=lambda s: True, complete=lambda u: None)
    assert "t0k3n" not in repr(relay)
    assert callback_path("/") == "/services/make-login/callback"


# -- against a real JupyterHub -----------------------------------------------------------------

@pytest.fixture
def kernel_env(hub, monkeypatch):
    """This process as alice's kernel: a token with the server role's scopes."""
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.user_token("alice"))
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/")
    return hub


def hub_auth(hub) -> MakeAuth:
    return MakeAuth(hub.client_id, issuer=hub.issuer, api_url=f"{hub.issuer}/api/v2/",
                    redirect_uri=hub.callback)


def api(hub, method, path, token=None, **kw):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.request(method, f"{hub.service}api/{path}", headers=headers, timeout=30,
                            **kw)


def title(resp: requests.Response) -> str:
    return resp.text.split("<title>", 1)[1].split("</title>", 1)[0]


def test_login_completes_through_the_service_and_only_for_its_user(kernel_env):
    hub = kernel_env
    controller = LoginController(hub_auth(hub), listen_timeout=120)
    assert controller.start()
    assert isinstance(controller.listener, HubRelay), controller.capture_error
    assert controller.listening
    reply_url = hub.authorize(controller.request.url, user="alice")
    assert reply_url.startswith(hub.callback + "?")
    code = parse_qs(urlsplit(reply_url).query)["code"][0]

    bob = hub.browser_login("bob")
    refused = bob.get(reply_url, timeout=30)
    assert refused.status_code == 403
    assert title(refused) == "Not your login"
    assert not controller.wait(1.0)  # bob's browser completed nothing
    assert controller.state == PENDING

    alice = hub.browser_login("alice")
    done = alice.get(reply_url, timeout=30)
    assert done.status_code == 200, done.text
    assert "You can close this tab" in done.text
    assert controller.wait(30)
    assert controller.state == LOGGED_IN
    assert controller.auth.session.logged_in
    assert controller.auth.session.get("users/me").status_code == 200

    replay = alice.get(reply_url, timeout=30)
    assert replay.status_code == 409
    assert title(replay) == "Already used"

    log = hub.log_text()
    assert "make-login]" in log  # the service's lines are in this log
    assert code not in log


def test_a_browser_not_logged_into_the_hub_is_sent_to_log_in(kernel_env):
    hub = kernel_env
    controller = LoginController(hub_auth(hub), listen_timeout=120)
    controller.start()
    reply_url = hub.authorize(controller.request.url, user="alice")
    stranger = requests.Session()
    resp = stranger.get(reply_url, timeout=30, allow_redirects=False)
    assert resp.status_code == 302
    assert "/hub/api/oauth2/authorize" in resp.headers["Location"]
    assert not controller.wait(0.5)
    # logging in on the way completes it
    alice = hub.browser_login("alice")
    assert alice.get(reply_url, timeout=30).status_code == 200
    assert controller.wait(30) and controller.state == LOGGED_IN
    assert parse_qs(urlsplit(reply_url).query)["code"][0] not in hub.log_text()


def test_expired_state_is_refused(hub):
    token = hub.user_token("alice")
    resp = api(hub, "POST", "pending", token, json={"state": S1, "lifetime": 1})
    assert resp.status_code == 201 and resp.json()["lifetime"] == 1
    time.sleep(1.3)
    alice = hub.browser_login("alice")
    page = alice.get(f"{hub.callback}?code=late-code-1&state={S1}", timeout=30)
    assert page.status_code == 410
    assert title(page) == "Unknown or expired login"
    assert api(hub, "GET", f"reply?state={S1}", token).status_code == 404
    assert "late-code-1" not in hub.log_text()


def test_the_api_wants_a_users_token_with_the_access_scope(hub):
    assert api(hub, "POST", "pending", None, json={"state": S2}).status_code == 403
    assert api(hub, "POST", "pending", "not-a-token", json={"state": S2}).status_code == 403
    narrow = hub.user_token("alice", scopes=["users:activity!user"])
    assert api(hub, "POST", "pending", narrow, json={"state": S2}).status_code == 403
    # a service's token (the tester holds the access scope) is no user's kernel
    assert api(hub, "POST", "pending", hub.tester_token, json={"state": S2}).status_code == 403
    alice = hub.user_token("alice")
    assert api(hub, "POST", "pending", alice, json={"state": S2}).status_code == 201
    # a browser's cookie is not enough for the API (no CSRF surface)
    browser = hub.browser_login("alice")
    browser.get(hub.service + "callback", timeout=30)  # logs the browser into the service
    assert browser.get(f"{hub.service}api/reply?state={S2}", timeout=30).status_code == 403


def test_another_users_kernel_cannot_register_or_take_a_state(hub):
    state = "C" * 43
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    assert api(hub, "POST", "pending", alice, json={"state": state}).status_code == 201
    assert api(hub, "POST", "pending", bob, json={"state": state}).status_code == 409
    browser = hub.browser_login("alice")
    assert browser.get(f"{hub.callback}?code=c0de-2&state={state}", timeout=30).status_code == 200
    assert api(hub, "GET", f"reply?state={state}", bob).status_code == 404
    got = api(hub, "GET", f"reply?state={state}", alice)
    assert got.status_code == 200
    assert parse_qs(got.json()["reply"])["code"] == ["c0de-2"]
    assert api(hub, "GET", f"reply?state={state}", alice).status_code == 404  # once


def test_bad_registrations(hub):
    alice = hub.user_token("alice")
    for body in ({"state": "no"}, {"state": S1, "lifetime": "long"},
                 {"state": S1, "lifetime": True}):
        assert api(hub, "POST", "pending", alice, json=body).status_code == 400
    assert api(hub, "POST", "pending", alice, data=b"[not json").status_code == 400
    big = api(hub, "POST", "pending", alice, json={"state": S1, "pad": "x" * 10_000})
    assert big.status_code == 413


def test_paste_mode_when_the_service_cannot_be_reached(hub, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "whatever")
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/")
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = MakeAuth(hub.client_id, issuer=hub.issuer,
                    redirect_uri=f"http://127.0.0.1:{port}/services/make-login/callback")
    controller = LoginController(auth)
    assert controller.start()
    assert controller.listener is None
    assert controller.capture_error.startswith("Paste mode: JupyterHub's make-login service")
    assert "whatever" not in controller.capture_error


def test_relay_ends_when_the_service_forgets_the_state(kernel_env):
    hub = kernel_env
    outcomes: list[str] = []
    relay = HubRelay(hub.callback, "D" * 43,
                     target=HubTarget(api=f"{hub.service}api/",
                                      token=__import__("os").environ["JUPYTERHUB_API_TOKEN"]),
                     is_pending=lambda s: True, complete=lambda u: None,
                     on_done=outcomes.append, timeout=1.5)
    assert relay.start()
    assert relay.wait(30) == "timeout"
    assert outcomes == ["timeout"]
    assert not relay.listening


def test_pasting_first_stops_the_relay_and_the_service_forgets_the_state(kernel_env):
    hub = kernel_env
    controller = LoginController(hub_auth(hub), listen_timeout=120)
    controller.start()
    relay = controller.listener
    assert isinstance(relay, HubRelay)
    reply_url = hub.authorize(controller.request.url, user="alice")
    assert controller.finish(reply_url, source="paste")
    assert relay.wait(10) == "stopped"
    alice = hub.browser_login("alice")
    late = alice.get(reply_url, timeout=30)
    assert late.status_code == 410  # nothing kept waiting for a login that is done


def test_oauth_errors_are_logged_without_the_query(hub):
    browser = hub.browser_login("alice")
    resp = browser.get(f"{hub.service}oauth_callback?code=hub-oauth-c0de-9&state=bogus",
                       timeout=30)
    assert resp.status_code >= 400
    deadline = time.monotonic() + 5
    while "GET /services/make-login/oauth_callback (" not in hub.log_text():
        assert time.monotonic() < deadline, "the service did not log the refused request"
        time.sleep(0.1)
    assert "hub-oauth-c0de-9" not in hub.log_text()


def test_a_kernel_cannot_ask_for_more_than_the_services_lifetime(hub):
    alice = hub.user_token("alice")
    resp = api(hub, "POST", "pending", alice, json={"state": "F" * 43, "lifetime": 3600})
    assert resp.status_code == 201
    assert resp.json()["lifetime"] == 300  # configure()'s default lifetime, 5 minutes
    api(hub, "DELETE", f"pending?state={'F' * 43}", alice)
