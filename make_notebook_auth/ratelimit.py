"""Per-organization rate budgets: never more than ``limit`` requests in any window.

Make limits API requests per organization per minute (the license's ``apiLimit``: Core 60,
Pro 120, Teams 240, Enterprise 1,000) and answers 429 over it. Whether its window is fixed or
sliding is not documented; a budget that holds over *any* 60-second window is safe under both,
which a token bucket refilled every second is not (it allows ``limit`` at once, then one more
each second). So each organization's budget is a sliding-window log: the send times of the
last window; a request waits until fewer than ``limit`` sends lie within the window before it.

- One :class:`Budget` per organization for the whole kernel (:func:`budget`): every session's
  requests to that organization draw from it, whoever sends them, from any thread.
- Until its limit is known (:meth:`Budget.set_limit`) a budget only records send times (so
  that the requests made before count once it is) and honours a 429's pause.
- A 429 anyway (another client spent the organization's limit) slows the budget: its limit
  drops by a fifth until a window passes without another 429, and no request to that
  organization is sent before the wait ``Retry-After`` asked for (or a backoff) is over.
- Waits are bounded: :meth:`Budget.acquire` raises :class:`RateBudgetError` rather than wait
  more than ``max_wait`` seconds (default :data:`MAX_WAIT`, two windows).

Core module: no printing, no persistence. Sharing budgets between kernels is left out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .errors import RateBudgetError

WINDOW = 60.0  # seconds: Make counts requests per organization per minute
MAX_WAIT = 2 * WINDOW  # the longest a request waits for its budget before giving up
SLOWDOWN = 0.8  # each 429 multiplies the limit by this, until a quiet window passes
DEFAULT_RATE_SHARE = 0.5  # share of an organization's apiLimit a kernel uses by default


class Budget:
    """A sliding-window log of send times for one organization (thread-safe).

    ``limit`` requests (``None``: not known yet, not paced) in any ``window`` seconds.
    ``clock`` and ``window`` are seams for tests.
    """

    def __init__(self, organization_id: int | None = None, limit: int | None = None, *,
                 window: float = WINDOW, max_wait: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.organization_id = organization_id
        self.window = float(window)
        self.max_wait = float(max_wait if max_wait is not None else 2 * window)
        # sends that leave the window this early are counted as still in it: clocks of client
        # and server differ by the network's latency
        self.margin = max(self.window / 100, min(0.1, self.window / 10))
        self._clock = clock
        self._cond = threading.Condition()
        self._sends: deque[float] = deque()
        self._configured: int | None = None
        self._limit: int | None = None
        self._paused_until = 0.0
        self._last_429 = float("-inf")
        self._strikes = 0  # 429s in a row (for the backoff without Retry-After)
        self.waited_total = 0.0
        self.throttled = 0  # 429s seen
        if limit is not None:
            self.set_limit(limit)

    # -- limit ----------------------------------------------------------------------------

    @property
    def limit(self) -> int | None:
        """Requests allowed per window now (lower than configured after a 429)."""
        return self._limit

    @property
    def configured_limit(self) -> int | None:
        return self._configured

    def set_limit(self, limit: int | None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ValueError(f"a rate limit must be an integer >= 1, got {limit!r}")
        with self._cond:
            self._configured = self._limit = limit
            self._cond.notify_all()

    # -- sending --------------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        edge = now - self.window - self.margin
        sends = self._sends
        while sends and sends[0] <= edge:
            sends.popleft()

    def _recover(self, now: float) -> None:
        if self._limit != self._configured and now - self._last_429 >= self.window:
            self._limit = self._configured
            self._strikes = 0

    def _next_slot(self, now: float, sends: Sequence[float]) -> float:
        """The earliest time at or after ``now`` one more send fits (lock held)."""
        slot = max(now, self._paused_until)
        if sends:  # first come, first served: never before a slot already reserved
            slot = max(slot, sends[-1])
        limit = self._limit
        if limit is not None and len(sends) >= limit:
            slot = max(slot, sends[len(sends) - limit] + self.window + self.margin)
        return slot

    def acquire(self) -> float:
        """Wait until a request may be sent, count it as sent, return the seconds waited.

        Requests are served first come, first served: each reserves the earliest free slot
        of the log and sleeps until then. Raises :class:`RateBudgetError` when the wait would
        be longer than ``max_wait``.
        """
        start = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                self._purge(now)
                self._recover(now)
                slot = self._next_slot(now, self._sends)
                waited = now - start
                if waited + (slot - now) > self.max_wait:
                    raise RateBudgetError(self.organization_id, waited, slot - now,
                                          self._limit, self.window, self.max_wait)
                self._sends.append(slot)  # reserved
                while now < slot and self._paused_until <= slot:
                    self._cond.wait(slot - now)
                    now = self._clock()
                if now >= slot:
                    waited = now - start
                    self.waited_total += waited
                    return waited
                # a 429 paused the budget past our slot: give it back and queue again
                try:
                    self._sends.remove(slot)
                except ValueError:
                    pass

    def note_429(self, retry_after: float | None) -> float:
        """The organization answered 429: slow down. Returns the pause (seconds) before the
        next request to it; ``Retry-After`` when given, else a backoff doubling per 429 in a
        row (2, 4, 8 ... s, at most a window)."""
        with self._cond:
            now = self._clock()
            self.throttled += 1
            self._strikes += 1
            self._last_429 = now
            if self._limit is not None:
                self._limit = max(1, int(self._limit * SLOWDOWN))
            pause = retry_after if retry_after else min(self.window, 2.0 ** self._strikes)
            self._paused_until = max(self._paused_until, now + pause)
            self._cond.notify_all()
            return pause

    def eta(self, requests: int) -> float:
        """Seconds the budget needs, at the least, before ``requests`` more have been sent."""
        if requests <= 0:
            return 0.0
        with self._cond:
            now = self._clock()
            self._purge(now)
            sends = list(self._sends)
            slot = now
            for _ in range(requests):
                slot = self._next_slot(now, sends)
                sends.append(slot)
            return slot - now

    def sent_in_window(self) -> int:
        with self._cond:
            self._purge(self._clock())
            return len(self._sends)

    def __repr__(self) -> str:
        return (f"<Budget organization={self.organization_id} limit={self._limit}"
                f"/{self.window:.0f}s sent={len(self._sends)}>")


# --- the kernel's budgets -----------------------------------------------------------------

_budgets: dict[int, Budget] = {}
_budgets_lock = threading.Lock()
_window = WINDOW


def budget(organization_id: int) -> Budget:
    """The kernel's budget for an organization (created on first use, limit unknown)."""
    found = _budgets.get(organization_id)
    if found is not None:
        return found
    with _budgets_lock:
        found = _budgets.get(organization_id)
        if found is None:
            found = _budgets[organization_id] = Budget(organization_id, window=_window)
        return found


def known(organization_id: int) -> Budget | None:
    return _budgets.get(organization_id)


def reset(window: float = WINDOW) -> None:
    """Forget every budget; new ones use ``window`` seconds (a seam for tests)."""
    global _window
    with _budgets_lock:
        _budgets.clear()
        _window = float(window)


# --- the budget of the request being sent (read by the retry policy) ----------------------

_local = threading.local()


def current() -> Budget | None:
    """The budget the request this thread is sending draws from, if any."""
    return getattr(_local, "budget", None)


@contextmanager
def _this_thread(name: str, value: Any) -> Iterator[None]:
    """Set a per-thread setting of this module for the ``with`` block, then restore it."""
    previous = getattr(_local, name, None)
    setattr(_local, name, value)
    try:
        yield
    finally:
        setattr(_local, name, previous)


def sending_for(target: Budget | None) -> AbstractContextManager[None]:
    """Requests sent inside draw from ``target`` (None: from no budget)."""
    return _this_thread("budget", target)


def quiet() -> bool:
    """Whether this thread is sending a look-up that must not be retried."""
    return bool(getattr(_local, "quiet", False))


def no_retries() -> AbstractContextManager[None]:
    """Requests sent inside are tried once (look-ups: zones, licenses, teams)."""
    return _this_thread("quiet", True)


__all__ = [
    "DEFAULT_RATE_SHARE",
    "MAX_WAIT",
    "WINDOW",
    "Budget",
    "RateBudgetError",
    "budget",
    "current",
    "known",
    "no_retries",
    "quiet",
    "reset",
    "sending_for",
]
