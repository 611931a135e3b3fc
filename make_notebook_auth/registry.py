"""The kernel's logged-in sessions, one per profile name (in memory only)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import MakeSession

_sessions: dict[str, MakeSession] = {}
_lock = threading.Lock()
_logout_hooks: list[Callable[[str], None]] = []


def on_logout(hook: Callable[[str], None]) -> None:
    """Call ``hook(profile)`` whenever a profile logs out (front ends forget what they keep)."""
    _logout_hooks.append(hook)


def logged_out(profile: str) -> None:
    for hook in list(_logout_hooks):
        hook(profile)


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
