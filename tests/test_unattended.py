"""Runs with no one to click: what is detected, what ``%make_login`` does then, and papermill
executing ``notebooks/unattended.ipynb`` against the sandbox in each of the three cases (an API
token, a remembered login that is refreshed, nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from make_notebook_auth import MakeAuth, UnattendedLoginError
from make_notebook_auth.unattended import HEADLESS_ENV, headless_reason

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "unattended.ipynb"
KERNEL = "make-notebook-auth-test"


class FakeKernel:
    def __init__(self, allow_stdin):
        self.allow_stdin = allow_stdin

    def get_parent(self, channel=None):
        return {"content": {"code": "make = %make_login", "allow_stdin": self.allow_stdin}}


class FakeShell:
    def __init__(self, allow_stdin):
        self.kernel = FakeKernel(allow_stdin)


# --- detection --------------------------------------------------------------------------------


def test_a_cell_sent_without_stdin_means_no_one_to_click(monkeypatch):
    monkeypatch.delenv(HEADLESS_ENV, raising=False)
    assert "papermill" in headless_reason(FakeShell(False))
    assert headless_reason(FakeShell(True)) is None  # JupyterLab, Notebook, VS Code, Colab
    assert headless_reason(None) is None  # outside a kernel nothing is guessed


@pytest.mark.parametrize("value, allow_stdin, headless", [
    ("1", True, True), ("true", None, True), ("0", False, False), ("no", False, False),
    ("", False, True), ("", True, False),
])
def test_the_environment_overrides_the_guess(monkeypatch, value, allow_stdin, headless):
    monkeypatch.setenv(HEADLESS_ENV, value)
    shell = FakeShell(allow_stdin) if allow_stdin is not None else None
    assert (headless_reason(shell) is not None) is headless


def test_headless_login_without_credentials_fails_at_first_use(rec, monkeypatch, sandbox_server):
    from make_notebook_auth.magics import Context

    monkeypatch.setenv(HEADLESS_ENV, "1")
    context = Context(FakeShell(False), widgets=True, out=rec.say, display=rec.shown.append)
    started = time.monotonic()
    make = context.login(api_url=sandbox_server.api_url)
    assert time.monotonic() - started < 5  # no panel, no listener, no prompt
    assert not rec.shown
    with pytest.raises(UnattendedLoginError) as info:
        make.get("users/me")
    message = str(info.value)
    assert "MAKE_API_TOKEN" in message and "--remember" in message
    with pytest.raises(UnattendedLoginError):
        make.get("https://hook.eu1.make.com/x")  # any use, before anything is sent
    assert "Running notebooks unattended" in message


def test_headless_login_prefers_a_live_login(rec, monkeypatch, sandbox_server, sandbox_provider):
    from make_notebook_auth.magics import Context

    auth = MakeAuth(sandbox_provider.public_client_id, issuer=sandbox_provider.issuer,
                    api_url=sandbox_provider.api_url, redirect_uri=sandbox_provider.redirect_uri)
    live = auth.finish(sandbox_provider.authorize(auth.start().url))
    monkeypatch.setenv("MAKE_API_TOKEN", sandbox_server.api_token)
    monkeypatch.setenv(HEADLESS_ENV, "1")
    context = Context(FakeShell(False), widgets=True, out=rec.say, display=rec.shown.append)
    settings = {"issuer": sandbox_provider.issuer, "api_url": sandbox_provider.api_url,
                "client_id": sandbox_provider.public_client_id}
    assert context.login(**settings) is live


# --- papermill, for real ----------------------------------------------------------------------


@pytest.fixture
def run_papermill(tmp_path, monkeypatch):
    """``run(**env)`` executes notebooks/unattended.ipynb with the papermill command in a
    kernel of this Python (a kernelspec in a temporary JUPYTER_PATH), the MAKE_* settings
    in ``env``; returns (exit status, output notebook, stderr)."""
    pytest.importorskip("papermill")
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "make-notebook-auth tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv(HEADLESS_ENV, raising=False)  # papermill itself must be detected
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    def run(**env: str) -> tuple[int, nbformat.NotebookNode, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        out = tmp_path / f"out-{time.monotonic_ns()}.ipynb"
        done = subprocess.run(
            [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), "-k", KERNEL,
             "--cwd", str(tmp_path), "--execution-timeout", "60", "--no-progress-bar"],
            capture_output=True, text=True, timeout=240)
        return done.returncode, nbformat.read(out, as_version=4), done.stderr

    return run


def outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
            else:
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_papermill_with_an_api_token(run_papermill, sandbox_server):
    status, nb, err = run_papermill(MAKE_API_TOKEN=sandbox_server.api_token,
                                    MAKE_API_URL=sandbox_server.api_url)
    text = outputs(nb)
    assert status == 0, err[-2000:]
    assert "Running as Alice Analyst <alice@example.test>" in text
    assert "API token from MAKE_API_TOKEN" in text
    assert "Acme Analytics" in text  # the organizations frame
    assert sandbox_server.api_token not in nbformat.writes(nb)


def test_papermill_with_a_remembered_login_refreshes_it(run_papermill, sandbox_provider):
    from make_notebook_auth import cache

    p = sandbox_provider
    settings = {"MAKE_CLIENT_ID": p.short_confidential_client_id,
                "MAKE_CLIENT_SECRET": p.short_confidential_client_secret,
                "MAKE_ISSUER": p.issuer, "MAKE_API_URL": p.api_url}
    auth = MakeAuth(settings["MAKE_CLIENT_ID"], settings["MAKE_CLIENT_SECRET"], issuer=p.issuer,
                    api_url=p.api_url, redirect_uri=p.redirect_uri, remember=True)
    make = auth.finish(p.authorize(auth.start().url, user="bob"))
    before = dict(make.token)
    time.sleep(p.short_ttl + 0.5)  # the access token has expired when the notebook runs
    status, nb, err = run_papermill(**settings)
    text = outputs(nb)
    assert status == 0, err[-2000:]
    assert "Running as Bob Builder" in text and "remembered login" in text
    doc = cache.load(make.config)
    assert doc is not None
    assert doc["token"]["access_token"] != before["access_token"]  # refreshed by the run
    assert doc["token"]["refresh_token"] != before["refresh_token"]  # and rotated
    saved = nbformat.writes(nb)
    for value in (before["access_token"], before["refresh_token"],
                  doc["token"]["access_token"], settings["MAKE_CLIENT_SECRET"]):
        assert value not in saved


def test_papermill_with_nothing_fails_at_once_saying_how(run_papermill, sandbox_provider):
    started = time.monotonic()
    status, nb, err = run_papermill(MAKE_CLIENT_ID=sandbox_provider.public_client_id,
                                    MAKE_ISSUER=sandbox_provider.issuer,
                                    MAKE_API_URL=sandbox_provider.api_url)
    elapsed = time.monotonic() - started
    assert status != 0
    text = outputs(nb)
    assert "UnattendedLoginError" in text
    assert "MAKE_API_TOKEN" in text and "--remember" in text
    assert "oauth/v2/authorize" not in text  # no sign-in link offered to nobody
    login_cell = next(c for c in nb.cells if c.cell_type == "code" and "%make_login" in c.source)
    assert not [o for o in login_cell.outputs if o.get("output_type") == "error"]
    assert elapsed < 120  # (no waiting for a browser: the listener would wait 300 s)
