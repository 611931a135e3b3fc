"""Benchmark 1: per-request overhead of MakeSession vs a plain requests.Session.

2,000 GETs each to a loopback server (keep-alive), same bearer header, in 100 paired rounds
of 20; prints the median of the pairwise ratios. Target: <= 1.05.

A second line times the client side alone (an adapter that answers at once, no socket):
the noise of a loopback server on a busy machine hides a few microseconds either way.
"""

from __future__ import annotations

import requests
from _common import ServerProcess, bench_sessions, paired, report
from requests.adapters import BaseAdapter

ROUNDS, PER_ROUND = 100, 20


class InstantAdapter(BaseAdapter):
    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        resp = requests.Response()
        resp.status_code = 200
        resp._content = b'{"ok":true}'
        resp.request = request
        resp.url = request.url
        return resp

    def close(self) -> None:
        pass


def main() -> float:
    with ServerProcess() as server:
        make, plain = bench_sessions(server.api_url)
        url = server.api_url + "ping"

        def with_make() -> None:
            for _ in range(PER_ROUND):
                make.get("ping").raise_for_status()

        def with_plain() -> None:
            for _ in range(PER_ROUND):
                plain.get(url).raise_for_status()

        pairs = paired(with_make, with_plain, ROUNDS, warmup=2)
        ratio = report(f"1. per-request overhead ({ROUNDS * PER_ROUND} GETs each)", pairs,
                       1.05, label_a="MakeSession", label_b="requests.Session")
        for sess in (make, plain):
            sess.mount("http://", InstantAdapter())
        pairs = paired(with_make, with_plain, ROUNDS, warmup=2)
        report("   client side only (no socket)", pairs, 1.05, label_a="MakeSession",
               label_b="requests.Session")
        return ratio


if __name__ == "__main__":
    main()
