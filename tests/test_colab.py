"""Colab's secrets as the source of the MAKE_* settings, with a stand-in for
``google.colab.userdata`` (Colab itself cannot run here): not found, access denied, a value."""

from __future__ import annotations

import sys
import types

import pytest

from make_notebook_auth import MakeAuth, MakeConfigError, MissingClientIdError, config
from make_notebook_auth.config import MakeConfig, setting


class SecretNotFoundError(Exception):
    pass


class NotebookAccessError(Exception):
    pass


@pytest.fixture
def colab(monkeypatch):
    """``google.colab.userdata`` as Colab has it: ``get(name)`` returns the secret, raises
    ``SecretNotFoundError`` when there is none and ``NotebookAccessError`` when the user did
    not grant this notebook access. Fill ``secrets`` and ``denied``; ``asked`` logs calls."""
    userdata = types.ModuleType("google.colab.userdata")
    userdata.secrets = {}
    userdata.denied = set()
    userdata.asked = []
    userdata.SecretNotFoundError = SecretNotFoundError
    userdata.NotebookAccessError = NotebookAccessError

    def get(name):
        userdata.asked.append(name)
        if name in userdata.denied:
            raise NotebookAccessError(name)
        if name not in userdata.secrets:
            raise SecretNotFoundError(name)
        return userdata.secrets[name]

    userdata.get = get
    google = sys.modules.get("google") or types.ModuleType("google")
    colab_pkg = types.ModuleType("google.colab")
    colab_pkg.userdata = userdata
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab_pkg)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    monkeypatch.setattr(config, "_colab", None)
    yield userdata
    config._colab = None


def test_settings_come_from_colab_secrets_when_the_environment_has_none(colab):
    colab.secrets.update(MAKE_CLIENT_ID="colab-client", MAKE_ZONE="eu2")
    cfg = MakeConfig.resolve()
    assert cfg.client_id == "colab-client"
    assert cfg.api_url == "https://eu2.make.com/api/v2/"


def test_the_environment_wins_and_colab_is_not_asked(colab, monkeypatch):
    colab.secrets.update(MAKE_CLIENT_ID="colab-client")
    monkeypatch.setenv("MAKE_CLIENT_ID", "env-client")
    assert MakeConfig.resolve().client_id == "env-client"
    assert colab.asked == []  # no permission prompt in Colab when the environment has them


def test_arguments_win_over_colab_secrets(colab):
    colab.secrets.update(MAKE_CLIENT_ID="colab-client")
    assert MakeConfig.resolve("argument-client").client_id == "argument-client"


def test_not_found_is_unset(colab):
    with pytest.raises(MissingClientIdError) as info:
        MakeConfig.resolve()
    assert "MAKE_CLIENT_ID is not set" in str(info.value)
    assert "MAKE_CLIENT_ID" in colab.asked


def test_access_denied_is_unset_and_said(colab):
    colab.denied.add("MAKE_CLIENT_ID")
    with pytest.raises(MissingClientIdError) as info:
        MakeConfig.resolve()
    assert "no access" in str(info.value) and "Secrets panel" in str(info.value)


def test_each_secret_is_asked_once(colab):
    colab.secrets.update(MAKE_CLIENT_ID="colab-client")
    MakeConfig.resolve()
    MakeConfig.resolve()
    assert colab.asked.count("MAKE_CLIENT_ID") == 1
    assert setting("MAKE_SCOPES") is None
    assert setting("HOME") is None and "HOME" not in colab.asked  # only MAKE_* settings


def test_api_token_from_colab_secrets(colab, sandbox_server):
    colab.secrets.update(MAKE_API_TOKEN=sandbox_server.api_token,
                         MAKE_API_URL=sandbox_server.api_url)
    make = MakeAuth.from_api_token()
    assert make.json("users/me")["authUser"]["email"] == "alice@example.test"


def test_api_token_denied_says_so(colab):
    colab.denied.add("MAKE_API_TOKEN")
    colab.secrets.update(MAKE_ZONE="eu1")
    with pytest.raises(MakeConfigError) as info:
        MakeAuth.from_api_token()
    assert "MAKE_API_TOKEN" in str(info.value) and "Secrets panel" in str(info.value)


def test_make_login_uses_colab_s_api_token(colab, shell, rec, sandbox_server):
    colab.secrets.update(MAKE_API_TOKEN=sandbox_server.api_token,
                         MAKE_API_URL=sandbox_server.api_url)
    make = shell.run_line_magic("make_login", "")
    assert make.credential == "api_token" and make.logged_in


def test_outside_colab_nothing_changes(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # import fails
    monkeypatch.setattr(config, "_colab", None)
    with pytest.raises(MissingClientIdError) as info:
        MakeConfig.resolve()
    assert "Colab" not in str(info.value)
