"""notebooks/quickstart.ipynb as on Binder, in a real browser.

The server runs under ``/user/ana/`` with ``JUPYTERHUB_SERVICE_PREFIX`` set for its kernels, no
Make client configured, and ``binder/workspace.json`` imported as postBuild does. Opening ``/lab``
shows the quickstart; its login cell starts the sandbox, whose sign-in page the browser reaches
through jupyter-server-proxy. As on Binder, the browser cannot reach the kernel's loopback
address, so the reply is pasted into the panel.
"""

from __future__ import annotations

import re

import nbformat
import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from conftest import ROOT  # noqa: E402
from jupyter_ui import cell, run_cell, wait_idle, wait_kernel  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def _unreachable(route):
    # What a browser shows when the kernel's loopback is on another machine.
    route.fulfill(status=502, content_type="text/html",
                  body="<!doctype html><title>unreachable</title><p>This site can't be reached</p>")


@pytest.fixture(autouse=True)
def _kernels_shut_down(hub_jupyter):
    yield
    hub_jupyter.shutdown_kernels()


def test_quickstart_on_binder(hub_jupyter, page):
    pytest.importorskip("authlib")
    pytest.importorskip("jupyter_server_proxy")
    from make_notebook_auth.sandbox import DEMO_USERS

    page.context.route(re.compile(r"^http://(127\.0\.0\.1|localhost):\d+/callback"), _unreachable)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    login = next(i for i in code if "%make_login" in nb.cells[i].source)

    page.goto(f"{hub_jupyter.url}lab?token={hub_jupyter.token}")
    expect(page.locator(".lm-TabBar-tabLabel", has_text="quickstart.ipynb").first).to_be_visible()
    wait_kernel(page)

    for index in [i for i in code if i <= login]:
        run_cell(page, index)
        wait_idle(page)
    output = cell(page, login).locator(".jp-OutputArea")
    expect(output).to_contain_text("local Make sandbox")
    panel = page.locator(".make-login-panel")
    link = panel.locator(".make-login-link a")
    expect(link).to_have_attribute("href", re.compile(r"^/user/ana/proxy/\d+/oauth/v2/authorize\?"))

    with page.expect_popup() as info:
        link.click()
    popup = info.value
    assert "/user/ana/proxy/" in popup.url
    expect(popup.locator("h1")).to_contain_text("Make sandbox")
    popup.locator("button.approve").click()
    popup.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/callback\?code="))
    expect(popup.locator("body")).to_contain_text("can't be reached")
    reply = popup.url
    popup.close()

    field = panel.locator(".make-login-paste input")
    field.fill(reply)
    field.press("Enter")
    alice = DEMO_USERS["alice"]
    expect(panel.locator(".make-login-status")).to_contain_text(
        f"Logged in to the Make sandbox as {alice.name} ({alice.email})")

    for index in [i for i in code if i > login]:
        run_cell(page, index)
        wait_idle(page)
        expect(cell(page, index).locator(".jp-OutputArea-output[data-mime-type*='error'], "
                                          ".jp-RenderedText[data-mime-type*='stderr']")
               ).to_have_count(0)
    source = {i: nb.cells[i].source for i in code}
    who = next(i for i in code if "users/me" in source[i])
    expect(cell(page, who)).to_contain_text(f"Logged in as {alice.name} <{alice.email}>")
    userinfo = next(i for i in code if "%make_userinfo" in source[i])
    expect(cell(page, userinfo).locator("table")).to_contain_text(alice.email)
    logout = next(i for i in code if "%make_logout" in source[i])
    expect(cell(page, logout)).to_contain_text("Logged out of Make")
