"""Remembered logins on disk (``remember=True``): permissions, atomic writes, bad files,
restore in a fresh process against the real provider, logout deleting the file."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import requests

from make_notebook_auth import (
    LoginExpiredError,
    MakeAuth,
    NotLoggedInError,
    RememberedLoginWarning,
    RevocationWarning,
    get_session,
    logout,
    oidc,
    registry,
)
from make_notebook_auth import cache as cache_mod
from make_notebook_auth.errors import RememberedLoginError


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "not-yet" / "cache"
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(folder))
    return folder


@pytest.fixture
def client_env(oidc_provider, make_api, monkeypatch):
    """What a restarted kernel has: the client's settings in its environment."""

    def set_env(client: str = "confidential", *, api_url: bool = True) -> dict[str, str]:
        cid, secret = {
            "confidential": (oidc_provider.confidential_client_id,
                             oidc_provider.confidential_client_secret),
            "short": (oidc_provider.short_confidential_client_id,
                      oidc_provider.short_confidential_client_secret),
            "public": (oidc_provider.public_client_id, ""),
        }[client]
        env = {"MAKE_CLIENT_ID": cid, "MAKE_ISSUER": oidc_provider.issuer}
        if secret:
            env["MAKE_CLIENT_SECRET"] = secret
        if api_url:
            env["MAKE_API_URL"] = make_api.api_url
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return env

    return set_env


def restart_kernel() -> None:
    """Forget everything a kernel keeps in memory."""
    for profile in registry.profiles():
        registry.forget(profile)
    oidc.forget_discovery()


def the_file(profile: str = "default") -> Path:
    return cache_mod.login_path(profile)


def read_doc(profile: str = "default") -> dict:
    return json.loads(the_file(profile).read_text())


def run_fresh(code: str, env: dict[str, str], timeout: float = 60) -> dict:
    """Run ``code`` in a new Python process; it prints one JSON line last."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE_")}
    full_env.update(env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- writing ---------------------------------------------------------------------------------


def test_off_by_default(api_login, cache_dir):
    make = api_login()
    make.refresh()
    make.logout()
    assert not cache_dir.exists()


def test_remembered_file_permissions_and_content(api_login, cache_dir, oidc_provider):
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        make = api_login("work", remember=True)
    finally:
        os.umask(old_umask)
    path = the_file("work")
    assert path.parent == cache_dir
    assert mode(cache_dir) == 0o700
    assert mode(path) == 0o600
    raw = path.read_bytes()
    assert oidc_provider.confidential_client_secret.encode() not in raw
    assert b"client_secret" not in raw
    doc = json.loads(raw)
    assert doc["profile"] == "work" and doc["client_id"] == oidc_provider.confidential_client_id
    assert doc["issuer"] == oidc_provider.issuer and doc["api_url"] == make.api_url
    assert doc["token"]["access_token"] == make.token["access_token"]
    assert doc["token"]["refresh_token"] == make.token["refresh_token"]
    assert doc["id_claims"]["sub"] == "alice"
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temp files left


def test_existing_folder_of_mine_closed_to_others_is_used(api_login, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o700)
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(folder))
    api_login(remember=True)
    assert mode(the_file()) == 0o600 and mode(folder) == 0o700


@pytest.mark.parametrize("folder_mode", [0o750, 0o705, 0o755, 0o777, 0o710])
def test_folder_open_to_others_is_refused(api_login, tmp_path, monkeypatch, folder_mode):
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, folder_mode)
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(folder))
    with pytest.raises(RememberedLoginError, match="open to other users") as info:
        api_login(remember=True)
    assert f"chmod 700 {folder}" in str(info.value)
    assert list(folder.iterdir()) == []
    assert mode(folder) == folder_mode  # someone else's choice: not changed behind their back


def test_remembered_login_in_a_folder_now_open_to_others_is_not_read(api_login, cache_dir,
                                                                     client_env):
    api_login("work", remember=True)
    os.chmod(cache_dir, 0o755)
    restart_kernel()
    client_env()
    with pytest.raises(RememberedLoginError, match="open to other users"):
        get_session("work")


def test_default_folder_open_to_others_is_tightened(api_login, tmp_path, monkeypatch):
    monkeypatch.delenv("MAKE_NOTEBOOK_AUTH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = cache_mod.cache_dir()
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)
    with pytest.warns(RememberedLoginWarning, match="it is now 0700"):
        api_login(remember=True)
    assert mode(folder) == 0o700 and the_file().is_file()


NOBODY = 65534  # another user's uid (the tests run as root, who may chown)


def chown_or_skip(path: Path, uid: int = NOBODY) -> None:
    if os.getuid() == uid:
        pytest.skip("the tests run as the other user")
    try:
        os.chown(path, uid, -1)
    except PermissionError:
        pytest.skip("chown to another user needs root")


@pytest.mark.parametrize("which", ["configured", "default"])
def test_folder_of_another_user_is_refused(api_login, tmp_path, monkeypatch, which):
    if which == "configured":
        folder = tmp_path / "theirs"
        monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(folder))
    else:  # not even the default folder is taken over
        monkeypatch.delenv("MAKE_NOTEBOOK_AUTH_CACHE", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("HOME", str(tmp_path))
        folder = cache_mod.cache_dir()
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(folder, 0o700)
    chown_or_skip(folder)
    with pytest.raises(RememberedLoginError, match="belongs to another user"):
        api_login(remember=True)
    assert list(folder.iterdir()) == []
    assert folder.stat().st_uid == NOBODY and mode(folder) == 0o700


def test_nothing_is_written_once_the_folder_belongs_to_another_user(api_login, cache_dir):
    make = api_login(remember=True)
    before = the_file().read_bytes()
    chown_or_skip(cache_dir)
    with pytest.warns(RememberedLoginWarning, match="belongs to another user"):
        make.refresh()
    assert make.logged_in and make.json("users/me")["authUser"]["id"] == 1001
    assert the_file().read_bytes() == before
    assert [p.name for p in cache_dir.iterdir()] == [the_file().name]


def test_default_folder_is_the_users_cache_dir(api_login, tmp_path, monkeypatch):
    monkeypatch.delenv("MAKE_NOTEBOOK_AUTH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    import platformdirs

    expected = Path(platformdirs.user_cache_dir("make-notebook-auth", appauthor=False))
    assert cache_mod.cache_dir() == expected
    api_login(remember=True)
    assert the_file().parent == expected and the_file().is_file()
    assert mode(expected) == 0o700


def test_write_is_atomic_and_0600_from_the_start(api_login, cache_dir, monkeypatch):
    make = api_login(remember=True)
    before = the_file().read_bytes()
    opened, replaced = [], []
    real_open, real_replace = os.open, os.replace

    def spy_open(path, flags, mode=0o777, *args, **kwargs):
        opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def spy_replace(src, dst, *args, **kwargs):
        replaced.append((Path(src), Path(dst), stat.S_IMODE(os.stat(src).st_mode),
                         Path(dst).read_bytes()))
        return real_replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", spy_open)
        patch.setattr(os, "replace", spy_replace)
        make.refresh()  # a new token: the file is rewritten
    (tmp_src, dst, src_mode, dst_before), = replaced
    assert dst == the_file() and tmp_src.parent == dst.parent and tmp_src != dst
    assert src_mode == 0o600
    assert dst_before == before  # the old file stays whole until the rename
    (path, flags, create_mode), = [o for o in opened if o[0] == str(tmp_src)]
    assert create_mode == 0o600 and flags & os.O_CREAT and flags & os.O_EXCL
    assert read_doc()["token"]["access_token"] == make.token["access_token"]
    assert [p.name for p in cache_dir.iterdir()] == [dst.name]


def test_failed_write_keeps_the_old_file_and_warns(api_login, cache_dir, monkeypatch):
    make = api_login(remember=True)
    before = the_file().read_bytes()

    def broken_replace(src, dst, *args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, \
            pytest.warns(RememberedLoginWarning, match="No space left"):
        patch.setattr(os, "replace", broken_replace)
        make.refresh()
    assert make.logged_in and make.json("users/me")["authUser"]["id"] == 1001
    assert the_file().read_bytes() == before
    assert [p.name for p in cache_dir.iterdir()] == [the_file().name]
    assert make.token["access_token"] not in str(before)


def test_unwritable_folder_warns_and_login_still_works(api_login, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(blocker / "cache"))
    with pytest.warns(RememberedLoginWarning, match="will not survive a restart"):
        make = api_login(remember=True)
    assert make.logged_in


# --- restoring -------------------------------------------------------------------------------


def test_restore_in_this_process_after_a_restart(api_login, cache_dir, client_env):
    make = api_login("work", remember=True)
    access = make.token["access_token"]
    restart_kernel()
    client_env()
    with pytest.raises(NotLoggedInError):
        get_session()  # another profile: nothing remembered
    again = get_session("work")
    assert again is not make and again.logged_in
    assert again.token["access_token"] == access  # still valid: no refresh
    assert again.id_claims["sub"] == "alice"
    assert again.json("users/me")["authUser"]["id"] == 1001
    assert get_session("work") is again


def test_restore_in_a_fresh_process(api_login, cache_dir, client_env, make_api):
    make = api_login("work", remember=True)
    env = client_env()
    env["MAKE_NOTEBOOK_AUTH_CACHE"] = str(cache_dir)
    got = run_fresh("""
        import hashlib, json
        from make_notebook_auth import get_session
        s = get_session("work")
        me = s.json("users/me")["authUser"]
        print(json.dumps({"email": me["email"], "sub": s.id_claims["sub"],
                          "token": hashlib.sha256(s.token["access_token"].encode()).hexdigest(),
                          "api_url": s.api_url}))
    """, env)
    assert got == {"email": "alice@example.test", "sub": "alice",
                   "token": sha(make.token["access_token"]), "api_url": make_api.api_url}


def test_fresh_process_refreshes_an_expired_login(api_login, cache_dir, client_env):
    make = api_login("short", client="short", remember=True)
    old = read_doc("short")["token"]
    time.sleep(max(0.0, make.expires_at - time.time()) + 0.3)
    env = client_env("short")
    env["MAKE_NOTEBOOK_AUTH_CACHE"] = str(cache_dir)
    got = run_fresh("""
        import hashlib, json
        from make_notebook_auth import get_session
        s = get_session("short")
        print(json.dumps({"id": s.json("users/me")["authUser"]["id"],
                          "token": hashlib.sha256(s.token["access_token"].encode()).hexdigest()}))
    """, env)
    new = read_doc("short")["token"]
    assert got["id"] == 1001
    assert got["token"] == sha(new["access_token"]) != sha(old["access_token"])
    assert new["refresh_token"] != old["refresh_token"]  # the rotated refresh token is kept
    assert new["expires_at"] > time.time()
    assert mode(the_file("short")) == 0o600


def test_restore_needs_the_client_settings(api_login, cache_dir):
    api_login("work", remember=True)
    restart_kernel()
    with pytest.raises(NotLoggedInError) as info:
        get_session("work")
    assert "remembered login exists" in str(info.value) and "MAKE_CLIENT_ID" in str(info.value)
    assert the_file("work").exists()


def test_restore_with_arguments(api_login, cache_dir, oidc_provider, make_api):
    api_login("work", remember=True)
    restart_kernel()
    auth = MakeAuth(oidc_provider.confidential_client_id,
                    oidc_provider.confidential_client_secret, issuer=oidc_provider.issuer,
                    profile="work")  # no api_url: the remembered one is used
    assert MakeAuth(oidc_provider.confidential_client_id, issuer=oidc_provider.issuer,
                    profile="other").restore() is None
    session = auth.restore()
    assert session is auth.session and session.api_url == make_api.api_url
    assert session.json("users/me")["authUser"]["id"] == 1001
    assert get_session("work") is session


def test_make_auth_with_remember_picks_up_the_login(api_login, cache_dir, oidc_provider,
                                                    make_api):
    make = api_login("work", remember=True)
    restart_kernel()

    def auth():
        return MakeAuth(oidc_provider.confidential_client_id,
                        oidc_provider.confidential_client_secret, issuer=oidc_provider.issuer,
                        profile="work", remember=True)

    first = auth()
    assert first.session.logged_in and first.session is not make
    assert first.session.token["access_token"] == make.token["access_token"]
    assert get_session("work") is first.session
    assert auth().session is first.session  # one live copy per kernel, never two
    assert MakeAuth(oidc_provider.confidential_client_id, issuer=oidc_provider.issuer,
                    profile="elsewhere", remember=True).session.pending
    # a new login for the same profile replaces the remembered one, on disk too
    again = auth()
    newer = again.finish(oidc_provider.authorize(again.start().url, user="bob"))
    assert newer is not first.session and get_session("work") is newer
    assert read_doc("work")["id_claims"]["sub"] == "bob"


def test_expired_login_without_refresh_token_is_forgotten(api_login, cache_dir, client_env):
    make = api_login("work", remember=True)
    doc = read_doc("work")
    doc["token"].pop("refresh_token")
    doc["token"]["expires_at"] = time.time() - 10
    cache_mod.write(the_file("work"), doc)
    restart_kernel()
    client_env()
    with pytest.raises(LoginExpiredError, match="Log in again"):
        get_session("work")
    assert not the_file("work").exists()
    assert "work" not in registry.profiles()
    del make


def test_revoked_grant_is_forgotten(api_login, cache_dir, client_env, oidc_provider):
    make = api_login("work", remember=True)
    requests.post(f"{oidc_provider.issuer}/oauth/v2/revoke", data={
        "token": make.token["refresh_token"], "token_type_hint": "refresh_token",
        "client_id": oidc_provider.confidential_client_id,
        "client_secret": oidc_provider.confidential_client_secret}, timeout=10)
    doc = read_doc("work")
    doc["token"]["expires_at"] = time.time() - 10
    cache_mod.write(the_file("work"), doc)
    restart_kernel()
    client_env()
    with pytest.raises(LoginExpiredError, match="refused the refresh token"):
        get_session("work")
    assert not the_file("work").exists()


def test_refresh_updates_the_file(api_login, cache_dir):
    make = api_login(remember=True)
    first = read_doc()["token"]
    make.refresh()
    second = read_doc()["token"]
    assert second["access_token"] == make.token["access_token"] != first["access_token"]
    assert second["refresh_token"] == make.token["refresh_token"]


def test_two_kernels_sharing_a_remembered_login_never_replay_a_refresh_token(
        api_login, cache_dir, client_env, make_api):
    api_login(remember=True)
    env = client_env()
    env["MAKE_NOTEBOOK_AUTH_CACHE"] = str(cache_dir)
    restart_kernel()
    first = get_session()  # "kernel one"
    restart_kernel()
    second = get_session()  # "kernel two", restored from the same file
    assert first is not second
    assert first.token["refresh_token"] == second.token["refresh_token"]
    first.token["expires_at"] = second.token["expires_at"] = time.time() + 5  # both stale
    assert first.get("users/me").status_code == 200  # kernel one refreshes (rotation)
    assert read_doc()["token"]["refresh_token"] == first.token["refresh_token"]
    # kernel two adopts kernel one's tokens instead of replaying the spent refresh token,
    # which would make the provider revoke the whole grant (both kernels logged out)
    assert second.get("users/me").status_code == 200
    assert second.token["refresh_token"] == first.token["refresh_token"]
    assert first.get("users/me").status_code == 200
    # and in a separate process too: a fresh kernel whose copy is stale refreshes once, and
    # this one then adopts its result
    second.token["expires_at"] = time.time() + 5
    out = run_fresh("""
        import json, time
        from make_notebook_auth import get_session
        s = get_session()
        s.refresh()
        print(json.dumps({"status": s.get("users/me").status_code}))
    """, env)
    assert out["status"] == 200
    assert second.get("users/me").status_code == 200
    assert second.token["refresh_token"] == read_doc()["token"]["refresh_token"]
    assert [p.name for p in cache_dir.iterdir()] == [the_file().name]  # no lock file left


def test_a_file_now_holding_another_users_login_is_not_adopted(api_login, cache_dir,
                                                                client_env):
    api_login(remember=True)  # alice
    client_env()
    restart_kernel()
    alices = get_session()  # a kernel that restored alice's login
    restart_kernel()
    bobs = api_login(user="bob", remember=True)  # another kernel: bob, same profile and client
    assert read_doc()["id_claims"]["sub"] == "bob"
    alices.token["expires_at"] = time.time() + 5  # stale: the next call refreshes
    assert alices.get("users/me").status_code == 200
    assert alices.token["refresh_token"] != bobs.token["refresh_token"]
    assert alices.token["access_token"] != bobs.token["access_token"]
    assert alices.userinfo()["sub"] == "alice"
    assert alices.id_claims["sub"] == "alice"


def holder(folder: Path, seconds: float = 120) -> subprocess.Popen:
    """Another process holding the folder's flock (as a refreshing kernel would)."""
    code = textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(folder)!r}, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def in_thread(func, bound: float = 30):
    """``func()`` in a thread, joined with a generous bound so a regression fails, not hangs."""
    import threading

    out: dict = {}

    def run():
        try:
            out["value"] = func()
        except BaseException as exc:  # noqa: BLE001
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"still waiting after {bound} s"
    return out


def test_waiting_for_the_lock_is_bounded(api_login, cache_dir, monkeypatch):
    monkeypatch.setattr(cache_mod, "LOCK_WAIT", 1.0)
    make = api_login(remember=True)
    proc = holder(cache_dir)
    try:
        out = in_thread(make.refresh)
        assert isinstance(out.get("error"), RememberedLoginError)
        assert "Another process has held the lock" in str(out["error"])
        assert make.logged_in  # the access token was still good
    finally:
        proc.kill()
        proc.wait()
    make.refresh()  # the lock is free again
    assert read_doc()["token"]["access_token"] == make.token["access_token"]


def test_logout_never_waits_for_the_lock(api_login, cache_dir, monkeypatch):
    monkeypatch.setattr(cache_mod, "LOCK_WAIT", 60.0)
    make = api_login("work", remember=True)
    proc = holder(cache_dir)
    try:
        out = in_thread(make.logout, bound=20)
        assert out.get("value") is True
        assert not make.logged_in and not the_file("work").exists()
    finally:
        proc.kill()
        proc.wait()


def test_logout_of_a_stale_remembered_login_never_waits_for_the_lock(
        api_login, cache_dir, client_env, monkeypatch):
    monkeypatch.setattr(cache_mod, "LOCK_WAIT", 60.0)
    make = api_login("work", remember=True)
    doc = read_doc("work")
    doc["token"]["expires_at"] = time.time() - 10  # a fresh kernel would refresh it first
    cache_mod.write(the_file("work"), doc)
    del make
    restart_kernel()
    client_env()
    proc = holder(cache_dir)
    try:
        out = in_thread(lambda: logout("work"), bound=20)
        assert "error" not in out, out.get("error")
        assert not the_file("work").exists()
        with pytest.raises(NotLoggedInError):
            get_session("work")
    finally:
        proc.kill()
        proc.wait()


# --- bad files -------------------------------------------------------------------------------

CORRUPT = {
    "empty": b"",
    "not json": b"{not json",
    "binary": b"\xff\xfe\x00\x01",
    "a list": b"[]",
    "another format": json.dumps({"format": "other", "version": 1}).encode(),
    "no token": None,
    "token not a string": None,
    "future version": None,
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_file_is_reported_and_ignored(api_login, cache_dir, client_env, kind):
    api_login("work", remember=True)
    doc = read_doc("work")
    raw = CORRUPT[kind]
    if kind == "no token":
        doc.pop("token")
    elif kind == "token not a string":
        doc["token"]["access_token"] = 42
    elif kind == "future version":
        doc["version"] = 99
    if raw is None:
        raw = json.dumps(doc).encode()
    path = the_file("work")
    path.write_bytes(raw)
    restart_kernel()
    client_env()
    with pytest.warns(RememberedLoginWarning, match="corrupt"):
        with pytest.raises(NotLoggedInError):
            get_session("work")
    assert path.read_bytes() == raw  # ignored, not destroyed
    with pytest.warns(RememberedLoginWarning, match="corrupt"):
        api_login("work", remember=True)  # a new remembered login replaces it
    assert read_doc("work")["token"]["access_token"]


@pytest.mark.parametrize("other", ["client", "issuer"])
def test_foreign_file_is_reported_and_ignored(api_login, cache_dir, client_env, monkeypatch,
                                              other):
    api_login("work", remember=True)
    restart_kernel()
    if other == "client":
        client_env("public")
    else:
        client_env()
        monkeypatch.setenv("MAKE_ISSUER", "http://127.0.0.1:9")
    with pytest.warns(RememberedLoginWarning, match="another issuer or client"):
        with pytest.raises(NotLoggedInError):
            get_session("work")
    assert the_file("work").exists()


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_file_others_can_read_is_ignored(api_login, cache_dir, client_env, file_mode):
    api_login("work", remember=True)
    os.chmod(the_file("work"), file_mode)
    restart_kernel()
    client_env()
    with pytest.warns(RememberedLoginWarning, match="others may read it"):
        with pytest.raises(NotLoggedInError):
            get_session("work")


def test_symlink_is_not_followed(api_login, cache_dir, client_env, tmp_path):
    api_login("work", remember=True)
    target = tmp_path / "elsewhere.json"
    the_file("work").rename(target)
    the_file("work").symlink_to(target)
    restart_kernel()
    client_env()
    with pytest.warns(RememberedLoginWarning, match="could not be opened"):
        with pytest.raises(NotLoggedInError):
            get_session("work")


# --- logout ----------------------------------------------------------------------------------


def test_logout_deletes_the_file(api_login, cache_dir):
    make = api_login("work", remember=True)
    assert the_file("work").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RevocationWarning)
        assert make.logout() is True
    assert not the_file("work").exists()


def test_logout_in_a_fresh_process_revokes_and_deletes(api_login, cache_dir, client_env,
                                                       oidc_provider_introspection):
    make = api_login("work", remember=True)
    access = make.token["access_token"]
    env = client_env()
    env["MAKE_NOTEBOOK_AUTH_CACHE"] = str(cache_dir)
    got = run_fresh("""
        import json
        from make_notebook_auth import logout
        print(json.dumps({"revoked": logout("work")}))
    """, env)
    assert got == {"revoked": True}
    assert not the_file("work").exists()
    intro = oidc_provider_introspection
    answer = requests.post(intro["introspection_endpoint"], data={"token": access},
                           auth=(intro["client_id"], intro["client_secret"]), timeout=10)
    assert answer.json() == {"active": False}


def test_logout_without_client_settings_still_deletes(api_login, cache_dir):
    api_login("work", remember=True)
    restart_kernel()
    with pytest.warns(RevocationWarning, match="without revoking"):
        assert logout("work") is False
    assert not the_file("work").exists()
    with pytest.raises(NotLoggedInError):
        logout("work")


def test_logout_also_forgets_an_older_remembered_login(hostile, monkeypatch):
    settings = {"MAKE_CLIENT_ID": hostile.client_id, "MAKE_CLIENT_SECRET": "s3cr3t-value-xyz",
                "MAKE_ISSUER": hostile.issuer, "MAKE_API_URL": hostile.issuer + "/api/v2"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    remembered = MakeAuth(remember=True)
    remembered.finish(hostile.authorize(remembered.start().url))
    assert cache_mod.exists("default")
    again = MakeAuth()  # the same profile logged in again, this time not remembered
    session = again.finish(hostile.authorize(again.start().url))
    session.logout()
    assert not cache_mod.exists("default")
    with pytest.raises(NotLoggedInError):
        get_session()  # not the older login brought back from disk
