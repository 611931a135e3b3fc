"""The package's module-level functions over the kernel's sessions."""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING

from . import registry
from .config import MakeConfig
from .errors import LoginExpiredError, MakeConfigError, NotLoggedInError, RevocationWarning

if TYPE_CHECKING:
    import pandas as pd

    from .session import MakeSession

_restore_lock = threading.Lock()


def _restore(profile: str, *, refresh: bool = True) -> MakeSession | None:
    """The login remembered on disk for ``profile`` (see ``MakeAuth(remember=True)``);
    ``refresh=False`` leaves an expired access token as it is (to revoke it)."""
    from . import cache  # persistence is an edge: imported only when needed

    store = cache.default_store()
    if not store.exists(profile):
        return None
    with _restore_lock:
        session = registry.lookup(profile)  # another thread may have restored it meanwhile
        if session is not None and session.logged_in:
            return session
        try:
            config = MakeConfig.resolve(profile=profile)
        except MakeConfigError as exc:
            raise NotLoggedInError(
                profile,
                f" A remembered login exists for profile {profile!r}, but this kernel cannot "
                f"restore it: {exc}",
            ) from None
        return store.restore(config, refresh=refresh)


def get_session(profile: str = "default") -> MakeSession:
    """The logged-in ``MakeSession`` of ``profile``; ``NotLoggedInError`` says how to log in.

    In a restarted kernel, a login made with ``remember=True`` is restored from disk (the
    client settings come from the ``MAKE_*`` environment variables) and refreshed if needed.
    """
    session = registry.lookup(profile)
    if session is not None and session.logged_in:
        return session
    restored = _restore(profile)
    if restored is not None:
        return restored
    raise NotLoggedInError(profile)


def logout(profile: str = "default") -> bool:
    """Revoke and forget ``profile``'s login (and its remembered copy on disk).

    See ``MakeSession.logout``. When a remembered login cannot be restored to revoke it (no
    client settings, or it has expired), its file is deleted and False returned.
    """
    try:
        # Revoking needs no fresh access token: never refresh here (nor wait for another
        # process's lock on the remembered logins).
        session = registry.lookup(profile)
        if session is None or not session.logged_in:
            session = _restore(profile, refresh=False)
        if session is None:
            raise NotLoggedInError(profile)
    except LoginExpiredError:
        return False  # the remembered login had expired for good; its file is gone
    except NotLoggedInError:
        from . import cache

        if not cache.delete(profile):
            raise
        warnings.warn(
            RevocationWarning(
                f"Deleted the remembered Make login of profile {profile!r} without revoking "
                "its tokens: this kernel could not restore it (set MAKE_CLIENT_ID etc.)."
            ),
            stacklevel=2,
        )
        return False
    return session.logout()


def userinfo_frame(profile: str | None = None) -> pd.DataFrame:
    """A DataFrame of OIDC userinfo: one row per logged-in profile (or just ``profile``).

    A login with an API token has no OpenID Connect: its row has the same claims, read from
    the API's ``users/me``. The ``source`` column says which (``OIDC userinfo`` or
    ``users/me (API token)``)."""
    from .frames import userinfo_frame as frame

    names = [profile] if profile is not None else registry.profiles()
    sessions = [get_session(name) for name in names]
    return frame({s.profile: {**s.userinfo(), "source": s.userinfo_source} for s in sessions})
