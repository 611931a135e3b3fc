"""Server-side knobs that make the sandbox misbehave on purpose: a per-token rate limit like
Make's (429 with ``Retry-After``) and one-off injected failures (429 or 5xx)."""

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

    def __init__(self, rate_limit: int | None = None, window: float = 60.0) -> None:
        if rate_limit is not None and rate_limit < 1:
            raise ValueError("rate_limit must be at least 1 request per window")
        self.rate_limit = rate_limit
        self.window = window
        self._lock = threading.Lock()
        self._pending: dict[str, list[Fault]] = {t: [] for t in TARGETS}
        self._windows: dict[str, tuple[float, int]] = {}

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
