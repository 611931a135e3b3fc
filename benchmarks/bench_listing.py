"""Benchmark 2: a 10,000-item listing to a DataFrame: ``frame()`` vs a hand-written loop.

The hand-written loop is what an analyst would write with requests: ``pg[offset]`` /
``pg[limit]`` until a short page, then ``pd.DataFrame`` (``pd.json_normalize`` for the
nested listing). Both use 100 items per page (Make's default), 101 requests each, against
the same loopback server; paired rounds, median of the pairwise ratios. Target: <= 1.10.
"""

from __future__ import annotations

import time

import pandas as pd
import requests
from _common import ServerProcess, paired, report

from make_notebook_auth import MakeSession
from make_notebook_auth.config import MakeConfig
from make_notebook_auth.tokens import Token

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
        config = MakeConfig.resolve("bench-client", issuer="http://127.0.0.1:9",
                                    api_url=server.api_url)
        token = Token({"access_token": "bench-token", "token_type": "Bearer",
                       "expires_in": 3600, "expires_at": time.time() + 3600})
        make = MakeSession(config, token=token)
        plain = requests.Session()
        plain.headers["Authorization"] = "Bearer bench-token"
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
