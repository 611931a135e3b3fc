"""Hub capture: on JupyterHub, the browser's reply reaches the kernel through the hub's
``make-login`` service (``python -m make_notebook_auth.hub``) instead of a loopback port.

A kernel of a single-user server (``JUPYTERHUB_API_TOKEN`` set) whose redirect URI is that
service's callback, ``{public hub address}{JUPYTERHUB_BASE_URL}services/make-login/callback``,
registers its login's ``state`` with the service, authenticated as the hub user by the server's
token, then long-polls the service from a background thread for the reply the browser brought
to the callback. The service hands a reply only to a kernel of the hub user who registered the
state, once; the kernel then finishes the login itself (the service never sees the PKCE
verifier, the client secret or a token).

:class:`HubRelay` has the listener interface :class:`~make_notebook_auth.login.LoginController`
uses for :class:`~make_notebook_auth.loopback.LoopbackListener`. Core module: requests only, no
printing; the reply (which holds the code) is never logged or kept once handed on.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from ._http import Session, json_body
from ._http import call as http_call
from .config import is_loopback_host
from .errors import MakeError

SERVICE_NAME = "make-login"
#: What a state may look like (the package's states are 43 URL-safe characters).
STATE_PATTERN = re.compile(r"[A-Za-z0-9._~-]{8,256}")
REGISTER_DEADLINE = 10.0  # seconds for registering a state
POLL_WAIT = 20  # seconds the service holds one poll open
_RETRY = 2.0  # seconds between polls after a network failure
_ENDPOINT = "JupyterHub make-login service"


@dataclass(frozen=True)
class HubTarget:
    """Where a kernel reaches the hub's ``make-login`` service, and with which token."""

    api: str  # .../services/make-login/api/
    token: str = ""

    def __repr__(self) -> str:  # the token stays out of reprs
        return f"HubTarget(api={self.api!r})"


def callback_path(base_url: str = "/") -> str:
    """The service's callback path under the hub's base URL (``/services/make-login/callback``)."""
    return f"/{base_url.strip('/')}/services/{SERVICE_NAME}/callback".replace("//", "/")


def hub_target(redirect_uri: str, environ: Mapping[str, str] | None = None) -> HubTarget | None:
    """The service to register with, when this kernel runs on a JupyterHub single-user server
    (``JUPYTERHUB_API_TOKEN`` set) and ``redirect_uri`` is the service's callback (https, or
    http on loopback); else None."""
    env = os.environ if environ is None else environ
    token = env.get("JUPYTERHUB_API_TOKEN", "").strip()
    if not token:
        return None
    try:
        parts = urlsplit(redirect_uri)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    if not (parts.scheme == "https"
            or (parts.scheme == "http" and is_loopback_host(parts.hostname))):
        return None
    expected = callback_path(env.get("JUPYTERHUB_BASE_URL", "/") or "/")
    if parts.path.rstrip("/") != expected:
        return None
    api = f"{parts.scheme}://{parts.netloc}{expected[: -len('callback')]}api/"
    return HubTarget(api=api, token=token)


class HubRelay:
    """Register a login's ``state`` with the hub service and wait for the browser's reply.

    Same callbacks as :class:`~make_notebook_auth.loopback.LoopbackListener`:
    ``is_pending(state)``, ``complete(url)`` (raises a ``MakeError`` when the reply cannot be
    used), ``on_done(outcome)`` with ``"completed"``, ``"failed"``, ``"timeout"`` (the service
    forgot the state, or ``timeout`` passed) or ``"stopped"``.
    """

    where = "waiting through JupyterHub's make-login service"

    def __init__(
        self,
        redirect_uri: str,
        state: str,
        *,
        target: HubTarget,
        is_pending: Callable[[str], bool],
        complete: Callable[[str], Any],
        on_done: Callable[[str], None] | None = None,
        timeout: float = 600.0,
        session: Any = None,
    ) -> None:
        self.redirect_uri = redirect_uri
        self.state = state
        self.target = target
        self.timeout = timeout
        self._is_pending = is_pending
        self._complete = complete
        self._on_done = on_done
        self._session = session or Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outcome: str | None = None
        self.error: BaseException | None = None
        self.start_error: str | None = None  # why start() returned False
        self._forget_lock = threading.Lock()
        self._forgotten = False

    def __repr__(self) -> str:
        state = "listening" if self.listening else (self.outcome or "not started")
        return f"<HubRelay {self.target.api} {state}>"

    @property
    def listening(self) -> bool:
        return self._thread is not None and self.outcome is None

    def start(self) -> bool:
        """Register the state (a few seconds at most) and wait for the reply in a daemon
        thread; False (``start_error`` says why) when the service could not be used."""
        if self._thread is not None:
            return self.listening
        if not STATE_PATTERN.fullmatch(self.state):
            self.start_error = "this login's state cannot be registered with the hub service"
            return False
        lifetime = max(1, int(self.timeout))
        try:
            resp = self._call("POST", "pending", deadline=REGISTER_DEADLINE,
                              json={"state": self.state, "lifetime": lifetime})
        except MakeError as exc:
            self.start_error = str(exc)
            return False
        if resp.status_code != 201:
            body = json_body(resp)
            message = body.get("message") if isinstance(body, dict) else None
            self.start_error = (f"the hub service refused to wait for this login "
                                f"(HTTP {resp.status_code}: {message or 'no reason given'})")
            return False
        self._thread = threading.Thread(target=self._run, name="make-login-hub-relay",
                                        daemon=True)
        self._thread.start()
        return True

    def stop(self, wait: float = 2.0) -> None:
        """Stop waiting (the service forgets the state; a no-op when already stopped)."""
        first = not self._stop.is_set()
        self._stop.set()
        thread = self._thread
        if first and thread is not None and thread.is_alive():
            # Tell the service now (which also ends the pending poll), without blocking the
            # caller on the network.
            threading.Thread(target=self._forget, name="make-login-hub-forget",
                             daemon=True).start()
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the relay has ended; returns its outcome."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.outcome

    # -- the thread ------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, deadline: float, **kwargs: Any) -> Any:
        headers = {"Authorization": f"token {self.target.token}",
                   "Accept": "application/json"}
        return http_call(method, self.target.api + path, _ENDPOINT, session=self._session,
                         deadline=deadline, headers=headers, **kwargs)

    def _poll(self) -> tuple[str, str | None]:
        """One long poll: ("reply", query), ("wait", None), ("gone", None) or ("retry", None)."""
        path = f"reply?state={quote(self.state, safe='')}&wait={POLL_WAIT}"
        try:
            resp = self._call("GET", path, deadline=POLL_WAIT + 15.0)
        except MakeError:
            return "retry", None
        if resp.status_code == 200:
            body = json_body(resp)
            reply = body.get("reply") if isinstance(body, dict) else None
            if isinstance(reply, str):
                return "reply", reply
            return "retry", None
        if resp.status_code == 204:
            return "wait", None
        if resp.status_code in (404, 410):
            return "gone", None
        return "retry", None

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        outcome = "stopped"
        try:
            while not self._stop.is_set():
                if time.monotonic() >= deadline:
                    outcome = "timeout"
                    break
                kind, reply = self._poll()
                if self._stop.is_set():
                    break
                if kind == "gone":
                    outcome = "timeout"
                    break
                if kind == "retry":
                    self._stop.wait(_RETRY)
                    continue
                if kind == "reply" and reply is not None:
                    outcome = self._hand_on(reply)
                    break
        finally:
            if outcome != "completed":
                self._forget()
            self.outcome = outcome
            if self._on_done is not None:
                try:
                    self._on_done(outcome)
                except Exception:  # noqa: S110 - a front end's callback must not kill the thread
                    pass

    def _hand_on(self, reply: str) -> str:
        if not self._is_pending(self.state):
            return "stopped"
        try:
            self._complete(f"{self.redirect_uri}?{reply}")
        except Exception as exc:  # the controller told its view why
            self.error = exc
            return "failed"
        return "completed"

    def _forget(self) -> None:
        with self._forget_lock:
            if self._forgotten:
                return
            self._forgotten = True
        try:
            self._call("DELETE", f"pending?state={quote(self.state, safe='')}", deadline=5.0)
        except MakeError:
            pass  # the service forgets it anyway when its lifetime ends
