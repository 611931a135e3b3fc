"""The package's module-level functions over the kernel's sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import registry
from .errors import NotLoggedInError

if TYPE_CHECKING:
    import pandas as pd

    from .session import MakeSession


def get_session(profile: str = "default") -> MakeSession:
    """The logged-in ``MakeSession`` of ``profile``; ``NotLoggedInError`` says how to log in."""
    session = registry.lookup(profile)
    if session is None or not session.logged_in:
        raise NotLoggedInError(profile)
    return session


def logout(profile: str = "default") -> bool:
    """Revoke and forget ``profile``'s login. See ``MakeSession.logout``."""
    return get_session(profile).logout()


def userinfo_frame(profile: str | None = None) -> pd.DataFrame:
    """A DataFrame of OIDC userinfo: one row per logged-in profile (or just ``profile``)."""
    from .frames import userinfo_frame as frame

    names = [profile] if profile is not None else registry.profiles()
    sessions = [get_session(name) for name in names]
    return frame({s.profile: s.userinfo() for s in sessions})
