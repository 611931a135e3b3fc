"""Small WSGI plumbing for the sandbox: request/response objects and a quiet, threaded,
loopback HTTP server (``wsgiref`` with a threading mix-in).

The server never logs request lines (they would show ``?code=...``), headers or tracebacks.
"""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

log = logging.getLogger("make_notebook_auth.sandbox")

MAX_BODY = 1024 * 1024

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {
    200: "OK", 204: "No Content", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


class Headers(dict[str, str]):
    """Case-insensitive header mapping (keys stored lower-case)."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__()
        for key, value in (items or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class Request:
    """The parts of a WSGI request the sandbox uses."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        self.path: str = environ.get("PATH_INFO", "") or "/"
        self.query_string: str = environ.get("QUERY_STRING", "")
        self.query: dict[str, list[str]] = parse_qs(self.query_string, keep_blank_values=True)
        headers = Headers()
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-")] = value
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        self.headers = headers
        self.form: dict[str, list[str]] = {}
        if self.method == "POST":
            self.form = self._read_form()

    def _read_form(self) -> dict[str, list[str]]:
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            return {}
        if length > MAX_BODY:
            raise BodyTooLarge()
        body = self.environ["wsgi.input"].read(length)
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return {}
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None

    def bearer(self) -> str | None:
        return self.credentials("bearer")

    def credentials(self, scheme: str) -> str | None:
        """The value of an ``Authorization: <scheme> <value>`` header (scheme in any case)."""
        auth = str(self.headers.get("Authorization", ""))
        parts = auth.split(None, 1)
        if len(parts) == 2 and parts[0].lower() == scheme and parts[1].strip():
            return parts[1].strip()
        return None


class BodyTooLarge(Exception):
    pass


class Response:
    """A status, headers and a body; ``location`` is read/write for Authlib's RFC 9207 hook."""

    def __init__(self, status: int, body: bytes | str = b"",
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.headers: list[tuple[str, str]] = list(headers)

    @classmethod
    def json(cls, payload: Any, status: int = 200,
             headers: Iterable[tuple[str, str]] = ()) -> Response:
        hdrs = [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store")]
        hdrs += [h for h in headers if h[0].lower() not in ("content-type", "cache-control")]
        return cls(status, json.dumps(payload, separators=(",", ":")), hdrs)

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text, [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy",
             "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
            ("X-Frame-Options", "DENY"),
        ])

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(302, b"", [("Location", location), ("Cache-Control", "no-store"),
                              ("Referrer-Policy", "no-referrer")])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def location(self) -> str | None:
        return self.header("Location")

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"]
        self.headers.append(("Location", value))

    def __call__(self, start_response: StartResponse) -> list[bytes]:
        reason = _REASONS.get(self.status, "Unknown")
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(self.body))))
        start_response(f"{self.status} {reason}", headers)
        return [self.body]


class _QuietHandler(WSGIRequestHandler):
    """No request-line logging: the query string may carry an authorization code."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


class QuietThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = False

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's reverse DNS lookup (getfqdn); set what wsgiref needs.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Dropped connections and the like: never print a traceback (it could echo input).
        log.debug("sandbox: connection error from a client")


class BackgroundServer:
    """Serve a WSGI app on a daemon thread until :meth:`stop`."""

    def __init__(self, app: WsgiApp, host: str, port: int) -> None:
        self._httpd = QuietThreadingWSGIServer((host, port), _QuietHandler)
        self._httpd.set_app(app)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="make-sandbox-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
