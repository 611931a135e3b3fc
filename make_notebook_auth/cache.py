"""Persistence edge: remembered logins (``MakeAuth(..., remember=True)``).

A :class:`LoginStore` is the one object persistence goes through: ``MakeAuth`` picks one
(:func:`default_store`) and hands it to its sessions (``session.store``), which save through
it after every new token, refresh inside its cross-process lock and delete through it on
logout. Two stores: :class:`KeyringStore`, the OS keychain through ``keyring`` (when it has a
secure backend), and :class:`FileStore`, described below. ``MAKE_NOTEBOOK_AUTH_STORE``
(``keyring`` or ``file``) forces one; asking for the keychain where none is usable raises
``RememberedLoginError`` (never a silent plaintext fallback).

The file store:

One JSON file per profile in the cache folder: ``MAKE_NOTEBOOK_AUTH_CACHE`` if set, else the
user's cache directory (``platformdirs``, e.g. ``~/.cache/make-notebook-auth``). The folder is
created 0700 when missing. An existing folder is used only when it belongs to this user and
group and others have no access to it; otherwise ``RememberedLoginError`` (the default folder of
this user's own is tightened to 0700 instead, with a warning). Files are created 0600 before a
byte is written, written to a temporary file and renamed over the old one (``os.replace``), so
a reader sees the old file or the new one, never half of one; a file another user owns or
others may read is ignored.

Refreshes hold an exclusive ``flock`` on the folder, waiting at most ``LOCK_WAIT`` seconds
(then ``RememberedLoginError``); logging out never waits for it.

The file holds the tokens (access, refresh, ID token), the ID token's verified claims, and
which issuer, client id and API base they belong to: never the client secret. A restoring
kernel takes the client's settings from its environment (``MAKE_CLIENT_ID``,
``MAKE_CLIENT_SECRET``, ``MAKE_ISSUER``, ``MAKE_API_URL``/``MAKE_ZONE``) or from arguments; a
file written for another issuer or client id is reported and ignored, as is a corrupt file or
one other users could read. Logging out deletes the file.

Only this module touches the disk; the core imports it lazily.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import stat
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import MakeConfig, require_secure
from .errors import LoginExpiredError, MakeError, RememberedLoginError, RememberedLoginWarning

if TYPE_CHECKING:
    from .session import MakeSession

ENV_VAR = "MAKE_NOTEBOOK_AUTH_CACHE"
APP_NAME = "make-notebook-auth"
FORMAT = "make-notebook-auth/remembered-login"
VERSION = 1
MAX_FILE_SIZE = 256 * 1024
LOCK_WAIT = 10.0  # seconds a refresh waits for another process's lock on the folder
_LOCK_POLL = 0.05
TOKEN_FIELDS = ("access_token", "refresh_token", "id_token", "token_type", "expires_in",
                "expires_at", "scope")


def _warn(message: str) -> None:
    warnings.warn(RememberedLoginWarning(message), stacklevel=3)


# --- where ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The folder for remembered logins (not created here)."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP_NAME, appauthor=False))


def login_path(profile: str) -> Path:
    """The file of ``profile``'s remembered login: a readable, file-system-safe name."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", profile)[:40] or "_"
    digest = hashlib.sha256(profile.encode("utf-8")).hexdigest()[:12]
    return cache_dir() / f"login-{slug}-{digest}.json"


def exists(profile: str) -> bool:
    try:
        return login_path(profile).is_file()
    except OSError:
        return False


def _is_default_dir() -> bool:
    return not os.environ.get(ENV_VAR, "").strip()


def _check_dir(folder: Path) -> None:
    """Raise ``RememberedLoginError`` unless ``folder`` is this user's and closed to others.

    The package's default folder, when it is this user's, is tightened to 0700 instead (with a
    warning). Ownership is decided on the owner's uid, not on what this process may do (root
    may do anything)."""
    info = os.stat(folder)  # follows a symlink: what counts is the folder written into
    if not stat.S_ISDIR(info.st_mode):
        raise RememberedLoginError(
            f"The folder for remembered Make logins, {folder}, is not a folder. Remove it, or "
            f"set {ENV_VAR} to a folder of your own.")
    if not hasattr(os, "getuid"):
        return
    if info.st_uid != os.getuid():
        raise RememberedLoginError(
            f"The folder for remembered Make logins, {folder}, belongs to another user (uid "
            f"{info.st_uid}): nothing is read from or written into it. Set {ENV_VAR} to a "
            "folder of your own (it is created with mode 0700).")
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if not loose:
        return
    if _is_default_dir():
        os.chmod(folder, 0o700)
        _warn(f"The folder for remembered Make logins, {folder}, was open to other users "
              f"(mode {stat.S_IMODE(info.st_mode):04o}); it is now 0700.")
        return
    raise RememberedLoginError(
        f"The folder for remembered Make logins, {folder}, is open to other users (mode "
        f"{stat.S_IMODE(info.st_mode):04o}): tokens are never written there. Run "
        f"`chmod 700 {folder}`, or set {ENV_VAR} to another folder.")


def _ensure_dir() -> Path:
    """The cache folder, created 0700 if missing and checked (``_check_dir``) either way.

    ``RememberedLoginError`` if it is unsafe; ``OSError`` if it cannot be created."""
    folder = cache_dir()
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)  # whatever the umask
    _check_dir(folder)
    return folder


# --- write ---------------------------------------------------------------------------------


def _document(session: MakeSession) -> dict[str, Any]:
    token = session.token or {}
    config = session.config
    return {
        "format": FORMAT,
        "version": VERSION,
        "profile": config.profile,
        "issuer": config.issuer,
        "client_id": config.client_id,
        "api_url": session.api_url,
        "saved_at": time.time(),
        "token": {k: token[k] for k in TOKEN_FIELDS if token.get(k) is not None},
        "id_claims": dict(session.id_claims),
    }


def write(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically, the file 0600 from its creation."""
    write_bytes(path, json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, the file 0600 from its creation."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), 0o600)  # whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _lock(fd: int, folder: Path) -> None:
    """Take the exclusive ``flock`` on ``fd``, waiting at most ``LOCK_WAIT`` seconds."""
    import fcntl

    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise RememberedLoginError(
                    f"Another process has held the lock on the remembered Make logins in "
                    f"{folder} for more than {LOCK_WAIT:g} s (another kernel refreshing the same "
                    "login, or one that hangs). Try again in a moment; if it persists, find "
                    "that process, or log out and in again.") from None
            time.sleep(_LOCK_POLL)


# --- read ----------------------------------------------------------------------------------


def _read_file(path: Path) -> bytes | None:
    """The file's bytes; None if missing; warns and returns None if it is unsafe to use."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        _warn(f"The remembered Make login {path} could not be opened "
              f"({exc.strerror or type(exc).__name__}); it is ignored.")
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            _warn(f"The remembered Make login {path} is not a regular file; it is ignored.")
            return None
        if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
            _warn(f"The remembered Make login {path} belongs to another user or others may "
                  "read it; it is ignored (delete it and log in again with remember=True).")
            return None
        if info.st_size > MAX_FILE_SIZE:
            _warn(f"The remembered Make login {path} is too large to be one; it is ignored.")
            return None
        return handle.read(MAX_FILE_SIZE + 1)


def parse(raw: bytes, where: str, config: MakeConfig) -> dict[str, Any] | None:
    """The remembered login in ``raw`` if it is one of this package's documents for
    ``config``'s profile, issuer and client id; else warns (naming ``where``) and None."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    token = doc.get("token") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or doc.get("version") != VERSION
        or not isinstance(token, dict)
        or not isinstance(token.get("access_token"), str)
        or not isinstance(doc.get("issuer"), str)
        or not isinstance(doc.get("client_id"), str)
        or not isinstance(doc.get("id_claims", {}), dict)
        or not isinstance(doc.get("api_url") or "", str)
        or not isinstance(token.get("expires_at", 0), (int, float))
    ):
        _warn(f"The remembered Make login {where} is corrupt or not one of this package's "
              "files; it is ignored. Log in again (remember=True writes a new one).")
        return None
    if doc.get("profile") != config.profile or \
            doc["issuer"].rstrip("/") != config.issuer.rstrip("/") or \
            doc["client_id"] != config.client_id:
        _warn(f"The remembered Make login for profile {config.profile!r} was made with "
              f"another issuer or client (client id {doc['client_id']!r} at "
              f"{doc['issuer']!r}; this kernel uses {config.client_id!r} at "
              f"{config.issuer!r}); it is ignored.")
        return None
    return doc


def _same_login(doc: dict[str, Any], session: MakeSession) -> bool:
    """Whether a remembered document holds ``session``'s login: same issuer, client and user."""
    config = session.config
    sub = session.id_claims.get("sub")
    return (
        isinstance(sub, str) and bool(sub)
        and (doc.get("id_claims") or {}).get("sub") == sub
        and str(doc.get("issuer", "")).rstrip("/") == config.issuer.rstrip("/")
        and doc.get("client_id") == config.client_id
    )


# --- stores ----------------------------------------------------------------------------------


class LoginStore:
    """Where remembered logins live: one document per profile, plus the cross-process lock
    held around refreshes. ``MakeAuth(remember=True)`` hands one to its sessions
    (``session.store``): the session saves through it after every new token, deletes through
    it on logout and refreshes inside its :meth:`refresh_lock`. Subclasses say where the
    bytes go (:meth:`read`, :meth:`write`, :meth:`remove`)."""

    #: short name, for ``MAKE_NOTEBOOK_AUTH_STORE`` and messages
    kind = "?"

    def describe(self) -> str:
        """Where logins are kept, for the user (no secret)."""
        raise NotImplementedError

    def where(self, profile: str) -> str:
        return f"of profile {profile!r} in {self.describe()}"

    def read(self, profile: str) -> bytes | None:
        raise NotImplementedError

    def write(self, profile: str, data: bytes) -> None:
        raise NotImplementedError

    def remove(self, profile: str) -> bool:
        raise NotImplementedError

    def exists(self, profile: str) -> bool:
        try:
            return self.read(profile) is not None
        except (OSError, MakeError):
            return False

    # -- shared logic --------------------------------------------------------------------

    def load(self, config: MakeConfig) -> dict[str, Any] | None:
        """The remembered login for ``config``'s profile, issuer and client id, else None
        (a corrupt document or one for another issuer or client is reported and ignored)."""
        raw = self.read(config.profile)
        return None if raw is None else parse(raw, self.where(config.profile), config)

    def save(self, session: MakeSession) -> None:
        """Remember ``session``'s tokens (never raises: warns instead)."""
        if not session.logged_in or not (session.token or {}).get("access_token"):
            return
        try:
            data = json.dumps(_document(session), separators=(",", ":"),
                              sort_keys=True).encode("utf-8")
            self.write(session.profile, data)
        except RememberedLoginError as exc:
            _warn(f"{exc} The login works in this kernel but will not survive a restart.")
        except (OSError, TypeError, ValueError) as exc:
            _warn(f"Could not remember the Make login {self.where(session.profile)} "
                  f"({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}). The "
                  "login works in this kernel but will not survive a restart.")

    def delete(self, profile: str) -> bool:
        """Forget ``profile``'s remembered login; True if one was removed (never raises)."""
        try:
            return self.remove(profile)
        except (OSError, MakeError) as exc:
            _warn(f"Could not delete the remembered Make login {self.where(profile)} "
                  f"({getattr(exc, 'strerror', None) or exc}).")
            return False

    @contextlib.contextmanager
    def refresh_lock(self, session: MakeSession) -> Iterator[dict[str, Any] | None]:
        """Held around a remembered session's refresh, across processes: an exclusive
        ``flock`` on the cache folder itself (whichever store holds the tokens; no secret is
        in the folder for the keychain), waiting at most ``LOCK_WAIT`` seconds, then
        ``RememberedLoginError``. Yields the remembered token when it is this same login's
        (same issuer, client and user), so that a second kernel adopts a token the first one
        already refreshed instead of replaying the spent refresh token (which makes a
        provider revoke the whole grant). Another user's login is never adopted."""
        try:
            import fcntl  # noqa: F401 (only to know whether flock exists)
            have_flock = True
        except ImportError:  # no flock (Windows): no lock across processes
            have_flock = False
        fd: int | None = None
        try:
            folder: Path | None = _ensure_dir()
            assert folder is not None
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                         | getattr(os, "O_CLOEXEC", 0))
        except (OSError, RememberedLoginError):
            # No folder to lock (it cannot be created), or one that is unsafe to use: refresh
            # without it; saving the new token then says why not, for the file store.
            folder = None
        try:
            if fd is not None and folder is not None and have_flock:
                _lock(fd, folder)
            doc = self.load(session.config) if folder is not None or self.kind != "file" \
                else None
            yield dict(doc["token"]) if doc is not None and _same_login(doc, session) else None
        finally:
            if fd is not None:
                os.close(fd)  # closing the descriptor releases the flock

    def attach(self, session: MakeSession) -> None:
        """Keep ``session`` remembered here (``session.store = self``)."""
        session.store = self

    def restore(self, config: MakeConfig, *, refresh: bool = True) -> MakeSession | None:
        """The remembered login of ``config.profile`` as a logged-in ``MakeSession``, else
        None. If this kernel already has a logged-in session for the profile and client,
        that one.

        An access token about to expire is refreshed now. A login that has expired for good
        (no refresh token, or the provider refused it) raises ``LoginExpiredError`` and is
        deleted; a network failure during the refresh propagates and keeps it.
        ``refresh=False`` returns the session as remembered (logging out needs no fresh token).
        """
        from . import registry, tokens
        from .session import MakeSession

        current = registry.lookup(config.profile)
        if current is not None and current.logged_in and current.config.client_id == \
                config.client_id and current.config.issuer == config.issuer:
            # This kernel's session is the newest copy: a second one would refresh on its own
            # and replay a rotated refresh token (the provider then revokes the whole grant).
            return current
        doc = self.load(config)
        if doc is None:
            return None
        if config.api_url is None and doc.get("api_url"):
            try:
                api = require_secure(doc["api_url"], "The remembered API URL")
            except MakeError:
                api = None
            if api:
                config = dataclasses.replace(config, api_url=api)
        token = tokens.Token(doc["token"])
        session = MakeSession(config)
        session._activate(token, None, doc.get("id_claims") or {})
        self.attach(session)  # after activation: nothing to save yet
        if not refresh:
            return session
        try:
            session.access_token()  # refreshes if needed; raises if expired for good
        except LoginExpiredError:
            registry.forget(session.profile, session)
            self.delete(config.profile)
            raise
        except MakeError:  # network or provider trouble: the remembered login may be good
            registry.forget(session.profile, session)
            raise
        return session


class FileStore(LoginStore):
    """One 0600 JSON file per profile in the cache folder (see the module's docstring)."""

    kind = "file"

    def describe(self) -> str:
        return f"a file (mode 0600) in {cache_dir()}"

    def where(self, profile: str) -> str:
        return str(login_path(profile))

    def read(self, profile: str) -> bytes | None:
        path = login_path(profile)
        if path.parent.is_dir():
            _check_dir(path.parent)
        return _read_file(path)

    def write(self, profile: str, data: bytes) -> None:
        _ensure_dir()
        write_bytes(login_path(profile), data)

    def remove(self, profile: str) -> bool:
        try:
            login_path(profile).unlink()
            return True
        except FileNotFoundError:
            return False

    def exists(self, profile: str) -> bool:
        return exists(profile)

    def attach(self, session: MakeSession) -> None:
        """Also raises ``RememberedLoginError`` at once if the cache folder is unsafe."""
        with contextlib.suppress(OSError):  # cannot be created: saving warns later
            _ensure_dir()
        super().attach(session)


KEYRING_SERVICE = "make-notebook-auth"
STORE_ENV = "MAKE_NOTEBOOK_AUTH_STORE"
_INSECURE_BACKENDS = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")


def keyring_backend() -> tuple[Any, str | None]:
    """``(keyring module, None)`` when ``keyring`` is installed with a secure backend (Secret
    Service, macOS Keychain, Windows Credential Locker), else ``(None, why not)``."""
    try:
        import keyring
    except ImportError:
        return None, ("the keyring package is not installed (pip install "
                      "'make-notebook-auth[keyring]')")
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - any backend failure means "not usable"
        return None, f"keyring found no backend ({type(exc).__name__})"
    backends = getattr(backend, "backends", None) or [backend]  # a ChainerBackend
    usable = [b for b in backends
              if not type(b).__module__.startswith(_INSECURE_BACKENDS)]
    if not usable:
        names = ", ".join(f"{type(b).__module__}.{type(b).__name__}" for b in backends)
        return None, f"keyring has no secure backend here (only {names})"
    return keyring, None


class KeyringStore(LoginStore):
    """The OS keychain through ``keyring``: one entry per profile (service
    ``make-notebook-auth``, user ``login:<profile>``) holding the same document as the file.
    Nothing but the refresh lock (the cache folder, no secret in it) is on disk."""

    kind = "keyring"

    def __init__(self, keyring: Any = None) -> None:
        if keyring is None:
            keyring, why = keyring_backend()
            if keyring is None:
                raise RememberedLoginError(
                    f"The OS keychain cannot be used: {why}. Unset {STORE_ENV} (or set it to "
                    "'file') to keep remembered logins in a 0600 file instead.")
        self._keyring = keyring

    def describe(self) -> str:
        backend = self._keyring.get_keyring()
        name = getattr(backend, "name", None) or type(backend).__name__
        return f"the OS keychain ({name})"

    @staticmethod
    def _user(profile: str) -> str:
        return f"login:{profile}"

    def _call(self, what: str, func: Any, *args: Any) -> Any:
        from keyring.errors import KeyringError

        try:
            return func(KEYRING_SERVICE, *args)
        except KeyringError as exc:
            raise RememberedLoginError(
                f"The OS keychain refused to {what} the remembered Make login "
                f"({type(exc).__name__}; is it locked?).") from None

    def read(self, profile: str) -> bytes | None:
        value = self._call("read", self._keyring.get_password, self._user(profile))
        if value is None:
            return None
        if len(value) > MAX_FILE_SIZE:
            _warn(f"The remembered Make login {self.where(profile)} is too large to be one; "
                  "it is ignored.")
            return None
        return str(value).encode("utf-8")

    def write(self, profile: str, data: bytes) -> None:
        self._call("save", self._keyring.set_password, self._user(profile),
                   data.decode("utf-8"))

    def remove(self, profile: str) -> bool:
        from keyring.errors import PasswordDeleteError

        try:
            self._call("delete", self._keyring.delete_password, self._user(profile))
        except RememberedLoginError:
            if self.read(profile) is None:
                return False
            raise
        except PasswordDeleteError:
            return False
        return True


_noticed: set[str] = set()


def default_store() -> LoginStore:
    """The store for ``remember=True``: ``MAKE_NOTEBOOK_AUTH_STORE`` (``keyring`` or
    ``file``) if set; otherwise the OS keychain when ``keyring`` has a secure backend here,
    else the file. Asking for ``keyring`` where none is usable raises
    ``RememberedLoginError``: never a silent fallback to plain text on disk."""
    wanted = os.environ.get(STORE_ENV, "").strip().lower()
    if wanted == "file":
        return FileStore()
    if wanted == "keyring":
        return KeyringStore()
    if wanted:
        raise RememberedLoginError(f"{STORE_ENV} must be 'keyring' or 'file', got {wanted!r}.")
    keyring, _why = keyring_backend()
    return KeyringStore(keyring) if keyring is not None else FileStore()


def notice(store: LoginStore) -> str | None:
    """The one-time notice (per process and kind of store) saying where logins are kept."""
    if store.kind in _noticed:
        return None
    _noticed.add(store.kind)
    extra = "" if store.kind == "keyring" else (
        " (no secure OS keychain is usable here; install the [keyring] extra on a desktop "
        "to use it)")
    return f"Remembered Make logins are kept in {store.describe()}{extra}."


def forget_everywhere(profile: str) -> bool:
    """Delete ``profile``'s remembered login from the file and, when usable, the keychain
    (unless ``MAKE_NOTEBOOK_AUTH_STORE=file`` keeps the package away from the keychain)."""
    removed = FileStore().delete(profile)
    if os.environ.get(STORE_ENV, "").strip().lower() == "file":
        return removed
    keyring, _why = keyring_backend()
    if keyring is not None:
        removed = KeyringStore(keyring).delete(profile) or removed
    return removed


# --- the default store, as functions -------------------------------------------------------


def load(config: MakeConfig) -> dict[str, Any] | None:
    return default_store().load(config)


def restore(config: MakeConfig, *, refresh: bool = True) -> MakeSession | None:
    return default_store().restore(config, refresh=refresh)


def save(session: MakeSession) -> None:
    (session.store or default_store()).save(session)


def delete(profile: str) -> bool:
    return forget_everywhere(profile)


def attach(session: MakeSession) -> None:
    default_store().attach(session)
