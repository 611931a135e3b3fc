"""The kernel's logged-in sessions, one per profile name (in memory only)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import MakeSession

_sessions: dict[str, MakeSession] = {}
_lock = threading.Lock()

def remember(session: MakeSession) -> None:
    with _lock:
        _sessions[session.profile] = session


def forget(profile: str, session: MakeSession | None = None) -> None:
    """Drop ``profile``'s session (only if it is ``session``, when given)."""
    with _lock:
        current = _sessions.get(profile)
        if current is not None and (session is None or current is session):
            del _sessions[profile]


def lookup(profile: str) -> MakeSession | None:
    with _lock:
        return _sessions.get(profile)


def profiles() -> list[str]:
    with _lock:
        return list(_sessions)
