"""Loopback capture: the kernel listens on the redirect URI's port and completes the login itself.

When the redirect URI is ``http://127.0.0.1:PORT/...`` or ``http://localhost:PORT/...`` and the
port is free, :class:`LoopbackListener` serves on ``127.0.0.1:PORT`` (never another interface)
from a background thread. It answers stray requests with 404/400 and handles exactly one request
that carries the ``state`` of a pending login: it hands the whole redirect URL to ``complete``
(which calls ``MakeAuth.finish``), answers the browser tab with a short page, then closes. It also
closes after ``timeout`` seconds or on :meth:`LoopbackListener.stop`.

If the port is busy, or the browser cannot reach the kernel (remote kernel, Binder, JupyterHub),
nothing is lost: the user pastes the address instead.

Protocol level only: no widgets, no printing. Request lines (which hold ``?code=``) are never
logged.
"""

from __future__ import annotations

import html
import http.server
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import MakeError

DEFAULT_TIMEOUT = 600.0  # seconds the listener waits for the browser
LISTEN_HOST = "127.0.0.1"
_POLL = 0.2  # seconds between checks for stop/timeout
_REQUEST_TIMEOUT = 10.0  # seconds a single connection may take
_LOOPBACK_NAMES = ("127.0.0.1", "localhost")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;
line-height:1.5;color:#1b1b1f}}h1{{font-size:1.4rem}}</style></head>
<body><h1>{title}</h1><p>{body}</p></body></html>
"""


@dataclass(frozen=True)
class LoopbackTarget:
    """Where a loopback redirect URI points: the port to listen on and the path to answer."""

    host: str
    port: int
    path: str


def loopback_target(redirect_uri: str) -> LoopbackTarget | None:
    """The listening target of an ``http://127.0.0.1:PORT/...`` or ``http://localhost:PORT/...``
    redirect URI (with an explicit port), else None."""
    try:
        parts = urlsplit(redirect_uri)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme != "http" or host not in _LOOPBACK_NAMES or not port:
        return None
    return LoopbackTarget(host=host, port=port, path=parts.path or "/")


def port_is_free(port: int, host: str = LISTEN_HOST) -> bool:
    """Whether a listening socket could be bound to ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def page(title: str, body: str) -> bytes:
    """A small HTML page; both texts are escaped."""
    return _PAGE.format(title=html.escape(title), body=html.escape(body)).encode("utf-8")


class _Server(http.server.HTTPServer):
    allow_reuse_address = True
    listener: LoopbackListener


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = _REQUEST_TIMEOUT
    server_version = "make-notebook-auth"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # The request line holds ?code=...&state=...: never write it anywhere.
        return

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status, body = self.server.listener._handle(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_HEAD  # noqa: N815


class LoopbackListener:
    """Wait on the redirect URI's loopback port for the browser to bring back the reply.

    ``is_pending(state)`` says whether a request's ``state`` belongs to a pending login;
    ``complete(url)`` finishes the login with the full redirect URL (raising a ``MakeError``
    when it cannot); ``on_done(outcome)`` is called once when the listener closes, with
    ``outcome`` one of ``"completed"``, ``"failed"``, ``"timeout"``, ``"stopped"``.
    ``success_title`` heads the page the browser tab shows after a completed login.
    """

    def __init__(
        self,
        redirect_uri: str,
        *,
        is_pending: Callable[[str], bool],
        complete: Callable[[str], Any],
        on_done: Callable[[str], None] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        success_title: str = "Logged in to Make",
    ) -> None:
        target = loopback_target(redirect_uri)
        if target is None:
            raise ValueError("not a loopback redirect URI with an explicit port")
        self.redirect_uri = redirect_uri
        self.target = target
        self.timeout = timeout
        self._is_pending = is_pending
        self._complete = complete
        self._on_done = on_done
        self.success_title = success_title
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._handled = threading.Event()
        self.outcome: str | None = None
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        state = "listening" if self.listening else (self.outcome or "not started")
        return f"<LoopbackListener {LISTEN_HOST}:{self.target.port} {state}>"

    @property
    def port(self) -> int:
        return self.target.port

    @property
    def listening(self) -> bool:
        return self._server is not None and self.outcome is None

    def start(self) -> bool:
        """Bind ``127.0.0.1:PORT`` and serve in a daemon thread; False if the port is busy."""
        if self._server is not None:
            return self.listening
        try:
            server = _Server((LISTEN_HOST, self.target.port), _Handler)
        except OSError:
            return False
        server.listener = self
        server.timeout = _POLL
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, name=f"make-login-loopback-{self.target.port}", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, wait: float = 2.0) -> None:
        """Stop listening (a no-op when already stopped)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the listener has closed; returns its outcome."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.outcome

    # -- serving ---------------------------------------------------------------------------

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        deadline = time.monotonic() + self.timeout
        outcome = "stopped"
        try:
            while not self._stop.is_set():
                if self._handled.is_set():
                    outcome = "failed" if self.error is not None else "completed"
                    break
                if time.monotonic() >= deadline:
                    outcome = "timeout"
                    break
                server.handle_request()
            else:
                if self._handled.is_set():
                    outcome = "failed" if self.error is not None else "completed"
        finally:
            server.server_close()
            self.outcome = outcome
            if self._on_done is not None:
                try:
                    self._on_done(outcome)
                except Exception:  # noqa: S110 - a front end's callback must not kill the thread
                    pass

    def _handle(self, raw_path: str) -> tuple[int, bytes]:
        try:
            parts = urlsplit(raw_path)
        except ValueError:
            return 400, page("Bad request", "This address could not be read.")
        if parts.path.rstrip("/") != self.target.path.rstrip("/"):
            return 404, page("Not found", "Nothing here.")
        if self._handled.is_set():
            return 409, page(
                "Already handled",
                "This login was already handled. Go back to your notebook.",
            )
        params = parse_qs(parts.query, keep_blank_values=True)
        states = params.get("state") or []
        if len(states) != 1 or not self._is_pending(states[0]):
            return 400, page(
                "Not the pending login",
                "This address does not belong to the login that is waiting in your notebook. "
                "Open the sign-in link shown in the notebook again.",
            )
        self._handled.set()
        host = f"{self.target.host}:{self.target.port}"
        try:
            self._complete(f"http://{host}{raw_path}")
        except MakeError as exc:
            self.error = exc
            return 400, page(
                "Login not completed",
                f"{exc} You can also copy this page's address and paste it where the login "
                "was started (the login panel, or the prompt in the terminal).",
            )
        except Exception as exc:  # a bug must not leave the browser hanging
            self.error = exc
            return 500, page(
                "Login not completed",
                f"Unexpected error ({type(exc).__name__}). Copy this page's address and paste "
                "it where the login was started (the login panel, or the prompt in the "
                "terminal).",
            )
        return 200, page(
            self.success_title,
            "You're logged in. You can close this tab and go back to your notebook.",
        )
