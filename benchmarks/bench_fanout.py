"""Benchmark 5: a latency-bound fan-out: 40 team listings, 100 ms per answer.

``make.frame("scenarios", {"organizationId": 10}, per="team")`` (dave's Massive Dynamic:
40 teams of 12 scenarios, Enterprise limit, so the budget never binds) against what an
analyst writes with requests: a loop over the same 40 teams, one ``scenarios?teamId=`` call
after the other on the organization's zone, then ``pd.DataFrame``. The sandbox answers every
API call after 100 ms (``latency_ms``). Paired rounds, median of the ratios; target <= 0.35.
"""

from __future__ import annotations

import pandas as pd
import requests
from _common import paired, report
from _sandbox import MASSIVE, login

from make_notebook_auth.sandbox import Sandbox

ROUNDS = 7
LATENCY_MS = 100


def loop(session: requests.Session, base: str, team_ids: list[int]) -> pd.DataFrame:
    rows: list = []
    for team in team_ids:
        resp = session.get(base + "scenarios", params={"teamId": team, "pg[limit]": 100})
        resp.raise_for_status()
        rows.extend({"teamId": team, **item} for item in resp.json()["scenarios"])
    return pd.DataFrame(rows)


def main() -> float:
    with Sandbox(latency_ms=LATENCY_MS) as sb:
        make = login(sb)
        base = f"http://{sb.zone_of(MASSIVE)}/api/v2/"
        plain = requests.Session()
        plain.trust_env = False
        plain.headers["Authorization"] = "Bearer " + make.access_token()
        teams = make.teams()
        team_ids = teams.loc[teams["organizationId"] == MASSIVE, "id"].tolist()
        assert len(team_ids) == 40

        def fan_out() -> pd.DataFrame:
            return make.frame("scenarios", {"organizationId": MASSIVE}, per="team",
                              progress=False)

        a, b = fan_out(), loop(plain, base, team_ids)
        assert len(a) == len(b) == 40 * 12, (len(a), len(b))
        assert a["id"].tolist() == b["id"].tolist()
        pairs = paired(fan_out, lambda: loop(plain, base, team_ids), ROUNDS)
        return report(f"5. fan-out over 40 teams, {LATENCY_MS} ms latency "
                      f"({make.workers} workers)", pairs, 0.35,
                      label_a="frame(per='team')", label_b="sequential loop")


if __name__ == "__main__":
    main()
