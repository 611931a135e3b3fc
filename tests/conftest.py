"""Shared fixtures. The real providers live in fixtures_oidc.py (panva's oidc-provider, Node)
and fixtures_sandbox.py (the package's sandbox); ``provider`` runs a test against each."""

from __future__ import annotations

import logging

import pytest

pytest_plugins = ["fixtures_oidc", "fixtures_sandbox", "fixtures_hostile", "fixtures_api",
                  "fixtures_hub", "fixtures_magics"]

PROVIDERS = ["oidc-provider", "sandbox"]


@pytest.fixture(params=PROVIDERS)
def provider(request):
    """The same test against the real oidc-provider and against the sandbox."""
    name = "oidc_provider" if request.param == "oidc-provider" else "sandbox_provider"
    return request.getfixturevalue(name)


@pytest.fixture(autouse=True)
def _fresh_package_state(monkeypatch, tmp_path_factory):
    """No MAKE_* settings from the developer's shell, no remembered logins from the user's
    cache folder, and no sessions or discovery left over between tests."""
    from make_notebook_auth.config import ENV_VARS

    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(tmp_path_factory.mktemp("login-cache")))
    # Never the developer's own OS keychain: remembered logins go to the test's folder unless a
    # test chooses otherwise (tests/test_keyring_store.py starts its own Secret Service).
    # (Not PYTHON_KEYRING_BACKEND: the Jupyter servers of the browser tests inherit it.)
    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_STORE", "file")
    from make_notebook_auth import ratelimit

    ratelimit.reset()
    yield
    from make_notebook_auth import oidc, registry

    for profile in registry.profiles():
        registry.forget(profile)
    oidc.forget_discovery()


@pytest.fixture
def debug_log(caplog):
    """Every log record of every logger at DEBUG level, for secret-leak checks."""
    caplog.set_level(logging.DEBUG)
    for name in ("requests_oauthlib", "oauthlib", "urllib3", "make_notebook_auth"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog
