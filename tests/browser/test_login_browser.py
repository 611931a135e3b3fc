"""The login panel in a real browser: JupyterLab 4 and Notebook 7, Chromium via Playwright.

Scenario 1 (paste): ``%make_login`` with a non-loopback redirect URI; the link opens the test
provider's sign-in page in a new tab, the test signs in and approves there, takes the redirect
URL (routed by Playwright, so nothing leaves 127.0.0.1), pastes it into the panel and submits.
Scenario 2 (loopback): the redirect goes to the kernel's listener; no paste.
Sandbox: ``%make_login --sandbox``, the sandbox's own sign-in page, loopback capture.
(The Binder-like run of the quickstart is in test_binder_quickstart.py.)
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from conftest import ARTIFACTS, PASTE_REDIRECT  # noqa: E402
from jupyter_ui import FRONTENDS, LAB, cell, open_notebook, run_all, run_cell, save  # noqa: E402
from playwright.sync_api import expect  # noqa: E402
from providers import loopback_redirect_uri  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = ROOT / "docs" / "login-panel.png"
API_CELL = 'r = make.get("users/me")\nprint("API", r.status_code, r.json()["authUser"]["email"])'


@pytest.fixture(params=FRONTENDS, ids=str)
def frontend(request):
    return request.param


@pytest.fixture(autouse=True)
def _kernels_shut_down(request):
    yield
    for name in ("jupyter", "hub_jupyter"):
        if name in request.fixturenames:
            request.getfixturevalue(name).shutdown_kernels()


def loopback_port() -> int:
    """This run's free loopback port registered at the providers (see tests/providers.py)."""
    return int(urlsplit(loopback_redirect_uri()).port)


def login_notebook(server, name: str, login_line: str) -> None:
    server.write_notebook(name, ["%load_ext make_notebook_auth", login_line, API_CELL])


def start_login(page, server, frontend, name):
    """Open the notebook, Run All, check the pending session's error; return the panel."""
    open_notebook(page, server, frontend, name)
    run_all(page)
    panel = page.locator(".make-login-panel")
    expect(panel).to_be_visible(timeout=60_000)  # Run All on a busy machine can be slow
    # Run All went on to the API cell: the pending session says to finish the login first.
    pending = cell(page, 2).locator(".jp-OutputArea")
    expect(pending).to_contain_text("LoginPendingError: The Make login is not finished yet")
    expect(pending).to_contain_text("in the login panel")
    expect(pending).not_to_contain_text("Traceback")  # the sentence, not 25 lines of requests
    link = panel.locator(".make-login-link a")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_contain_text("sign-in page")
    return panel


def open_sign_in(page, panel):
    with page.expect_popup() as info:
        panel.locator(".make-login-link a").click()
    popup = info.value
    popup.wait_for_load_state()
    return popup


def paste_and_submit(panel, reply: str, *, enter: bool) -> None:
    field = panel.locator(".make-login-paste input")
    field.fill(reply)
    if enter:
        field.press("Enter")
    else:
        panel.locator(".make-login-submit").click()


def expect_logged_in(panel, name: str, email: str, service: str = "Make") -> None:
    expect(panel.locator(".make-login-status")).to_contain_text(
        f"Logged in to {service} as {name} ({email})")
    # The status icon is Font Awesome (shipped with ipywidgets), not an emoji that renders as
    # an empty box without an emoji font.
    icon = panel.locator(".make-login-status i.fa")
    expect(icon).to_have_count(1)
    assert "awesome" in icon.evaluate("e => getComputedStyle(e).fontFamily").lower()
    expect(panel.locator(".make-login-userinfo table")).to_contain_text(email)
    expect(panel.locator(".make-login-paste")).to_be_hidden()
    expect(panel.locator(".make-login-link a")).to_have_count(0)


def expect_api_ok(page, email: str) -> None:
    run_cell(page, 2)
    expect(cell(page, 2).locator(".jp-OutputArea")).to_contain_text(f"API 200 {email}")


def expect_saved_without_secrets(page, path: Path, code: str) -> None:
    save(page)
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text()
        if "API 200" in text:
            break
        page.wait_for_timeout(300)  # not time.sleep: routed requests need Playwright's loop
    assert "API 200" in text, "the notebook was not saved"
    # The widget state was saved too (saveState is on), and holds the logged-in panel.
    assert "application/vnd.jupyter.widget-state+json" in text
    assert "Logged in to Make as" in text
    assert code not in text
    assert "access_token" not in text
    assert "code_verifier" not in text


def expect_no_horizontal_overflow(panel) -> None:
    """No element of the panel, nor the output area around it, scrolls sideways (a clipped
    overflow counts too)."""
    wide = panel.evaluate("""panel => {
        const area = panel.closest('.jp-OutputArea-output') || panel.parentElement;
        const all = [area, ...area.querySelectorAll('*')];
        return all.filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
                  .map(e => `${e.tagName}.${[...e.classList].join('.')} ` +
                            `${e.scrollWidth}>${e.clientWidth}`);
    }""")
    assert wide == [], f"horizontal overflow: {wide}"


def save_panel_screenshot(page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "login-panel.png"
    cell(page, 1).screenshot(path=str(shot))
    if os.environ.get("MAKE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_scenario_1_paste(jupyter, page, frontend, oidc_provider, callback_hits):
    name = f"paste-{frontend}.ipynb"
    # Typed the way people type it: quoted values, one with spaces.
    login_notebook(jupyter, name, f'make = %make_login --redirect-uri "{PASTE_REDIRECT}" '
                                  "--scopes 'openid user:read  scenarios:read'")
    panel = start_login(page, jupyter, frontend, name)
    expect(panel.locator(".make-login-instructions")).to_contain_text(
        "app.example.test/callback?code=")
    href = panel.locator(".make-login-link a").get_attribute("href")
    assert "&scope=openid+user%3Aread+scenarios%3Aread&" in href  # no quotes sent
    expect(panel.locator(".make-login-secret-box")).to_have_count(0)  # a public client
    expect_no_horizontal_overflow(panel)

    popup = open_sign_in(page, panel)
    expect(popup.locator("h1")).to_contain_text("Sign in")
    popup.locator("#approve").click()
    popup.wait_for_url(re.compile(r"^https://app\.example\.test/callback\?"))
    reply = popup.url
    assert "code=" in reply and "state=" in reply
    assert callback_hits == [reply]  # answered by the route, not looked up on the network
    expect(popup.locator("body")).to_contain_text("Redirect URI stand-in")
    popup.close()

    paste_and_submit(panel, reply, enter=frontend is not LAB)
    user = oidc_provider.users["alice"]
    expect_logged_in(panel, user["name"], user["email"])
    expect_api_ok(page, user["email"])
    code = reply.split("code=")[1].split("&")[0]
    expect_saved_without_secrets(page, jupyter.root / name, code)


def test_scenario_2_loopback(jupyter, page, frontend, oidc_provider):
    port = loopback_port()
    name = f"loopback-{frontend}.ipynb"
    login_notebook(jupyter, name,
                   f"make = %make_login --redirect-uri http://127.0.0.1:{port}/callback")
    panel = start_login(page, jupyter, frontend, name)
    expect(panel.locator(".make-login-status")).to_contain_text(f"listening on 127.0.0.1:{port}")

    popup = open_sign_in(page, panel)
    popup.locator("#approve").click()
    popup.wait_for_url(re.compile(rf"^http://127\.0\.0\.1:{port}/callback\?"))
    expect(popup.locator("body")).to_contain_text("You can close this tab")
    popup.close()

    user = oidc_provider.users["alice"]
    expect_logged_in(panel, user["name"], user["email"])
    expect_api_ok(page, user["email"])


def test_sandbox_loopback(jupyter, page, frontend):
    pytest.importorskip("authlib")
    from make_notebook_auth.sandbox import DEMO_USERS

    port = loopback_port()  # the sandbox takes any loopback port
    name = f"sandbox-{frontend}.ipynb"
    login_notebook(jupyter, name,
                   f"make = %make_login --sandbox --redirect-uri http://127.0.0.1:{port}/callback")
    panel = start_login(page, jupyter, frontend, name)
    expect(cell(page, 1).locator(".jp-OutputArea")).to_contain_text("local Make sandbox")
    if frontend is LAB:
        save_panel_screenshot(page)  # docs/login-panel.png with MAKE_DOCS_SCREENSHOT=1

    expect(panel.locator(".make-login-secret-box")).to_have_count(0)  # the sandbox needs none
    popup = open_sign_in(page, panel)
    expect(popup.locator("h1")).to_contain_text("Make sandbox")
    popup.locator("button.approve").click()
    expect(popup.locator("body")).to_contain_text("You can close this tab")
    expect(popup.locator("h1")).to_have_text("Logged in to the Make sandbox")
    popup.close()

    alice = DEMO_USERS["alice"]
    expect_logged_in(panel, alice.name, alice.email, service="the Make sandbox")
    expect_api_ok(page, alice.email)


def test_confidential_secret_in_panel(jupyter, page, oidc_provider, callback_hits):
    """The client secret typed into the panel's password field: used, never kept in a widget."""
    secret = oidc_provider.confidential_client_secret
    name = "secret-lab.ipynb"
    login_notebook(jupyter, name, "make = %make_login --confidential --client-id "
                   f"{oidc_provider.confidential_client_id} --redirect-uri {PASTE_REDIRECT}")
    panel = start_login(page, jupyter, LAB, name)
    panel.locator(".make-login-secret-box").get_by_text("Client secret").first.click()
    field = panel.locator(".make-login-secret input[type=password]")
    expect(field).to_be_visible()
    expect_no_horizontal_overflow(panel)  # opened: no horizontal scroll bar
    field.fill(secret)
    field.press("Enter")
    expect(field).to_have_value("")
    expect(field).to_have_attribute("placeholder", re.compile("Received"))

    popup = open_sign_in(page, panel)
    popup.locator("#approve").click()
    popup.wait_for_url(re.compile(r"^https://app\.example\.test/callback\?"))
    reply = popup.url
    popup.close()
    paste_and_submit(panel, reply, enter=True)
    user = oidc_provider.users["alice"]
    expect_logged_in(panel, user["name"], user["email"])
    expect_api_ok(page, user["email"])
    code = reply.split("code=")[1].split("&")[0]
    expect_saved_without_secrets(page, jupyter.root / name, code)
    assert secret not in (jupyter.root / name).read_text()
