"""notebooks/quickstart.ipynb, executed headless with nbclient; the test plays the browser.

The notebook is run cell by cell in a real kernel. After the login cell the test reads the
sign-in link from the panel's plain-text output, signs in and approves on the provider's page
(with plain HTTP), and sends the browser's redirect to the kernel's loopback listener, exactly
as a browser tab would. Nothing in the notebook exists only for tests.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
import requests
from providers import loopback_redirect_uri as loopback_uri

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
LINK = re.compile(r"https?://[^\s'\"]+/oauth/v2/authorize\?[^\s'\"]+")
CELL_TIMEOUT = 120

nbclient = pytest.importorskip("nbclient")


@pytest.fixture(autouse=True)
def someone_at_the_keyboard(monkeypatch):
    """nbclient sends cells with allow_stdin false, which the package reads as "no one to
    click"; here the test plays the person who approves in the browser, so it says so."""
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_HEADLESS", "0")



def text_of(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("display_data", "execute_result"):
            data = out.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def browser_get(url: str) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    return s.get(url, timeout=60, allow_redirects=False)


def run_quickstart(tmp_path, authorize) -> tuple[nbformat.NotebookNode, dict]:
    """Execute the quickstart; ``authorize(link)`` returns the redirect the browser would get."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    seen: dict = {}
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            if "%make_login" in cell.source:
                text = text_of(cell)
                links = LINK.findall(text)
                assert links, f"no sign-in link in the login cell's output:\n{text}"
                seen["link"] = links[-1]
                seen["login_output"] = text
                redirect = authorize(links[-1])
                seen["redirect"] = redirect
                assert urlsplit(redirect).hostname == "127.0.0.1"
                started = time.monotonic()
                response = browser_get(redirect)  # the browser tab reaching the kernel
                seen["loopback_seconds"] = time.monotonic() - started
                assert response.status_code == 200, response.text
                assert "close this tab" in response.text
    return nb, seen


def cell_with(nb, snippet):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def check_executed(nb, seen, user_name: str, user_email: str) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{cell.source!r} failed: {text_of(cell)}"
    assert f"Logged in as {user_name} <{user_email}>" in text_of(cell_with(nb, "users/me"))
    assert "organizations" in cell_with(nb, "make.frame").source
    orgs = text_of(cell_with(nb, "make.frame"))
    assert "name" in orgs
    at_scale = text_of(cell_with(nb, "make.orgs()"))
    assert "apiLimit" in at_scale and "127.0.0.1:" in at_scale  # the sandbox's zones
    fan_out = text_of(cell_with(nb, 'per="team"'))
    assert "organizationId" in fan_out and "teamId" in fan_out
    assert "Skipped what this login may not read" in fan_out  # alice's team 6
    userinfo = text_of(cell_with(nb, "%make_userinfo"))
    assert user_email in userinfo
    assert "Logged out of Make" in text_of(cell_with(nb, "%make_logout"))
    # Nothing secret in the executed notebook (outputs and widget state).
    saved = nbformat.writes(nb)
    code = seen["redirect"].split("code=")[1].split("&")[0]
    assert code not in saved
    assert "access_token" not in saved
    widget_state = json.dumps(nb.metadata.get("widgets", {}))
    assert code not in widget_state


def test_quickstart_with_sandbox_when_unconfigured(tmp_path, monkeypatch):
    """No MAKE_CLIENT_ID: the notebook says so and logs into the sandbox it starts."""
    pytest.importorskip("authlib")
    from fixtures_sandbox import make_authorize

    from make_notebook_auth.sandbox import DEMO_USERS

    # The sandbox takes any loopback port: listen on a free one, not the default.
    monkeypatch.setenv("MAKE_REDIRECT_URI", loopback_uri())

    def authorize(link):
        parts = urlsplit(link)
        return make_authorize(f"{parts.scheme}://{parts.netloc}")(link)

    started = time.monotonic()
    nb, seen = run_quickstart(tmp_path, authorize)
    alice = DEMO_USERS["alice"]
    assert "local Make sandbox" in seen["login_output"]
    check_executed(nb, seen, alice.name, alice.email)
    print(f"quickstart (sandbox) executed in {time.monotonic() - started:.1f} s")


def test_quickstart_with_configured_client(tmp_path, monkeypatch, sandbox_provider):
    """MAKE_* settings in the kernel's environment (a Make client; here the test sandbox)."""
    provider = sandbox_provider
    monkeypatch.setenv("MAKE_ISSUER", provider.issuer)
    monkeypatch.setenv("MAKE_API_URL", provider.api_url)
    monkeypatch.setenv("MAKE_CLIENT_ID", provider.public_client_id)
    monkeypatch.setenv("MAKE_REDIRECT_URI", loopback_uri())
    nb, seen = run_quickstart(tmp_path, provider.authorize)
    assert "local Make sandbox" not in seen["login_output"]
    alice = provider.users["alice"]
    check_executed(nb, seen, alice["name"], alice["email"])


@pytest.mark.parametrize("env, sandbox", [
    ({}, True),
    ({"MAKE_CLIENT_ID": "my-client"}, False),
    ({"MAKE_ZONE": "eu1"}, False),
    ({"MAKE_CLIENT_SECRET": "real-secret"}, False),
    ({"MAKE_API_URL": "https://eu1.make.com/api/v2"}, False),
    ({"MAKE_ISSUER": "https://www.make.com"}, False),
])
def test_login_cell_uses_the_sandbox_only_without_make_settings(monkeypatch, env, sandbox):
    """The sandbox is never switched on implicitly when real Make settings are present: a
    half-configured client (say MAKE_ZONE without MAKE_CLIENT_ID) gets %make_login's error."""
    from IPython.core.interactiveshell import InteractiveShell

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    lines: list[str] = []
    shell = InteractiveShell.instance()
    shell.register_magic_function(lambda line: lines.append(line) or "session",
                                  magic_kind="line", magic_name="make_login")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    login = cell_with(nb, "%make_login")
    try:
        result = shell.run_cell(login.source)
    finally:
        shell.magics_manager.magics["line"].pop("make_login", None)
    assert result.success, result.error_in_exec
    assert len(lines) == 1
    assert ("--sandbox" in lines[0]) is sandbox


def test_install_instructions_agree_and_install_from_the_checkout():
    readme = (ROOT / "README.md").read_text()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "pip install -e '.[quickstart]'" in readme
    assert "pip install -e '.[quickstart]'" in markdown
    assert "'.[sandbox]'" not in markdown  # the command the README gives, not another one
    pip_lines = [line.strip() for line in code.splitlines() if "%pip install" in line]
    assert pip_lines, "the notebook's fallback install is gone"
    for line in pip_lines:  # never an index, where the package is not published
        assert line.startswith('%pip install -e "{checkout}['), line


def test_readme_has_no_placeholders_and_links_the_client_request_page():
    readme = (ROOT / "README.md").read_text()
    assert "<this repository>" not in readme
    assert ("(https://developers.make.com/api-documentation/authentication/"
            "requesting-an-oauth-2.0-client)") in readme
    assert "`--client-id ID`" in readme
    assert "python3 -m venv .venv && . .venv/bin/activate" in readme
