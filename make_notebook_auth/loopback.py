"""Loopback capture: the kernel listens on the redirect URI's port and completes the login itself.

When the redirect URI is ``http://127.0.0.1:PORT/...`` or ``http://localhost:PORT/...`` and the
port is free, :class:`LoopbackListener` serves on ``127.0.0.1:PORT`` (never another interface)
from a background thread. It answers stray requests with 404/400 and handles exactly one request
that carries the ``state`` of a pending login: it hands the whole redirect URL to ``complete``
(which calls ``MakeAuth.finish``), answers the browser tab with a short page, then closes. It also
closes after ``timeout`` seconds or on :meth:`LoopbackListener.stop`, whatever its connections
do, and the port is free again.

Any local process can connect, so connections cannot hold it up: each has its own thread, a
total time limit to send its request (``CONNECTION_TIME_LIMIT``; trickling a byte at a time does
not extend it), at most ``MAX_CONNECTIONS`` are open at once, and request lines are capped. A
reply whose ``state`` belongs to no login pending here (another kernel's, an old link) gets a
page telling the user to paste its address into the notebook that started the login. For a
``localhost`` redirect URI the listener also holds ``[::1]:PORT`` (bound, never listening), so no
other program can take the reply there, and refuses to start when one already listens there.

If the port is busy, or the browser cannot reach the kernel (remote kernel, Binder, JupyterHub),
nothing is lost: the user pastes the address instead.

Protocol level only: no widgets, no printing. Request lines (which hold ``?code=``) are never
logged.
"""

from __future__ import annotations

import contextlib
import errno
import html
import http.server
import select
import socket
import socketserver
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
CONNECTION_TIME_LIMIT = 5.0  # seconds a connection may take to send its request, in total
MAX_CONNECTIONS = 32  # open connections at once; the oldest is dropped to make room
MAX_REQUEST_LINE = 8192  # bytes: a redirect with code, state and iss is far shorter
_COMPLETE_WAIT = 120.0  # seconds to let a started completion end (it has its own deadlines)
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


def _guard_ipv6(port: int) -> tuple[socket.socket | None, bool]:
    """Hold ``[::1]:port`` (bound, not listening) so no other process can listen there while
    a ``localhost`` login waits: browsers try ``::1`` first, and a connection to a bound but
    not listening socket is refused, so they fall back to 127.0.0.1, where we listen.

    Returns ``(guard socket or None, ok)``: ``ok`` is False when another program already
    listens on ``[::1]:port`` (it would receive the code); None with ok when this machine
    has no IPv6 loopback (then nobody can listen there either)."""
    if not socket.has_ipv6:
        return None, True
    for reuse in (False, True):  # without SO_REUSEADDR first: then nobody can bind it after us
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            return None, True
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if reuse:  # only a listener (not a TIME_WAIT leftover) makes this bind fail
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::1", port))
            return sock, True
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                return None, True  # no ::1 here (EADDRNOTAVAIL, EAFNOSUPPORT)
    return None, False


def page(title: str, body: str) -> bytes:
    """A small HTML page; both texts are escaped."""
    return _PAGE.format(title=html.escape(title), body=html.escape(body)).encode("utf-8")


def _cut(connection: socket.socket) -> None:
    """End a connection another thread may be reading from (its read returns at once)."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """One daemon thread per connection, so idle or slow clients never hold up the browser.

    Connections still sending their request are tracked: each has ``CONNECTION_TIME_LIMIT``
    seconds in total (a client trickling a byte at a time is cut off like an idle one), and at
    most ``MAX_CONNECTIONS`` are open at once (the oldest is cut to make room)."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    listener: LoopbackListener

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self._reading: dict[socket.socket, float] = {}  # connection -> deadline, oldest first
        self._reading_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._reading_lock:
            while len(self._reading) >= MAX_CONNECTIONS:
                oldest = next(iter(self._reading))
                del self._reading[oldest]
                _cut(oldest)
            self._reading[request] = time.monotonic() + CONNECTION_TIME_LIMIT
        super().process_request(request, client_address)

    def request_read(self, connection: socket.socket) -> bool:
        """The handler has the whole request: stop its clock. False if it was cut off."""
        with self._reading_lock:
            return self._reading.pop(connection, None) is not None

    def shutdown_request(self, request: Any) -> None:
        with self._reading_lock:
            self._reading.pop(request, None)
        super().shutdown_request(request)

    def cut_overdue(self, everything: bool = False) -> None:
        now = time.monotonic()
        with self._reading_lock:
            overdue = [c for c, deadline in self._reading.items() if everything or deadline <= now]
            for connection in overdue:
                del self._reading[connection]
        for connection in overdue:
            _cut(connection)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = CONNECTION_TIME_LIMIT  # per read or write; the total limit is the server's
    server_version = "make-notebook-auth"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # The request line holds ?code=...&state=...: never write it anywhere.
        return

    def _reply(self, status: int, body: bytes) -> None:
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

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.close_connection = True
        if not self.server.request_read(self.connection):
            return  # cut off (too slow, or crowded out): it gets no answer
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self._reply(414, page("Address too long", "This address is too long to be a "
                                  "sign-in reply."))
            return
        self._reply(*self.server.listener._handle(self.path))

    def do_HEAD(self) -> None:  # noqa: N802
        self.close_connection = True
        if not self.server.request_read(self.connection):
            return
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_HEAD  # noqa: N815


class LoopbackListener:
    """Wait on the redirect URI's loopback port for the browser to bring back the reply.

    ``is_pending(state)`` says whether a request's ``state`` belongs to a pending login;
    ``complete(url)`` finishes the login with the full redirect URL (raising a ``MakeError``
    when it cannot); ``on_done(outcome)`` is called once when the listener closes, with
    ``outcome`` one of ``"completed"``, ``"failed"``, ``"timeout"``, ``"stopped"``.
    ``success_title`` heads the page the browser tab shows after a completed login.

    :meth:`start` returns False when it cannot listen; ``busy_reason`` then says why in a
    sentence a front end can show (the user pastes the address instead).
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
        self._guard: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._claim = threading.Lock()
        self._handled = threading.Event()  # the pending login's reply arrived
        self._finished = threading.Event()  # ... and complete() has returned or raised
        self._closed = threading.Event()  # the port is released
        self._completing: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self.outcome: str | None = None
        self.error: BaseException | None = None
        self.busy_reason: str | None = None

    def __repr__(self) -> str:
        state = "listening" if self.listening else (self.outcome or "not started")
        return f"<LoopbackListener {LISTEN_HOST}:{self.target.port} {state}>"

    @property
    def port(self) -> int:
        return self.target.port

    @property
    def where(self) -> str:
        """How the reply is caught, for a status line."""
        return f"listening on {LISTEN_HOST}:{self.target.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None and self.outcome is None

    def start(self) -> bool:
        """Bind ``127.0.0.1:PORT`` and serve in a daemon thread.

        False, with ``busy_reason`` set, if the port is taken (by another notebook's login,
        say), or, for a ``localhost`` redirect URI, if another program listens on
        ``[::1]:PORT``, where the browser might take the reply."""
        if self._server is not None:
            return self.listening
        port = self.target.port
        guard = None
        if self.target.host == "localhost":
            guard, ok = _guard_ipv6(port)
            if not ok:
                self.busy_reason = (
                    f"another program listens on [::1]:{port} (IPv6 loopback), where the "
                    f"browser may take the reply to localhost:{port}"
                )
                return False
        try:
            server = _Server((LISTEN_HOST, port))
        except OSError:
            if guard is not None:
                guard.close()
            self.busy_reason = (
                f"port {port} on 127.0.0.1 is in use (by another notebook's login, perhaps)"
            )
            return False
        self.busy_reason = None
        server.listener = self
        server.timeout = 0  # handle_request() is called once select() saw a connection
        self._server = server
        self._guard = guard
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve, name=f"make-login-loopback-{port}", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, wait: float = 2.0) -> None:
        """Stop listening (a no-op when already stopped)."""
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is not None and threading.current_thread() not in (thread, self._completing):
            thread.join(wait)

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

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
        wake = self._wake_r
        assert wake is not None
        try:
            while not self._stop.is_set() and not self._finished.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    outcome = "timeout"
                    break
                ready, _, _ = select.select([server.socket, wake], [], [], min(_POLL, remaining))
                if server.socket in ready:
                    server.handle_request()  # accepts it; its own thread handles it
                server.cut_overdue()
        finally:
            server.server_close()
            server.cut_overdue(everything=True)
            if self._guard is not None:
                self._guard.close()
            self._closed.set()
            for end in (self._wake_r, self._wake_w):
                if end is not None:
                    end.close()
            if self._handled.is_set():
                # The reply arrived: the login's outcome is complete()'s, however we stopped.
                done = self._finished.wait(_COMPLETE_WAIT)
                outcome = "failed" if self.error is not None or not done else "completed"
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
        params = parse_qs(parts.query, keep_blank_values=True)
        states = params.get("state") or []
        with self._claim:
            if self._handled.is_set():
                return 409, page(
                    "Already handled",
                    "This login was already handled. Go back to your notebook.",
                )
            if len(states) != 1 or not self._is_pending(states[0]):
                return 400, page(
                    "Not the login this notebook is waiting for",
                    "The notebook listening here did not start this sign-in: another "
                    "notebook or kernel did, or the link was an old one. Copy this page's "
                    "address from the address bar and paste it into the login panel (or the "
                    "terminal prompt, or %make_finish) in the notebook where you started the "
                    "login.",
                )
            self._handled.set()
            self._completing = threading.current_thread()
        try:
            return self._finish(raw_path)
        finally:
            self._finished.set()
            self._wake()
            # Release the port before the browser's page arrives: whoever reads "logged in"
            # (or "not completed") may start the next listener on it at once.
            self._closed.wait(2.0)

    def _finish(self, raw_path: str) -> tuple[int, bytes]:
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
