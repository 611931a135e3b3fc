"""pytest plugin: panva's ``oidc-provider`` (Node) on 127.0.0.1, configured like Make.

Load it with ``pytest_plugins = ["fixtures_oidc"]``. Fixtures:

- ``oidc_provider`` (session): a :class:`providers.ProviderHandle` for a provider started once
  per session (``tests/oidc_provider/server.js``), with Make's routes, PKCE S256 required,
  the clients ``public-client``, ``confidential-client``, ``short-public``,
  ``short-confidential`` and the users ``alice`` and ``bob``.
- ``oidc_provider_introspection`` (session): endpoint and credentials of the
  ``resource-server`` client, for a Make-like API written in tests that introspects tokens.

The client secrets are generated here and handed to the server through its environment; the
server prints ``PORT=<port>`` and ``INFO=<json>`` (users, client ids; no secrets) on stdout.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from providers import REDIRECT_URI, REGISTERED_REDIRECT_URIS, ProviderHandle

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
START_TIMEOUT = 20.0  # seconds, for the process to print its port and answer discovery
NPM_CI_TIMEOUT = 300.0
SHORT_TTL = 4
HTTP_TIMEOUT = 10.0
MAX_AUTHORIZE_STEPS = 20
RESOURCE_SERVER_CLIENT_ID = "resource-server"

_running: list[_ProviderProcess] = []


class OIDCProviderError(RuntimeError):
    """The test provider could not be installed, started, or driven."""


class AuthorizeError(OIDCProviderError):
    """``authorize()`` did not reach a redirect to the client."""


def _ensure_node_modules() -> None:
    if (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise OIDCProviderError("npm not found: needed to install tests/oidc_provider (npm ci)")
    # Serialise concurrent installs (e.g. several pytest-xdist workers).
    lock_path = Path(tempfile.gettempdir()) / "make-notebook-auth-oidc-provider-npm-ci.lock"
    with open(lock_path, "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not on POSIX
            pass
        if (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
            return
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=PROVIDER_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise OIDCProviderError(f"npm ci timed out after {NPM_CI_TIMEOUT:.0f} s") from exc
        if done.returncode != 0:
            raise OIDCProviderError(
                f"npm ci failed in {PROVIDER_DIR} (exit {done.returncode}):\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )


class _ProviderProcess:
    """The Node process, its output, and its teardown."""

    def __init__(self, short_ttl: int = SHORT_TTL,
                 extra_redirect_uris: tuple[str, ...] = ()) -> None:
        self.short_ttl = short_ttl
        self.extra_redirect_uris = extra_redirect_uris
        self.confidential_secret = secrets.token_urlsafe(32)
        self.short_confidential_secret = secrets.token_urlsafe(32)
        self.resource_server_secret = secrets.token_urlsafe(32)
        self.proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.port: int | None = None
        self.info: dict = {}

    # -- output -----------------------------------------------------------------------------
    def _pump_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            for raw in self.proc.stdout:
                self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        finally:
            self._lines.put(None)

    def stderr_text(self, limit: int = 8000) -> str:
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            data = self._stderr.read()
        except (OSError, ValueError):
            return ""
        text = data.decode("utf-8", "replace")
        return text[-limit:]

    def _fail(self, message: str) -> OIDCProviderError:
        self.stop()
        return OIDCProviderError(f"{message}\n--- oidc-provider stderr ---\n{self.stderr_text()}")

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise OIDCProviderError("node not found: the oidc-provider fixture needs Node.js")
        _ensure_node_modules()
        env = dict(os.environ)
        env.update(
            PORT="0",
            SHORT_TTL=str(self.short_ttl),
            CONFIDENTIAL_CLIENT_SECRET=self.confidential_secret,
            SHORT_CONFIDENTIAL_CLIENT_SECRET=self.short_confidential_secret,
            RESOURCE_SERVER_SECRET=self.resource_server_secret,
            REDIRECT_URIS=",".join((*REGISTERED_REDIRECT_URIS, *self.extra_redirect_uris)),
            EXIT_WITH_STDIN="1",
            NODE_ENV="test",
        )
        env.pop("NODE_OPTIONS", None)
        self.proc = subprocess.Popen(
            [node, "server.js"],
            cwd=PROVIDER_DIR,
            env=env,
            stdin=subprocess.PIPE,  # kept open: the server exits when it closes (runner killed)
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not node
        )
        threading.Thread(target=self._pump_stdout, name="oidc-provider-stdout", daemon=True).start()

        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None or not self.info:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(
                    f"oidc-provider did not print its port within {START_TIMEOUT:.0f} s"
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise self._fail(f"oidc-provider exited early (exit {self.proc.returncode})")
            if line.startswith("PORT="):
                self.port = int(line[len("PORT=") :])
            elif line.startswith("INFO="):
                self.info = json.loads(line[len("INFO=") :])

        discovery = f"{self.issuer}/.well-known/openid-configuration"
        last_error = ""
        while True:
            if self.proc.poll() is not None:
                raise self._fail(f"oidc-provider exited (exit {self.proc.returncode})")
            try:
                response = requests.get(discovery, timeout=2)
                if response.status_code == 200 and response.json().get("issuer") == self.issuer:
                    return
                last_error = f"HTTP {response.status_code}"
            except (requests.RequestException, ValueError) as exc:
                last_error = repr(exc)
            if time.monotonic() > deadline:
                raise self._fail(f"oidc-provider discovery did not answer: {last_error}")
            time.sleep(0.1)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout is not None:
            try:
                proc.stdout.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stop()
        try:
            self._stderr.close()
        except OSError:
            pass


class _FormParser(HTMLParser):
    """Collects forms: action, method, and the fields a browser would submit by default."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "method": a.get("method", "get").lower(),
                    "fields": {},
                    "buttons": [],
                }
            )
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "image"):
                self.forms[-1]["buttons"].append((a["name"], a.get("value", "")))
            elif kind not in ("checkbox", "radio") or "checked" in a:
                self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self.forms[-1]["buttons"].append((a["name"], a.get("value", "")))
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
        elif tag == "option" and self._select is not None:
            fields = self.forms[-1]["fields"]
            if self._select not in fields or "selected" in a:
                fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def _make_authorize(issuer: str):
    provider_origin = urlsplit(issuer)[:2]

    def authorize(url: str, approve: bool = True, user: str = "alice") -> str:
        """Drive login and consent like a browser would; return the redirect to the client.

        Follows the provider's redirects, answers each interaction form (user ``user``,
        Approve or Deny), and returns the first Location that leaves the provider (the
        client's redirect_uri with ``code``/``state``/``iss`` or ``error``) without requesting it.
        """
        with requests.Session() as session:
            session.trust_env = False
            return _drive(session, url, approve, user)

    def _drive(session: requests.Session, url: str, approve: bool, user: str) -> str:
        method, target, data = "GET", url, None
        for _ in range(MAX_AUTHORIZE_STEPS):
            response = session.request(
                method, target, data=data, allow_redirects=False, timeout=HTTP_TIMEOUT
            )
            if response.status_code in (301, 302, 303, 307, 308) and "Location" in response.headers:
                location = urljoin(response.url, response.headers["Location"])
                if urlsplit(location)[:2] != provider_origin:
                    return location
                method, target, data = "GET", location, None
                continue
            is_interaction = urlsplit(response.url).path.startswith("/interaction/")
            if response.status_code == 200 and is_interaction:
                parser = _FormParser()
                parser.feed(response.text)
                if not parser.forms:
                    raise AuthorizeError(f"no form on interaction page {response.url}")
                form = parser.forms[0]
                fields = dict(form["fields"])
                if "user" in fields:
                    fields["user"] = user
                buttons = dict(form["buttons"])
                wanted = "approve" if approve else "deny"
                if "decision" in buttons or not buttons:
                    fields["decision"] = wanted
                method = form["method"].upper() or "POST"
                target = urljoin(response.url, form["action"] or response.url)
                data = fields
                continue
            detail = re.sub(r"<[^>]+>", " ", response.text)
            detail = re.sub(r"\s+", " ", detail).strip()[:600]
            raise AuthorizeError(
                f"authorize: unexpected HTTP {response.status_code} from {response.url}: {detail}"
            )
        raise AuthorizeError(
            f"authorize: no redirect to the client after {MAX_AUTHORIZE_STEPS} steps"
        )

    return authorize


@pytest.fixture(scope="session")
def _oidc_provider_process():
    process = _ProviderProcess()
    _running.append(process)
    try:
        process.start()
        yield process
        if process.proc is not None and process.proc.poll() is not None:
            sys.stderr.write(
                f"\noidc-provider exited during the session (exit {process.proc.returncode}):\n"
                f"{process.stderr_text()}\n"
            )
    finally:
        _running.remove(process)
        process.close()


@pytest.fixture(scope="session")
def oidc_provider(_oidc_provider_process) -> ProviderHandle:
    """panva's oidc-provider on 127.0.0.1, configured like Make (see tests/oidc_provider)."""
    process = _oidc_provider_process
    info = process.info
    return ProviderHandle(
        name="oidc-provider",
        issuer=process.issuer,
        api_url=f"{process.issuer}/api/v2/",
        public_client_id="public-client",
        confidential_client_id="confidential-client",
        confidential_client_secret=process.confidential_secret,
        short_public_client_id="short-public",
        short_confidential_client_id="short-confidential",
        short_confidential_client_secret=process.short_confidential_secret,
        short_ttl=int(info.get("short_ttl", process.short_ttl)),
        redirect_uri=REDIRECT_URI,
        authorize=_make_authorize(process.issuer),
        users={uid: dict(claims) for uid, claims in info["users"].items()},
    )


@pytest.fixture(scope="session")
def oidc_provider_introspection(_oidc_provider_process) -> dict:
    """Introspection endpoint and credentials of the ``resource-server`` client.

    It authenticates with HTTP Basic (``client_secret_basic``), e.g.
    ``requests.post(endpoint, data={"token": t}, auth=(client_id, client_secret))``.
    """
    process = _oidc_provider_process
    return {
        "introspection_endpoint": f"{process.issuer}/oauth/v2/introspect",
        "client_id": RESOURCE_SERVER_CLIENT_ID,
        "client_secret": process.resource_server_secret,
        "token_endpoint_auth_method": "client_secret_basic",
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _running and "oidc_provider" in getattr(item, "fixturenames", ()):
        text = _running[-1].stderr_text(4000)
        if text:
            report.sections.append(("oidc-provider stderr", text))
