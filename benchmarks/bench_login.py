"""Benchmark 4: HTTP calls made by logins and by threads hitting expiry together.

Uses the scriptable provider of the tests (``tests/fixtures_hostile.py``) on loopback, which
records every request. Targets: discovery and JWKS once per kernel, one token call per login;
N threads asking for a token at expiry cause one refresh.
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import ThreadingHTTPServer

from _common import ROOT

sys.path.insert(0, str(ROOT / "tests"))

from fixtures_hostile import HostileProvider, _handler  # noqa: E402

from make_notebook_auth import MakeAuth  # noqa: E402

THREADS = 32


def main() -> dict[str, int]:
    provider = HostileProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def login():
            auth = MakeAuth(provider.client_id, "bench-secret", issuer=provider.issuer,
                            api_url=provider.issuer + "/api/v2/")
            return auth.finish(provider.authorize(auth.start().url))

        def counts() -> tuple[int, int, int]:
            return (provider.calls("/.well-known/openid-configuration"),
                    provider.calls("/oauth/v2/oidc/jwks"), provider.calls("/oauth/v2/token"))

        t = time.perf_counter()
        login()
        first_ms = (time.perf_counter() - t) * 1000
        d1, j1, t1 = counts()
        login()
        d2, j2, t2 = counts()
        print(f"4. login cost: first login {d1} discovery + {j1} JWKS + {t1} token call(s) "
              f"({first_ms:.0f} ms); second login in the same kernel: {d2 - d1} discovery + "
              f"{j2 - j1} JWKS + {t2 - t1} token call(s) (target: 1/1/1, then 0/0/1)")

        provider.expires_in = 2
        provider.refresh_delay = 0.2
        session = login()
        time.sleep(2.1)
        before = provider.refresh_count
        barrier = threading.Barrier(THREADS)
        got: list[str] = []

        def worker() -> None:
            barrier.wait()
            got.append(session.access_token())

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        refreshes = provider.refresh_count - before
        print(f"   {THREADS} threads at expiry: {refreshes} refresh call(s), "
              f"{len(set(got))} distinct token(s) handed out (target: 1 and 1)")
        return {"discovery": d1, "jwks": j1, "token": t1, "refreshes": refreshes}
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
