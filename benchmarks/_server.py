"""A quick Make-like API for the benchmarks: HTTP/1.1 keep-alive on 127.0.0.1.

GET /api/v2/ping            -> {"ok": true}
GET /api/v2/items?pg[...]   -> 10,000 flat items, Make's pagination
GET /api/v2/nested?pg[...]  -> 10,000 items with nested objects
Tokens are not checked. Prints ``PORT=<port>`` first.
"""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

N = 10_000
FLAT = [{"id": i, "name": f"Scenario #{i}", "teamId": 1 + i % 3, "isActive": i % 5 != 0,
         "created": "2024-01-08T09:00:00.000Z", "dlqCount": i % 4, "folderId": None,
         "description": "Moves data from A to B."} for i in range(1, N + 1)]
NESTED = [{**item, "scheduling": {"type": "indefinitely", "interval": 900},
           "createdByUser": {"id": 1001, "name": "Alice Analyst", "email": "a@example.test"}}
          for item in FLAT]
PING = b'{"ok":true}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path == "/api/v2/ping":
            body = PING
        else:
            source = {"/api/v2/items": ("items", FLAT),
                      "/api/v2/nested": ("nested", NESTED)}.get(parts.path)
            if source is None:
                self.send_error(404)
                return
            q = parse_qs(parts.query)
            offset = int(q.get("pg[offset]", ["0"])[0])
            limit = int(q.get("pg[limit]", ["100"])[0])
            key, items = source
            body = json.dumps({key: items[offset:offset + limit],
                               "pg": {"offset": offset, "limit": limit}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT={server.server_address[1]}", flush=True)
    server.serve_forever()
