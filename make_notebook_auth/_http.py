"""HTTP transport: loopback without proxies, total deadlines, capped answers, auth-server calls.

- :class:`Session` is the ``requests.Session`` every package session builds on: a request to a
  loopback host never goes through a proxy from the environment (``HTTP_PROXY``,
  ``ALL_PROXY``, ...), since plain http is allowed there only because it never leaves the
  machine. Other URLs honour proxies as ``requests`` does.
- :class:`Deadline` bounds a whole call, not each socket read: when its time is up, the
  sockets the calling thread opened or used meanwhile are shut down (a server trickling one
  byte at a time cannot hold a call open). :class:`DeadlineAdapter` is the ``HTTPAdapter``
  whose connections report to it.
- :func:`call` sends one request to the authorization server: no redirects (a 3xx is a
  :class:`~make_notebook_auth.errors.ProviderResponseError`), a total deadline
  (:data:`AUTH_DEADLINE`), an answer of at most :data:`MAX_ANSWER_BYTES`, and network failures
  as :class:`~make_notebook_auth.errors.MakeNetworkError`.

All calls go through ``requests`` so that proxies and ``REQUESTS_CA_BUNDLE`` apply to every one
of them, the JWKS fetch included.
"""

from __future__ import annotations

import heapq
import os
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._version import __version__
from .config import require_secure
from .errors import MakeNetworkError, ProviderResponseError
from .hosts import is_loopback_url

TIMEOUT = (10.0, 30.0)  # connect, read: per socket operation
AUTH_DEADLINE = 30.0  # seconds for a whole call to the authorization server
MAX_ANSWER_BYTES = 1 << 20  # discovery, JWKS, token, userinfo answers are a few kB
USER_AGENT = f"make-notebook-auth/{__version__}"


# --- total deadlines ---------------------------------------------------------------------

_active = threading.local()


def _cut(sock: socket.socket) -> None:
    try:  # the plain socket's shutdown, also for an SSLSocket: wakes a blocked read
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watcher:
    """One daemon thread that expires every :class:`Deadline` when its time is up.

    A heap of ``(end, n, deadline)``; an entry whose deadline ended or moved is dropped when
    it comes due. Sharing one thread costs a lock per call instead of a thread per call.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Deadline]] = []
        self._count = 0
        self._finished = 0  # deadlines done since the heap was last swept
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline, end: float) -> None:
        with self._cond:
            self._count += 1
            heapq.heappush(self._heap, (end, self._count, deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="make-deadlines",
                                                daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:  # a new earliest end: wake up sooner
                self._cond.notify()

    def finished(self) -> None:
        with self._cond:
            self._finished += 1
            if self._finished > 64 and 2 * self._finished > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._finished = 0

    def _run(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._cond:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2].done):
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            for deadline in due:  # outside the heap's lock (each takes its own)
                deadline._expire()


_watcher = _Watcher()


class Deadline:
    """A total time limit for the calls a thread makes inside ``with Deadline(seconds):``.

    Connections opened or reused meanwhile (through a :class:`DeadlineAdapter`) are cut when
    the time is up; ``expired`` then says so, and the caller reports a timeout whatever the
    cut read returned.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.end = time.monotonic() + self.seconds
        self.expired = False
        self.done = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._outer: Deadline | None = None

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.done:
                return
            if self.expired:
                _cut(sock)
            else:
                self._socks.append(sock)

    def _expire(self) -> None:
        with self._lock:
            if self.done or self.expired or time.monotonic() < self.end:
                return  # finished, or pushed back since (a later entry is due then)
            self.expired = True
            for sock in self._socks:
                _cut(sock)

    def extend(self, seconds: float) -> None:
        """Push the end back (time spent waiting on purpose, not on the network)."""
        if seconds <= 0:
            return
        with self._lock:
            if self.done or self.expired:
                return
            self.end += seconds
            end = self.end
        _watcher.add(self, end)

    def __enter__(self) -> Deadline:
        self._outer = getattr(_active, "deadline", None)
        _active.deadline = self
        self.end = time.monotonic() + self.seconds
        _watcher.add(self, self.end)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.done = True
            self._socks.clear()
        _watcher.finished()
        _active.deadline = self._outer


def extend_deadline(seconds: float) -> None:
    """Extend the thread's :class:`Deadline`, if any, by ``seconds`` (a rate-budget wait)."""
    deadline = getattr(_active, "deadline", None)
    if deadline is not None:
        deadline.extend(seconds)


def _attach(sock: socket.socket | None) -> None:
    deadline = getattr(_active, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)


class _Watched:
    """Report every socket a connection opens or reuses to the thread's :class:`Deadline`."""

    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        _attach(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection  # type: ignore[assignment]


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections a :class:`Deadline` can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are their own classes
            manager.pool_classes_by_scheme = _POOLS
        return manager


# --- sessions ----------------------------------------------------------------------------


class Session(requests.Session):
    """A ``requests.Session`` that sends loopback requests directly, never via a proxy."""

    def merge_environment_settings(self, url: str | None, proxies: Any, stream: Any,
                                   verify: Any, cert: Any) -> dict[str, Any]:
        if self.trust_env and is_loopback_url(url or ""):
            # send() drops every proxy for loopback: skip requests' look-up of the proxy
            # environment (a scan of os.environ per request), keep the rest as requests does
            # (REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE for verify).
            if verify is True or verify is None:
                verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                          or os.environ.get("CURL_CA_BUNDLE") or verify)
            return {"proxies": {}, "stream": merge_setting(stream, self.stream),
                    "verify": merge_setting(verify, self.verify),
                    "cert": merge_setting(cert, self.cert)}
        return super().merge_environment_settings(url, proxies, stream, verify, cert)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if is_loopback_url(request.url or ""):
            kwargs["proxies"] = {}  # also for each redirect, which comes through here too
        return super().send(request, **kwargs)


_local = threading.local()


def auth_server_session() -> requests.Session:
    """One session per thread for calls to the authorization server."""
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = Session()
        sess.headers["User-Agent"] = USER_AGENT
        sess.headers["Accept"] = "application/json"
        adapter = DeadlineAdapter()
        sess.mount("https://", adapter)
        sess.mount("http://", adapter)
        _local.session = sess
    return sess


# --- calls to the authorization server ---------------------------------------------------

# What a failing network raises in requests (not a bad URL or a usage error).
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def failure_reason(exc: requests.RequestException) -> str:
    """What went wrong, in words (never the request's URL query or body)."""
    if isinstance(exc, requests.Timeout):
        return "the request timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return ("the TLS certificate could not be verified (behind a corporate proxy, set "
                "REQUESTS_CA_BUNDLE to its CA bundle)")
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy could not be reached"
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return "the connection failed"
    return type(exc).__name__


def read_capped(resp: requests.Response, cap: int) -> bool:
    """Read a streamed answer into ``resp.content``; False (connection closed) when it holds
    more than ``cap`` bytes, decoded, or says it will."""
    declared = resp.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > cap:
        resp.close()
        return False
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(64 * 1024):
        size += len(chunk)
        if size > cap:
            resp.close()
            return False
        chunks.append(chunk)
    resp._content = b"".join(chunks)
    resp._content_consumed = True
    return True


def call(
    method: str,
    url: str,
    endpoint: str,
    *,
    session: requests.Session | None = None,
    deadline: float | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send one request to a named endpoint of the authorization server.

    A whole call (connection, answer, body) ends within ``deadline`` seconds
    (:data:`AUTH_DEADLINE` by default); its answer is read in full, up to
    :data:`MAX_ANSWER_BYTES`. Redirects are not followed: a 3xx raises
    ``ProviderResponseError`` naming the endpoint. Network failures raise
    ``MakeNetworkError``.
    """
    require_secure(url, f"Make's {endpoint} endpoint")
    seconds = AUTH_DEADLINE if deadline is None else float(deadline)
    sess = session or auth_server_session()
    reason: str | None = None
    too_large = False
    resp: requests.Response | None = None
    with Deadline(seconds) as clock:
        kwargs["timeout"] = tuple(min(limit, max(clock.remaining(), 0.001)) for limit in TIMEOUT)
        kwargs["allow_redirects"] = False
        kwargs["stream"] = True
        try:
            resp = sess.request(method, url, **kwargs)
            too_large = not read_capped(resp, MAX_ANSWER_BYTES)
        except requests.RequestException as exc:
            reason = failure_reason(exc)
        if clock.expired:
            reason = f"no complete answer within {seconds:g} s"
    # Raised here, outside the ``except`` block: the error carries no chain to requests'
    # frames (whose locals hold the request body).
    answered = resp.status_code if resp is not None else None
    if reason is not None or resp is None:
        raise MakeNetworkError(endpoint, url, reason or "no answer", answered=answered)
    if too_large:
        raise ProviderResponseError(
            endpoint, url, f"its answer is larger than {MAX_ANSWER_BYTES // 1024} kB",
            answered=answered,
        )
    if 300 <= resp.status_code < 400:
        raise ProviderResponseError(
            endpoint, url, f"it answered with a redirect (HTTP {resp.status_code}), which is "
            "not followed: nothing was sent on", answered=answered,
        )
    return resp


def json_body(resp: requests.Response) -> Any:
    """The response's JSON, or None when it is not JSON."""
    try:
        return resp.json()
    except (ValueError, RecursionError):
        return None
