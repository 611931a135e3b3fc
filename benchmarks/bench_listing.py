"""Benchmark 2: a 10,000-item listing to a DataFrame: ``frame()`` vs a hand-written loop.

The hand-written loop is what an analyst would write with requests: ``pg[offset]`` /
``pg[limit]`` until a short page, then ``pd.DataFrame`` (``pd.json_normalize`` for the
nested listing). Both use 100 items per page (Make's default), 101 requests each, against
the same loopback server; paired rounds, median of the pairwise ratios. Target: <= 1.10.
"""

from __future__ import annotations

import pandas as pd
import requests
from _common import ServerProcess, bench_sessions, paired, report

ROUNDS = 15
PAGE = 100


def hand_loop(session: requests.Session, url: str, key: str, nested: bool) -> pd.DataFrame:
    rows: list = []
    offset = 0
    while True:
        resp = session.get(url, params={"pg[offset]": offset, "pg[limit]": PAGE})
        resp.raise_for_status()
        page = resp.json()[key]
        rows.extend(page)
        if len(page) < PAGE:
            break
        offset += PAGE
    return pd.json_normalize(rows) if nested else pd.DataFrame(rows)


def main() -> list[float]:
    ratios = []
    with ServerProcess() as server:
        make, plain = bench_sessions(server.api_url)
        for path, nested in (("items", False), ("nested", True)):
            a = make.frame(path, progress=False)
            b = hand_loop(plain, server.api_url + path, path, nested)
            assert a.shape == b.shape == (10_000, a.shape[1]), (a.shape, b.shape)
            assert sorted(a.columns) == sorted(b.columns)
            pairs = paired(lambda p=path: make.frame(p, progress=False),
                           lambda p=path, n=nested: hand_loop(plain, server.api_url + p, p, n),
                           ROUNDS)
            what = "nested items, vs pd.json_normalize" if nested else "flat items"
            ratios.append(report(f"2. 10,000-item listing to a DataFrame ({what})", pairs,
                                 1.10, label_a="frame()", label_b="requests loop"))
    return ratios


if __name__ == "__main__":
    main()
