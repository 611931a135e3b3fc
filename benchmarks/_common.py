"""Shared helpers: a loopback API server in a child process, paired timing, medians."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class ServerProcess:
    """``_server.py`` in its own process (so it does not share the client's GIL)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_server.py")],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("PORT="), line
        self.port = int(line[5:])
        self.base = f"http://127.0.0.1:{self.port}"
        self.api_url = self.base + "/api/v2/"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def paired(a: Callable[[], object], b: Callable[[], object], rounds: int,
           warmup: int = 1) -> list[tuple[float, float]]:
    """Time ``a`` and ``b`` back to back, ``rounds`` times, alternating which goes first."""
    for _ in range(warmup):
        a()
        b()
    out = []
    for i in range(rounds):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        t2 = time.perf_counter()
        ta, tb = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
        out.append((ta, tb))
    return out


def report(name: str, pairs: list[tuple[float, float]], target: float, unit: str = "s",
           label_a: str = "package", label_b: str = "baseline") -> float:
    ratios = [a / b for a, b in pairs]
    median = statistics.median(ratios)
    med_a = statistics.median(a for a, _ in pairs)
    med_b = statistics.median(b for _, b in pairs)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 4 else [min(ratios), max(ratios)]
    verdict = "OK" if median <= target else "OVER TARGET"
    print(f"{name}: median ratio {median:.3f} (target <= {target}) {verdict}; "
          f"quartiles {q[0]:.3f}..{q[-1]:.3f}; {len(pairs)} pairs; "
          f"median {label_a} {med_a * 1000:.1f} ms vs {label_b} {med_b * 1000:.1f} ms")
    return median


def bench_sessions(api_url: str) -> tuple[Any, Any]:
    """A logged-in ``MakeSession`` (a made-up token) and a plain ``requests.Session`` with the
    same bearer header, both for the API at ``api_url``."""
    import requests

    from make_notebook_auth import MakeSession
    from make_notebook_auth.config import MakeConfig
    from make_notebook_auth.tokens import Token

    config = MakeConfig.resolve("bench-client", issuer="http://127.0.0.1:9", api_url=api_url)
    token = Token({"access_token": "bench-token", "token_type": "Bearer",
                   "expires_in": 3600, "expires_at": time.time() + 3600})
    plain = requests.Session()
    plain.headers["Authorization"] = "Bearer bench-token"
    return MakeSession(config, token=token), plain
