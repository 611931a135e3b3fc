"""Rate budgets: a sliding-window log per organization, shared by threads; pacing against the
sandbox's per-organization limits (2-second windows), 429 with and without Retry-After."""

from __future__ import annotations

import threading
import time
import warnings

import pytest

from make_notebook_auth import MakeConfigError, ratelimit
from make_notebook_auth.ratelimit import Budget, RateBudgetError


def max_in_any_window(times: list[float], window: float) -> int:
    """The most sends inside any half-open window of ``window`` seconds."""
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


# --- the budget alone --------------------------------------------------------------------------


def test_never_more_than_the_limit_in_any_window():
    budget = Budget(1, limit=4, window=0.4)
    sent = []
    for _ in range(10):
        budget.acquire()
        sent.append(time.monotonic())
    assert max_in_any_window(sent, 0.4) == 4
    # a token bucket refilled per second would allow a burst of 4, then 1 every 0.1 s: here
    # the 5th send waits until the 1st leaves the window
    assert sent[4] - sent[0] >= 0.4


def test_many_threads_one_budget():
    budget = Budget(1, limit=15, window=0.5)
    sent: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(6):
            budget.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(sent) == 48
    assert max_in_any_window(sent, 0.5) <= 15
    assert budget.sent_in_window() <= 15


def test_waits_are_bounded_with_a_clear_error():
    budget = Budget(9, limit=1, window=30.0, max_wait=0.3)
    budget.acquire()
    start = time.monotonic()
    with pytest.raises(RateBudgetError) as info:
        budget.acquire()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "Organization 9" in message and "at most 0 s" in message.replace("0.3", "0")
    assert info.value.max_wait == 0.3


def test_a_budget_without_a_limit_only_records():
    budget = Budget(1)
    for _ in range(50):
        assert budget.acquire() < 0.1
    assert budget.sent_in_window() == 50
    budget.set_limit(10)  # the sends made before count once the limit is known
    assert budget.eta(1) > 50


def test_429_slows_the_budget_and_pauses_it():
    budget = Budget(1, limit=10, window=1.0)
    assert budget.note_429(0.3) == 0.3
    assert budget.limit == 8 and budget.configured_limit == 10
    start = time.monotonic()
    budget.acquire()
    assert time.monotonic() - start >= 0.25
    # without Retry-After: a backoff that doubles (2 s for the second 429 in a row)
    assert budget.note_429(None) == 1.0  # capped at the window
    assert budget.limit == 6


def test_a_429_pauses_a_budget_whose_limit_is_unknown():
    budget = Budget(1)
    budget.acquire()
    budget.note_429(0.3)
    start = time.monotonic()
    budget.acquire()
    assert time.monotonic() - start >= 0.25 and budget.limit is None


def test_eta_counts_what_the_window_still_holds():
    budget = Budget(1, limit=2, window=10.0)
    assert budget.eta(2) == 0
    budget.acquire()
    budget.acquire()
    assert 9 < budget.eta(1) <= 10.2
    assert 19 < budget.eta(3) <= 20.2


def test_bad_limits_are_refused():
    for bad in (0, -1, 1.5, True, "60"):
        with pytest.raises(ValueError):
            Budget(1, limit=bad)


# --- the session's budgets against the sandbox -----------------------------------------------


def test_rate_share_comes_from_the_environment_and_is_checked(monkeypatch, zoned_login):
    make = zoned_login()
    assert make.rate_share == 0.5
    make.rate_share = 1.0
    with pytest.raises(MakeConfigError):
        make.rate_share = 1.5
    monkeypatch.setenv("MAKE_RATE_SHARE", "0.25")
    assert zoned_login(profile="other").rate_share == 0.25
    monkeypatch.setenv("MAKE_RATE_SHARE", "lots")
    with pytest.raises(MakeConfigError, match="MAKE_RATE_SHARE"):
        zoned_login(profile="third")


def test_api_limit_is_fetched_once_when_a_listing_starts(zoned_sandbox, zoned_login):
    make = zoned_login()
    assert ratelimit.known(4) is None or ratelimit.known(4).limit is None
    list(make.paginate("scenarios", {"teamId": 5}))
    assert ratelimit.known(4).limit == 30  # Stark Labs: Core, apiLimit 60, share 0.5
    make.rate_limit(4, 10)
    assert ratelimit.known(4).limit == 5
    make.rate_share = 0.8  # re-sizes the budgets it knows
    assert ratelimit.known(4).limit == 8


def test_pacing_keeps_under_the_limit_with_no_429(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    sb.set_org_limits(True, overrides={4: 6})
    make = zoned_login()
    make.teams()  # learn which organization team 5 is in (one teams listing each)
    make.rate_share = 1.0
    make.rate_limit(4, 6)
    before = sb.faults.org_requests(4)
    for _ in range(15):
        assert make.json("teams/5")["team"]["id"] == 5
    assert sb.faults.org_requests(4) - before == 15
    assert sb.faults.org_429s(4) == 0


def test_requests_naming_no_organization_are_not_paced(zoned_sandbox, zoned_login):
    make = zoned_login()
    make.teams()
    time.sleep(zoned_sandbox.faults.org_window)  # the listing of its teams is out of the window
    make.rate_share = 1.0
    make.rate_limit(4, 1)
    budget = ratelimit.known(4)
    budget.max_wait = 0.2
    make.json("teams/5")
    with pytest.raises(RateBudgetError):
        make.json("teams/5")
    for _ in range(5):
        assert make.json("users/me")["authUser"]["id"] == 1001
    assert make.json("teams/1")["team"]["id"] == 1  # another organization: its own budget


@pytest.mark.parametrize("retry_after", [True, False])
def test_a_429_anyway_waits_and_slows_the_budget(zoned_sandbox, zoned_login, retry_after):
    sb = zoned_sandbox
    sb.set_org_limits(True, retry_after=retry_after, overrides={4: 3})
    make = zoned_login()
    make.rate_share = 1.0
    make.rate_limit(4, 10)  # wrong: Make allows 3 per window (another client, say)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(6):
            assert make.json("teams/5")["team"]["id"] == 5
    assert sb.faults.org_429s(4) >= 1
    budget = ratelimit.known(4)
    assert budget.throttled == sb.faults.org_429s(4)
    assert budget.limit is not None and budget.limit < 10


def test_many_threads_share_one_budget_through_the_session(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    sb.set_org_limits(True, overrides={4: 8})
    make = zoned_login()
    make.rate_share = 1.0
    make.rate_limit(4, 8)
    make.json("teams/5")
    errors: list[BaseException] = []

    def worker():
        try:
            for _ in range(3):
                make.json("teams/5")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sb.faults.org_429s(4) == 0
    assert sb.faults.org_requests(4) >= 19
