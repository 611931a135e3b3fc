"""Real-browser fixtures: a Jupyter server on 127.0.0.1 (JupyterLab 4 and Notebook 7 on the same
server) and Playwright driving Debian's Chromium.

The tests skip, with the reason, only when Playwright or Chromium is missing; CI installs both.
Credentials reach the kernel through the server's environment (``MAKE_ISSUER``,
``MAKE_CLIENT_ID``, ``MAKE_API_URL``), never through notebook code. A failing test leaves
screenshots of every open page in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import nbformat
import pytest
import requests
from providers import LOOPBACK_PORTS, LOOPBACK_REDIRECT_URIS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]
PASTE_REDIRECT = "https://app.example.test/callback"  # registered at both providers
SERVER_START_TIMEOUT = 60.0
UI_TIMEOUT = 60_000  # ms, for the first JupyterLab load and kernel start on a slow machine

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - CI installs playwright
    sync_playwright = None


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed (pip install playwright)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the Jupyter server ------------------------------------------------------------------------

@dataclass
class JupyterServer:
    url: str  # http://127.0.0.1:PORT{base_url}
    token: str
    root: Path
    process: subprocess.Popen
    log_path: Path

    def api(self, method: str, path: str, **kw) -> requests.Response:
        s = requests.Session()
        s.trust_env = False
        return s.request(method, f"{self.url}api/{path}",
                         headers={"Authorization": f"token {self.token}"}, timeout=30, **kw)

    def shutdown_kernels(self) -> None:
        """End every session and kernel (their loopback listeners hold redirect ports)."""
        try:
            for session in self.api("GET", "sessions").json():
                self.api("DELETE", f"sessions/{session['id']}")
            for kernel in self.api("GET", "kernels").json():
                self.api("DELETE", f"kernels/{kernel['id']}")
        except requests.RequestException:
            pass

    def write_notebook(self, name: str, sources: list[str]) -> Path:
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(src) for src in sources],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}},
        )
        path = self.root / name
        nbformat.write(nb, path)
        return path

    def log_tail(self, limit: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def _settings(settings_dir: Path) -> None:
    files = {
        # No news toast over the notebook.
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        # Save widget state into the .ipynb, so the test can check nothing secret is saved.
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
    }
    for rel, content in files.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


def start_jupyter(env_extra: dict[str, str], base_url: str = "/",
                  prepare: Callable[[Path, dict[str, str]], None] | None = None) -> JupyterServer:
    """Start ``jupyter lab`` on a free port; ``prepare(root, env)`` runs first."""
    home = Path(tempfile.mkdtemp(prefix="mna-jupyter-"))
    root = home / "work"
    root.mkdir()
    for sub in ("config", "data", "runtime", "settings", "workspaces"):
        (home / sub).mkdir()
    _settings(home / "settings")
    port = free_port()
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE_", "JUPYTERHUB_"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        PYTHONUNBUFFERED="1",
    )
    env.update(env_extra)
    if prepare is not None:
        prepare(root, env)
    log_path = home / "server.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--ServerApp.allow_root=True",
        "--LabApp.news_url=None", f"--ServerApp.root_dir={root}",
        f"--ServerApp.base_url={base_url}",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = JupyterServer(url=f"http://127.0.0.1:{port}{base_url}", token=token, root=root,
                           process=process, log_path=log_path)
    JUPYTER_ORIGINS.add(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({process.returncode}):\n{server.log_tail()}")
        try:
            if server.api("GET", "status").status_code == 200:
                return server
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop_jupyter(server)
            raise RuntimeError(f"jupyter lab did not start:\n{server.log_tail()}")
        time.sleep(0.2)


def stop_jupyter(server: JupyterServer) -> None:
    server.shutdown_kernels()
    proc = server.process
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    shutil.rmtree(server.root.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def jupyter(oidc_provider) -> Iterator[JupyterServer]:
    """JupyterLab + Notebook 7 whose kernels see the test provider's settings."""
    if _skip_reason():
        pytest.skip(_skip_reason())
    server = start_jupyter({
        "MAKE_ISSUER": oidc_provider.issuer,
        "MAKE_API_URL": oidc_provider.api_url,
        "MAKE_CLIENT_ID": oidc_provider.public_client_id,
        "MAKE_REDIRECT_URI": LOOPBACK_REDIRECT_URIS[0],  # not the default port: see providers
    })
    try:
        yield server
    finally:
        stop_jupyter(server)


def _binder_checkout(root: Path, env: dict[str, str]) -> None:
    """What Binder's postBuild leaves: the quickstart, and the default workspace opening it."""
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    subprocess.run([sys.executable, "-m", "jupyterlab", "workspaces", "import",
                    str(ROOT / "binder" / "workspace.json")],
                   env=env, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def hub_jupyter() -> Iterator[JupyterServer]:
    """As on Binder: a server under /user/ana/ whose kernels see JUPYTERHUB_SERVICE_PREFIX, no
    Make client configured, the repository's notebooks and binder/workspace.json imported."""
    if _skip_reason():
        pytest.skip(_skip_reason())
    server = start_jupyter({"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/",
                            # (the sandbox takes any loopback port; the default stays free)
                            "MAKE_REDIRECT_URI": LOOPBACK_REDIRECT_URIS[0]},
                           base_url="/user/ana/", prepare=_binder_checkout)
    try:
        yield server
    finally:
        stop_jupyter(server)


# -- the browser -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    if _skip_reason():
        pytest.skip(_skip_reason())
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _fake_callback(route) -> None:
    """The non-loopback redirect URI: answered here, so nothing leaves 127.0.0.1."""
    route.fulfill(status=200, content_type="text/html",
                  body="<!doctype html><title>callback</title><p>Redirect URI stand-in.</p>")


def _block_outside(route):
    route.abort()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


JUPYTER_ORIGINS: set[str] = set()  # servers started by start_jupyter: not providers
# Loopback redirect URIs (this run's free ports, and the default): the kernel's listener,
# reached directly.
CALLBACK_PORTS = (*LOOPBACK_PORTS, 8765)


def _redirects_as_navigations(route):
    """Provider pages on loopback: fetch them here and turn each HTTP redirect into a page that
    navigates on with JavaScript.

    Playwright routes only the first URL of a redirect chain: a 302/303 from the provider to
    the redirect URI would otherwise go to the network unseen. As a fresh navigation, every
    hop (to the provider itself, to ``app.example.test`` or to a loopback callback) passes
    through the routes again, so the stand-in for the redirect URI answers it.
    """
    request = route.request
    parts = urlsplit(request.url)
    through_jupyter = _origin(request.url) in JUPYTER_ORIGINS and "/proxy/" not in parts.path
    if request.resource_type != "document" or through_jupyter or parts.port in CALLBACK_PORTS:
        route.fallback()
        return
    response = route.fetch(max_redirects=0)
    location = response.headers.get("location")
    if 300 <= response.status < 400 and location:
        target = urljoin(request.url, location)
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("location", "content-length", "content-type",
                                        "content-encoding", "transfer-encoding")}
        body = ("<!doctype html><title>redirect</title><script>location.replace("
                + json.dumps(target).replace("<", "\\u003c") + ")</script>")
        route.fulfill(status=200, headers=headers, content_type="text/html", body=body)
        return
    route.fulfill(response=response)


@pytest.fixture
def callback_hits() -> list[str]:
    """URLs the stand-in for ``https://app.example.test/`` answered during the test."""
    return []


@pytest.fixture
def context(browser, request, callback_hits):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(UI_TIMEOUT)
    # expect() has its own 5 s default, which a loaded 2-core machine overruns while
    # JupyterLab opens a tab or starts a kernel (seen in CI-like runs): give it the same.
    expect.set_options(timeout=UI_TIMEOUT)
    # Routes registered later take precedence. Anything off this machine (fonts, CDNs, news) is
    # refused rather than waited for; providers' redirects become routed navigations; the
    # redirect URI's host is answered by the test.
    ctx.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])"), _block_outside)
    # (Jupyter's own ports are left out of the pattern: with Playwright's sync API a routed
    # request waits until the test calls into Playwright again.)
    jupyter_ports = "|".join(sorted(o.rsplit(":", 1)[1] for o in JUPYTER_ORIGINS)) or "0"
    ctx.route(re.compile(rf"^http://(127\.0\.0\.1|localhost):(?!({jupyter_ports})/)\d+/"),
              _redirects_as_navigations)
    ctx.route(re.compile(r"^http://127\.0\.0\.1:\d+/(.+/)?proxy/\d+/"), _redirects_as_navigations)
    ctx.route(re.compile(r"^https://app\.example\.test/"),
              lambda route: (callback_hits.append(route.request.url), _fake_callback(route)))
    yield ctx
    failed = any(getattr(request.node, f"rep_{when}", None) is not None
                 and getattr(request.node, f"rep_{when}").failed
                 for when in ("setup", "call"))
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        for n, page in enumerate(ctx.pages):
            try:
                page.screenshot(path=str(ARTIFACTS / f"{safe}-{n}.png"), full_page=True)
            except Exception:  # noqa: S110 - best effort
                pass
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()
