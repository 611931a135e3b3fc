"""Benchmark 6: a limit-bound fan-out: 70 requests to one organization allowed 60 a minute.

dave's Tiny Core Co (Core: ``apiLimit`` 60 per minute, 68 teams of 3 scenarios) with
``make.rate_share = 1.0``: ``make.frame("scenarios", {"organizationId": 11}, per="team")``
sends 70 requests to the organization (its license, its teams listing, 68 team listings). The
sandbox enforces the limit as Make does (429 past 60 requests in its minute, fixed window).

Targets: at most one 429 seen by the server, and a wall time within 1.15x of the ideal
schedule: what the limit allows (the first 60 at once, the other 10 once the first minute is
over, each batch as fast as the unthrottled requests went). Beside it, the naive loop: the
same 70 requests one after the other with requests, no budget (against a fresh sandbox); its
429 count is printed.

Takes a little over a minute by nature (the limit is per minute). Run it by itself:
``python benchmarks/bench_ratelimit.py``.
"""

from __future__ import annotations

import math
import time

import requests
from _sandbox import TINY, login

from make_notebook_auth.sandbox import Sandbox

LIMIT = 60
WINDOW = 60.0
TARGET = 1.15


def naive(sb: Sandbox, urls: list[tuple[str, dict]], token: str) -> int:
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = "Bearer " + token
    throttled = 0
    for url, params in urls:
        throttled += session.get(url, params=params, timeout=30).status_code == 429
    return throttled


def main() -> tuple[float, int]:
    with Sandbox(org_limits=True) as sb:
        make = login(sb)
        make.rate_share = 1.0
        make.orgs()  # the organizations listing names no organization: not counted
        start = time.monotonic()
        frame = make.frame("scenarios", {"organizationId": TINY}, per="team", progress=False)
        wall = time.monotonic() - start
        sent = sb.faults.org_requests(TINY)
        throttled = sb.faults.org_429s(TINY)
        assert len(frame) == 68 * 3, len(frame)
    # the ideal schedule: the requests beyond each full window wait for the next one
    batches = math.ceil(sent / LIMIT)
    burst = _burst_time(sent)
    ideal = (batches - 1) * WINDOW + burst
    ratio = wall / ideal
    verdict = "OK" if ratio <= TARGET and throttled <= 1 else "OVER TARGET"
    print(f"6. limit-bound fan-out: {sent} requests to an organization allowed {LIMIT}/min, "
          f"rate_share 1.0: {wall:.1f} s vs ideal schedule {ideal:.1f} s: ratio {ratio:.3f} "
          f"(target <= {TARGET}); 429s seen by the server: {throttled} (target <= 1) {verdict}")

    with Sandbox(org_limits=True) as sb:
        make = login(sb, profile="naive")
        base = f"http://{sb.zone_of(TINY)}/api/v2/"
        team_ids = [t for t in range(201, 269)]
        urls = [(base + f"organizations/{TINY}", {}),
                (base + "teams", {"organizationId": TINY})] + \
               [(base + "scenarios", {"teamId": t}) for t in team_ids]
        naive_429s = naive(sb, urls, make.access_token())
        print(f"   naive requests loop, same {len(urls)} requests: {naive_429s} answered 429 "
              f"(server: {sb.faults.org_429s(TINY)})")
    return ratio, throttled


def _burst_time(sent: int) -> float:
    """Seconds the last batch takes at full speed: measured on a sandbox without limits."""
    with Sandbox() as sb:
        make = login(sb, profile="burst")
        rest = sent - LIMIT * (math.ceil(sent / LIMIT) - 1)
        base = f"http://{sb.zone_of(TINY)}/api/v2/"
        make.teams()
        start = time.monotonic()
        for team in range(201, 201 + rest):
            make.get(base + "scenarios", params={"teamId": team})
        return time.monotonic() - start


if __name__ == "__main__":
    main()
