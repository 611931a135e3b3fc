"""Server-side knobs that make the sandbox misbehave on purpose: Make's per-organization rate
limit (the license's ``apiLimit`` requests per minute, 429 with or without ``Retry-After``), a
per-token rate limit, and one-off injected failures (429 or 5xx)."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass

#: Where a failure can be injected: the Make-like API or the token endpoint.
TARGETS = ("api", "token")


@dataclass(frozen=True)
class Fault:
    status: int
    retry_after: int | None


class FaultInjector:
    """Thread-safe counters for injected failures and the per-token rate limit."""

    def __init__(self, rate_limit: int | None = None, window: float = 60.0, *,
                 org_limits: bool = False, org_window: float = 60.0,
                 org_retry_after: bool = True) -> None:
        if rate_limit is not None and rate_limit < 1:
            raise ValueError("rate_limit must be at least 1 request per window")
        self.rate_limit = rate_limit
        self.window = window
        #: enforce each organization's ``license.apiLimit`` per ``org_window`` seconds
        self.org_limits = org_limits
        self.org_window = org_window
        #: send ``Retry-After`` with the organization's 429 (Make does not document it)
        self.org_retry_after = org_retry_after
        #: organizations whose limit is replaced (``set_org_limit``)
        self.org_limit_overrides: dict[int, int] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, list[Fault]] = {t: [] for t in TARGETS}
        self._windows: dict[str, tuple[float, int]] = {}
        self._org_windows: dict[int, tuple[float, int]] = {}
        self._org_requests: dict[int, int] = {}
        self._org_429s: dict[int, int] = {}

    def inject(self, status: int = 429, count: int = 1, retry_after: int | None = 1,
               where: str = "api") -> None:
        """Make the next ``count`` requests to ``where`` fail with ``status``."""
        if where not in TARGETS:
            raise ValueError(f"where must be one of {TARGETS}")
        if not (status == 429 or 500 <= status <= 599):
            raise ValueError("only 429 and 5xx statuses can be injected")
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            self._pending[where].extend([Fault(status, retry_after)] * count)

    def clear(self) -> None:
        with self._lock:
            for pending in self._pending.values():
                pending.clear()
            self._windows.clear()
            self._org_windows.clear()
            self._org_requests.clear()
            self._org_429s.clear()

    def pending(self, where: str = "api") -> int:
        with self._lock:
            return len(self._pending[where])

    def take(self, where: str) -> Fault | None:
        """The next injected failure for ``where``, if any (consumed)."""
        with self._lock:
            pending = self._pending[where]
            return pending.pop(0) if pending else None

    def over_limit(self, token: str) -> int | None:
        """Count one request for ``token``; seconds to wait if it is over the rate limit."""
        if self.rate_limit is None:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now - start >= self.window:
                start, used = now, 0
            if used >= self.rate_limit:
                self._windows[key] = (start, used)
                return max(1, math.ceil(start + self.window - now))
            self._windows[key] = (start, used + 1)
            return None

    def over_org_limit(self, organization_id: int, api_limit: int) -> int | None:
        """Count one request to an organization; seconds until its window ends (at least 1)
        when it is over ``api_limit`` requests in the current window, else None.

        Windows are fixed: the first request after a window ended opens the next one.
        """
        now = time.monotonic()
        limit = self.org_limit_overrides.get(organization_id, api_limit)
        with self._lock:
            self._org_requests[organization_id] = self._org_requests.get(organization_id, 0) + 1
            if not self.org_limits:
                return None
            start, used = self._org_windows.get(organization_id, (now, 0))
            if now - start >= self.org_window:
                start, used = now, 0
            if used >= limit:
                self._org_windows[organization_id] = (start, used)
                self._org_429s[organization_id] = self._org_429s.get(organization_id, 0) + 1
                return max(1, math.ceil(start + self.org_window - now))
            self._org_windows[organization_id] = (start, used + 1)
            return None

    def org_requests(self, organization_id: int) -> int:
        """Requests the API received for an organization (429s included)."""
        with self._lock:
            return self._org_requests.get(organization_id, 0)

    def org_429s(self, organization_id: int | None = None) -> int:
        """429 answers sent for an organization (or for all)."""
        with self._lock:
            if organization_id is None:
                return sum(self._org_429s.values())
            return self._org_429s.get(organization_id, 0)
