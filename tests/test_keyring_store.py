"""Remembered logins in the OS keychain (``cache.KeyringStore``) against a real Secret Service:
``gnome-keyring-daemon`` in its own ``dbus-run-session``, with processes that log in, restore
(refreshing a rotated token), and log out; no token may reach the disk outside the keyring.
And the choice of store: ``MAKE_NOTEBOOK_AUTH_STORE``, no silent plaintext fallback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from make_notebook_auth import MakeAuth
from make_notebook_auth.errors import RememberedLoginError

pytest.importorskip("keyring", reason="keyring is not installed (it is in the test extra)")

ROOT = Path(__file__).resolve().parent.parent
FAIL_BACKEND = "keyring.backends.fail.Keyring"

HELPER = textwrap.dedent('''
    import json, os, sys, warnings
    sys.path[:0] = [os.environ["ROOT"], os.path.join(os.environ["ROOT"], "tests")]
    import keyring
    from make_notebook_auth import MakeAuth, cache, get_session, logout

    step = sys.argv[1]
    out = {"backend": type(keyring.get_keyring()).__module__}
    if step == "login":
        from fixtures_sandbox import make_authorize
        auth = MakeAuth(remember=True, redirect_uri=os.environ["REDIRECT_URI"])
        out["store"] = auth.store.kind
        out["notice"] = auth.store_notice
        make = auth.finish(make_authorize(os.environ["MAKE_ISSUER"])(auth.start().url))
        out["tokens"] = [make.token["access_token"], make.token["refresh_token"]]
    elif step == "restore":
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            make = get_session()
        out["store"] = make.store.kind
        out["email"] = make.json("users/me")["authUser"]["email"]
        out["tokens"] = [make.token["access_token"], make.token["refresh_token"]]
    elif step == "logout":
        logout()
        out["left"] = keyring.get_password(cache.KEYRING_SERVICE, "login:default")
        out["exists"] = cache.default_store().exists("default")
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture
def secret_service(tmp_path, sandbox_provider):
    """``run(step)`` runs the helper above in a fresh Python process inside one Secret
    Service session (gnome-keyring, unlocked with a throwaway password), HOME in tmp_path."""
    missing = [b for b in ("dbus-run-session", "gnome-keyring-daemon") if not shutil.which(b)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install gnome-keyring "
                    "dbus-x11; .ci/run does)")
    home = tmp_path / "home"
    home.mkdir()
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER)
    p = sandbox_provider
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAKE_", "PYTHON_KEYRING", "DBUS_", "XDG_"))}
    env.update(HOME=str(home), ROOT=str(ROOT), PYTHONPATH=str(ROOT),
               MAKE_NOTEBOOK_AUTH_CACHE=str(home / ".cache" / "make-notebook-auth"),
               MAKE_CLIENT_ID=p.short_confidential_client_id,
               MAKE_CLIENT_SECRET=p.short_confidential_client_secret,
               MAKE_ISSUER=p.issuer, MAKE_API_URL=p.api_url, REDIRECT_URI=p.redirect_uri)
    script = tmp_path / "session.sh"

    def run(*steps: str, pause: float = 0.0) -> list[dict]:
        lines = ["echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null"]
        for n, step in enumerate(steps):
            if n and pause:
                lines.append(f"sleep {pause}")
            lines.append(f'"{sys.executable}" "{helper}" {step} || exit 1')
        script.write_text("\n".join(lines) + "\n")
        done = subprocess.run(["dbus-run-session", "--", "sh", str(script)], env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        results = [json.loads(line[7:]) for line in done.stdout.splitlines()
                   if line.startswith("RESULT ")]
        assert len(results) == len(steps), done.stdout + done.stderr
        return results

    run.home = home
    return run


def files_holding(folder: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}" for s in secrets if s.encode() in data]
    return found


def test_keychain_keeps_the_login_across_processes_and_nothing_on_disk(secret_service,
                                                                       sandbox_provider):
    login, restored, logged_out = secret_service(
        "login", "restore", "logout", pause=sandbox_provider.short_ttl + 0.5)
    assert login["backend"] == "keyring.backends.SecretService"
    assert login["store"] == "keyring" and "OS keychain" in login["notice"]
    # A fresh process restored the login from the keychain; the access token had expired,
    # so it refreshed (under the lock) and the rotated tokens went back to the keychain.
    assert restored["store"] == "keyring"
    assert restored["email"] == "alice@example.test"
    assert restored["tokens"][0] != login["tokens"][0]
    assert restored["tokens"][1] != login["tokens"][1]
    # No token anywhere on disk outside the (encrypted) keyring: HOME holds the cache folder.
    home = secret_service.home
    assert (home / ".local" / "share" / "keyrings").is_dir()  # the keyring's own storage
    assert files_holding(home, login["tokens"] + restored["tokens"]) == []
    assert list((home / ".cache" / "make-notebook-auth").glob("login-*")) == []
    # Logging out deleted the keychain entry.
    assert logged_out["left"] is None and logged_out["exists"] is False


def test_logout_deletes_the_entry_when_the_kernel_never_remembered(secret_service):
    login, logged_out = secret_service("login", "logout")
    assert login["store"] == "keyring"
    assert logged_out["left"] is None


# --- choosing the store ----------------------------------------------------------------------


def test_no_backend_means_the_file_with_a_notice(monkeypatch, sandbox_provider):
    from make_notebook_auth import cache

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FAIL_BACKEND)
    monkeypatch.delenv("MAKE_NOTEBOOK_AUTH_STORE", raising=False)
    monkeypatch.setattr(cache, "_noticed", set())
    p = sandbox_provider
    auth = MakeAuth(p.public_client_id, issuer=p.issuer, api_url=p.api_url, remember=True)
    assert auth.store.kind == "file"
    assert "file" in auth.store_notice and "keychain" in auth.store_notice
    again = MakeAuth(p.public_client_id, issuer=p.issuer, api_url=p.api_url, remember=True)
    assert again.store_notice is None  # once per process


def test_asking_for_the_keychain_where_none_is_usable_is_an_error(monkeypatch, tmp_path,
                                                                  sandbox_provider):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FAIL_BACKEND)
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_STORE", "keyring")
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(cache_dir))
    p = sandbox_provider
    with pytest.raises(RememberedLoginError) as info:
        MakeAuth(p.public_client_id, issuer=p.issuer, api_url=p.api_url, remember=True)
    assert "keychain" in str(info.value) and "file" in str(info.value)
    assert not cache_dir.exists() or not list(cache_dir.iterdir())  # nothing written instead


def test_the_file_store_can_be_forced(monkeypatch, sandbox_provider):
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_STORE", "file")
    p = sandbox_provider
    auth = MakeAuth(p.public_client_id, issuer=p.issuer, api_url=p.api_url, remember=True)
    assert auth.store.kind == "file"


def test_an_unknown_store_is_an_error(monkeypatch, sandbox_provider):
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_STORE", "plaintext")
    p = sandbox_provider
    with pytest.raises(RememberedLoginError) as info:
        MakeAuth(p.public_client_id, issuer=p.issuer, api_url=p.api_url, remember=True)
    assert "'keyring' or 'file'" in str(info.value)


def test_a_store_object_can_be_handed_to_make_auth(sandbox_provider, tmp_path):
    from make_notebook_auth.cache import LoginStore

    class MemoryStore(LoginStore):
        kind = "memory"

        def __init__(self):
            self.entries: dict[str, bytes] = {}

        def describe(self):
            return "memory"

        def read(self, profile):
            return self.entries.get(profile)

        def write(self, profile, data):
            self.entries[profile] = data

        def remove(self, profile):
            return self.entries.pop(profile, None) is not None

    p = sandbox_provider
    store = MemoryStore()
    auth = MakeAuth(p.confidential_client_id, p.confidential_client_secret, issuer=p.issuer,
                    api_url=p.api_url, redirect_uri=p.redirect_uri, store=store)
    make = auth.finish(p.authorize(auth.start().url))
    assert make.store is store and "default" in store.entries
    first = json.loads(store.entries["default"])["token"]["refresh_token"]
    make.refresh()
    assert json.loads(store.entries["default"])["token"]["refresh_token"] != first
    again = MakeAuth(p.confidential_client_id, p.confidential_client_secret, issuer=p.issuer,
                     api_url=p.api_url, store=store, profile="default")
    assert again.session is make or again.session.logged_in
    make.logout()
    assert store.entries == {}
