"""Zero-paste login on JupyterHub, in a real browser (Chromium via Playwright).

A real JupyterHub (``fixtures_hub``: configurable-http-proxy, two users, local single-user
servers, the ``make-login`` service from ``configure()``) and the test OpenID provider, whose
client has the hub's ``{hub}/services/make-login/callback`` as its redirect URI. The kernel has
no loopback redirect URI at all, so the login can only complete through the service.

User A (alice) logs into the hub, opens a notebook on her server, runs ``%make_login`` and
approves at the provider. Her browser's redirect to the callback is held back once, so that
user B (bob), logged into the hub in another browser, presents A's reply first: refused, and
A's login is not touched. Then A's reply goes through: the panel completes with no paste, and
the same reply presented again is refused. A state that expired is refused too, and the hub's
log (hub, proxy, service, single-user servers) holds no code.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
import requests

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from conftest import JUPYTER_ORIGINS, UI_TIMEOUT  # noqa: E402
from jupyter_ui import cell, run_all, run_cell, wait_kernel  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

API_CELL = 'r = make.get("users/me")\nprint("API", r.status_code, r.json()["authUser"]["email"])'


@pytest.fixture(scope="module")
def hub_origin(hub):
    """The hub's pages are served as they are (not treated as a provider's) in the browser."""
    origin = hub.url.rstrip("/")
    JUPYTER_ORIGINS.add(origin)
    yield hub
    JUPYTER_ORIGINS.discard(origin)
    hub.stop_servers()


def hub_login(page, hub, user: str) -> None:
    page.goto(f"{hub.url}hub/login")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill(hub.password)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(r"/(hub/(home|spawn|spawn-pending)|user)/"))


def write_notebook(hub, user: str, name: str) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(src)
               for src in ("%load_ext make_notebook_auth", "make = %make_login", API_CELL)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}},
    )
    nbformat.write(nb, hub.home / "users" / user / name)


def title_of(page) -> str:
    return page.locator("h1.make-login-title").inner_text()


def test_zero_paste_login_through_the_hub_service(hub_origin, browser, context, page):
    hub = hub_origin
    write_notebook(hub, "alice", "hub-login.ipynb")

    # User A: logged into the hub, her server started, the notebook run.
    hub_login(page, hub, "alice")
    page.goto(f"{hub.url}user/alice/lab/tree/hub-login.ipynb?reset")
    wait_kernel(page)
    run_all(page)
    panel = page.locator(".make-login-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".make-login-status")).to_contain_text(
        "waiting through JupyterHub's make-login service")

    # A approves at the provider; her browser's redirect to the callback is held back once.
    held: list[str] = []

    def hold(route):
        held.append(route.request.url)
        route.fulfill(status=200, content_type="text/html",
                      body="<!doctype html><title>held</title><p>held back by the test</p>")

    pattern = re.compile(re.escape(hub.callback) + r"\?")
    context.route(pattern, hold)
    # The test provider is on loopback, so the panel's link goes through the single-user
    # server's jupyter-server-proxy (as the sandbox's does on a hub); Make's sign-in page is
    # not on loopback. Open the provider's own address, as the link would be for Make.
    href = panel.locator(".make-login-link a").get_attribute("href")
    proxied = re.fullmatch(r"/user/alice/proxy/(\d+)(/oauth/v2/authorize\?.*)", href)
    assert proxied, href
    assert f"http://127.0.0.1:{proxied.group(1)}" == hub.issuer
    popup = context.new_page()
    popup.goto(hub.issuer + proxied.group(2).replace("&amp;", "&"))
    popup.locator("#approve").click()
    popup.wait_for_url(pattern)
    expect(popup.locator("body")).to_contain_text("held back by the test")
    context.unroute(pattern, hold)
    assert len(held) == 1
    reply = held[0]
    code = parse_qs(urlsplit(reply).query)["code"][0]

    # User B, in another browser logged into the hub as bob, presents A's reply: refused.
    other = browser.new_context()
    other.set_default_timeout(UI_TIMEOUT)
    try:
        bob = other.new_page()
        hub_login(bob, hub, "bob")
        bob.goto(reply)
        expect(bob.locator("h1.make-login-title")).to_have_text("Not your login")
        expect(bob.locator("body")).to_contain_text("another JupyterHub user")
    finally:
        other.close()
    page.wait_for_timeout(1500)
    expect(panel.locator(".make-login-status")).to_contain_text("waiting through JupyterHub")

    # A's reply goes through: the panel completes by itself, no paste.
    popup.goto(reply)
    expect(popup.locator("h1.make-login-title")).to_have_text("Handed to your notebook")
    expect(popup.locator("body")).to_contain_text("You can close this tab")
    status = panel.locator(".make-login-status")
    expect(status).to_contain_text("Logged in to Make as Alice Analyst (alice@example.com)",
                                   timeout=60_000)
    expect(panel.locator(".make-login-paste input")).to_have_value("")
    run_cell(page, 2)
    expect(cell(page, 2).locator(".jp-OutputArea")).to_contain_text("API 200 alice@example.com")

    # The same reply again (a replay): refused.
    popup.goto(reply)
    expect(popup.locator("h1.make-login-title")).to_have_text("Already used")

    # An expired state: registered by alice's kernel token for one second, presented later.
    token = hub.user_token("alice")
    state = "E" * 43
    resp = requests.post(f"{hub.service}api/pending", json={"state": state, "lifetime": 1},
                         headers={"Authorization": f"token {token}"}, timeout=30)
    assert resp.status_code == 201
    time.sleep(1.5)
    popup.goto(f"{hub.callback}?code=expired-c0de-7&state={state}")
    expect(popup.locator("h1.make-login-title")).to_have_text("Unknown or expired login")

    log = hub.log_text()
    assert "GET /services/make-login/callback" in log  # the service's requests are logged...
    assert code not in log  # ... without their codes
    assert "expired-c0de-7" not in log
