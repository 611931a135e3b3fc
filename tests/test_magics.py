"""The %make_* magics in an in-process IPython shell, against the real providers."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import requests
from IPython.core.error import UsageError
from providers import loopback_redirect_uri as loopback_uri

from make_notebook_auth import LoginPendingError, MakeAuthError
from make_notebook_auth.loopback import port_is_free
from make_notebook_auth.magics import Context

PASTE_URI = "https://app.example.test/callback"
LINK = re.compile(r"https?://\S+/oauth/v2/authorize\?\S+")


def provider_args(provider, redirect_uri=PASTE_URI, client_id=None):
    return (f"--issuer {provider.issuer} --api-url {provider.api_url} "
            f"--client-id {client_id or provider.public_client_id} --redirect-uri {redirect_uri}")



def test_extension_registers_magics_with_help(shell):
    line_magics = shell.magics_manager.magics["line"]
    for name in ("make_login", "make_logout", "make_userinfo", "make_finish"):
        assert name in line_magics
    doc = line_magics["make_login"].__doc__
    for flag in ("--profile", "--client-id", "--scopes", "--zone", "--redirect-uri", "--issuer",
                 "--api-url", "--no-widget", "--no-listen", "--force", "--sandbox",
                 "--remember"):
        assert flag in doc
    assert "--client-secret" not in doc
    assert "--profile" in line_magics["make_logout"].__doc__
    assert "--profile" in line_magics["make_userinfo"].__doc__


def test_pinfo_shows_help(shell, capsys):
    shell.run_line_magic("pinfo", "%make_login")
    out = capsys.readouterr().out
    assert "--no-listen" in out


def test_load_ext_through_package(shell):
    # %load_ext goes through make_notebook_auth.load_ipython_extension; loading twice is harmless.
    shell.run_line_magic("reload_ext", "make_notebook_auth")
    assert "make_login" in shell.magics_manager.magics["line"]


def test_login_panel_flow(shell, rec, provider):
    make = shell.run_line_magic("make_login", provider_args(provider))
    assert make.pending
    assert len(rec.shown) == 1
    panel = rec.shown[0]
    with pytest.raises(MakeAuthError, match="in the login panel, approve"):
        make.get("users/me")
    with pytest.raises(LoginPendingError):
        make.get("users/me")

    panel.paste.value = provider.authorize(panel.request.url)
    panel.submit.click()
    assert panel.state == "logged_in", panel.status.value
    assert make.logged_in
    assert make.get("users/me").status_code == 200

    # Running the cell again: already logged in, same session, no new panel.
    again = shell.run_line_magic("make_login", provider_args(provider))
    assert again is make
    assert "Already logged in" in rec.text
    assert len(rec.shown) == 1

    frame = shell.run_line_magic("make_userinfo", "")
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc["default", "email"] == provider.users["alice"]["email"]

    # --force logs in again with a new panel and a new pending session.
    forced = shell.run_line_magic("make_login", provider_args(provider) + " --force")
    assert forced is not make and forced.pending
    assert len(rec.shown) == 2
    assert make.logged_in


def test_logout_revokes(shell, rec, provider):
    make = shell.run_line_magic("make_login", provider_args(provider) + " --profile work")
    panel = rec.shown[0]
    panel.submit_reply(provider.authorize(panel.request.url))
    assert make.logged_in
    frame = shell.run_line_magic("make_userinfo", "--profile work")
    assert list(frame.index) == ["work"]
    token = make.token["access_token"]

    shell.run_line_magic("make_logout", "--profile work")
    assert "Logged out of Make (profile 'work')" in rec.text
    assert not make.logged_in
    assert panel.state == "logged_out"
    s = requests.Session()
    s.trust_env = False
    assert s.get(provider.api_url + "users/me", timeout=10,
                 headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with pytest.raises(UsageError, match="Not logged in"):
        shell.run_line_magic("make_userinfo", "--profile work")
    shell.run_line_magic("make_logout", "--profile work")
    assert "nothing to log out" in rec.text


def test_userinfo_without_login(shell, rec):
    with pytest.raises(UsageError, match="make_login"):
        shell.run_line_magic("make_userinfo", "")


def test_rerun_replaces_pending_panel_and_frees_port(shell, rec, provider):
    uri = loopback_uri()
    first = shell.run_line_magic("make_login", provider_args(provider, uri))
    old = rec.shown[0]
    assert old.listener is not None and old.listener.listening
    second = shell.run_line_magic("make_login", provider_args(provider, uri))
    new = rec.shown[1]
    assert old.state == "closed" and "replaced" in old.status.value
    assert new.listener is not None and new.listener.listening  # the port was handed over
    s = requests.Session()
    s.trust_env = False
    assert s.get(provider.authorize(new.request.url), timeout=30).status_code == 200
    assert second.logged_in and not first.logged_in


def test_secret_never_on_the_line(shell, rec, provider):
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("make_login", provider_args(provider) + " --client-secret s3cr3t")
    assert "s3cr3t" not in str(info.value)
    assert "MAKE_CLIENT_SECRET" in str(info.value)


def test_missing_client_id_is_a_usage_error(shell, rec):
    with pytest.raises(UsageError, match="MAKE_CLIENT_ID"):
        shell.run_line_magic("make_login", "")


def test_settings_from_environment(shell, rec, provider, monkeypatch):
    monkeypatch.setenv("MAKE_ISSUER", provider.issuer)
    monkeypatch.setenv("MAKE_API_URL", provider.api_url)
    monkeypatch.setenv("MAKE_CLIENT_ID", provider.confidential_client_id)
    monkeypatch.setenv("MAKE_CLIENT_SECRET", provider.confidential_client_secret)
    monkeypatch.setenv("MAKE_REDIRECT_URI", PASTE_URI)
    make = shell.run_line_magic("make_login", "")
    panel = rec.shown[0]
    assert panel.secret is None  # the secret came from the environment
    panel.submit_reply(provider.authorize(panel.request.url))
    assert make.logged_in and make.can_refresh


def test_no_widget_reads_reply_with_input(shell, rec, provider, capsys):
    printed = []

    def paste():
        printed.append(capsys.readouterr().out)  # what the console printed so far
        return provider.authorize(LINK.findall(printed[-1])[-1])

    rec.replies = [paste]
    make = shell.run_line_magic("make_login", provider_args(provider) + " --no-widget")
    assert rec.shown == []
    assert make.logged_in
    assert "sign in and approve" in printed[0]
    assert "Logged in to Make as" in capsys.readouterr().out


def test_no_stdin_then_make_finish(shell, rec, provider, capsys):
    rec.replies = [EOFError()]
    make = shell.run_line_magic("make_login", provider_args(provider) + " --no-widget")
    out = capsys.readouterr().out
    assert make.pending
    assert "make = %make_finish <the address you landed on>" in out
    link = LINK.findall(out)[-1]
    finished = shell.run_line_magic("make_finish", provider.authorize(link))
    assert finished is make and make.logged_in


def test_make_finish_with_panel(shell, rec, provider):
    make = shell.run_line_magic("make_login", provider_args(provider) + " -p other")
    panel = rec.shown[0]
    with pytest.raises(UsageError, match="neither the redirect address"):
        shell.run_line_magic("make_finish", "-p other garbage!!")
    shell.run_line_magic("make_finish", "--profile other " + provider.authorize(panel.request.url))
    assert make.logged_in and panel.state == "logged_in"


def test_make_finish_without_login(shell, rec):
    with pytest.raises(UsageError, match="No login is in progress"):
        shell.run_line_magic("make_finish", "http://127.0.0.1:8765/callback?code=x&state=y")


def test_widgets_not_used_without_kernel(shell):
    # A terminal IPython shell has no kernel: the magic falls back to text.
    from make_notebook_auth.magics import _widgets_usable

    assert not _widgets_usable(shell)
    assert not _widgets_usable(None)


def test_sandbox_login_with_loopback(shell, rec):
    pytest.importorskip("authlib")
    import fixtures_sandbox

    from make_notebook_auth.sandbox import ensure_sandbox

    make = shell.run_line_magic("make_login",
                                f"--sandbox --profile sb --redirect-uri {loopback_uri()}")
    assert "local Make sandbox" in rec.text
    panel = rec.shown[0]
    sandbox = ensure_sandbox()
    assert panel.auth.config.issuer == sandbox.issuer
    assert "sandbox" in panel.header.value
    redirect = fixtures_sandbox.make_authorize(sandbox.issuer)(panel.request.url)
    if panel.listener is not None:
        s = requests.Session()
        s.trust_env = False
        tab = s.get(redirect, timeout=30)
        assert tab.status_code == 200
        assert "<title>Logged in to the Make sandbox</title>" in tab.text
    else:
        panel.submit_reply(redirect)
    assert make.logged_in
    assert "Logged in to the Make sandbox as" in panel.status.value
    orgs = make.get("organizations").json()["organizations"]
    assert orgs


def test_remember_restores_after_restart(shell, rec, provider, monkeypatch, tmp_path):
    from make_notebook_auth import registry

    monkeypatch.setenv("MAKE_NOTEBOOK_AUTH_CACHE", str(tmp_path))
    args = provider_args(provider) + " --remember --profile kept"
    make = shell.run_line_magic("make_login", args)
    panel = rec.shown[0]
    panel.submit_reply(provider.authorize(panel.request.url))
    assert make.logged_in

    registry.forget("kept")  # a kernel restart: nothing in memory any more
    magics = shell.magics_manager.registry["MakeMagics"]
    magics.context = Context(shell, widgets=True, out=rec.say, display=rec.shown.append)
    again = shell.run_line_magic("make_login", args)
    assert again.logged_in and again is not make
    assert "restored" in rec.text
    assert len(rec.shown) == 1  # no new panel
    assert again.get("users/me").status_code == 200
    shell.run_line_magic("make_logout", "--profile kept")
    assert not again.logged_in


def test_rerun_without_stdin_frees_the_console_listener(shell, rec, provider, capsys):
    """The text fallback's listener outlives a cell with no stdin; re-running the cell (or
    logging out) must hand its port over instead of leaving it to the old login."""
    uri = loopback_uri()
    rec.replies = [EOFError(), EOFError()]
    first = shell.run_line_magic("make_login", provider_args(provider, uri) + " --no-widget")
    out = capsys.readouterr().out
    assert first.pending and "listening on 127.0.0.1" in out
    second = shell.run_line_magic("make_login", provider_args(provider, uri) + " --no-widget")
    out = capsys.readouterr().out
    assert "listening on 127.0.0.1" in out  # the port was handed over
    s = requests.Session()
    s.trust_env = False
    assert s.get(provider.authorize(LINK.findall(out)[-1]), timeout=30).status_code == 200
    assert second.logged_in and not first.logged_in

    port = int(uri.split(":")[2].split("/")[0])
    rec.replies = [EOFError(), EOFError()]
    third = shell.run_line_magic("make_login", provider_args(provider, uri)
                                 + " --no-widget --profile other")
    link = LINK.findall(capsys.readouterr().out)[-1]
    assert third.pending and not port_is_free(port)
    shell.run_line_magic("make_finish", "-p other " + provider.authorize(link))
    assert third.logged_in and port_is_free(port)  # finished in code: the listener is done

    fourth = shell.run_line_magic("make_login", provider_args(provider, uri)
                                  + " --no-widget --profile more")
    assert fourth.pending and not port_is_free(port)
    shell.run_line_magic("make_logout", "--profile more")
    assert port_is_free(port)


def test_sandbox_never_takes_a_real_client_secret(shell, rec, monkeypatch):
    """MAKE_CLIENT_SECRET belongs to a real Make client: --sandbox must not send it to the
    sandbox (whose public client would refuse it, failing the login)."""
    pytest.importorskip("authlib")
    import fixtures_sandbox

    from make_notebook_auth.sandbox import ensure_sandbox

    monkeypatch.setenv("MAKE_CLIENT_SECRET", "real-make-secret-not-for-the-sandbox")
    make = shell.run_line_magic("make_login", "--sandbox --no-listen --profile sbenv")
    panel = rec.shown[0]
    assert panel.auth.config.client_secret is None
    assert make.config.client_secret is None
    redirect = fixtures_sandbox.make_authorize(ensure_sandbox().issuer)(panel.request.url)
    assert panel.submit_reply(redirect), panel.status.value
    assert make.logged_in


def test_live_session_is_returned_only_for_the_same_settings(shell, rec, sandbox_provider):
    """A live session of another issuer or client is not what was asked for: `%make_login
    --sandbox` after a login elsewhere (or the other way round) starts a new login."""
    pytest.importorskip("authlib")
    provider = sandbox_provider
    make = shell.run_line_magic("make_login", provider_args(provider))
    rec.shown[0].submit_reply(provider.authorize(rec.shown[0].request.url))
    assert make.logged_in

    same = shell.run_line_magic("make_login", provider_args(provider))
    assert same is make and len(rec.shown) == 1

    other_client = shell.run_line_magic(
        "make_login", provider_args(provider, client_id=provider.short_public_client_id))
    assert other_client is not make and other_client.pending and len(rec.shown) == 2
    assert other_client.config.client_id == provider.short_public_client_id

    sandbox = shell.run_line_magic("make_login", "--sandbox --no-listen")
    assert sandbox is not make and sandbox.pending and len(rec.shown) == 3
    assert sandbox.config.issuer != provider.issuer


@pytest.mark.parametrize("scopes", ['"openid user:read"', "'openid user:read'",
                                    '"openid  user:read,"', "openid,user:read"])
def test_quoted_option_values_arrive_without_quotes(shell, rec, provider, scopes):
    args = (f'--issuer "{provider.issuer}" --api-url \'{provider.api_url}\' '
            f'--client-id "{provider.public_client_id}" --redirect-uri "{PASTE_URI}" '
            f"--scopes {scopes}")
    make = shell.run_line_magic("make_login", args)
    panel = rec.shown[-1]
    assert make.config.scopes == ("openid", "user:read")
    assert make.config.issuer == provider.issuer  # the quotes are gone from every option
    assert "scope=openid+user%3Aread&" in panel.request.url
    panel.submit_reply(provider.authorize(panel.request.url))
    assert make.logged_in, panel.status.value


def test_unbalanced_quotes_are_a_usage_error(shell, rec):
    with pytest.raises(UsageError, match="check the quotes"):
        shell.run_line_magic("make_login", '--scopes "openid user:read')


def test_finish_takes_a_quoted_address(shell, rec, provider):
    shell.run_line_magic("make_login", provider_args(provider))
    reply = provider.authorize(rec.shown[-1].request.url)
    make = shell.run_line_magic("make_finish", f"'{reply}'")
    assert make.logged_in


@pytest.mark.parametrize("zone", ["nonsense", "eu3"])
def test_unknown_zone_is_refused_listing_the_known_ones(shell, rec, provider, zone):
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("make_login", provider_args(provider).replace(
            f"--api-url {provider.api_url} ", "") + f" --zone {zone}")
    assert f"{zone!r} is not a Make zone" in str(info.value)
    assert "eu1, eu2, us1, us2" in str(info.value)
    assert rec.shown == []


def test_custom_zone_host_is_accepted(shell, rec, provider):
    make = shell.run_line_magic("make_login", provider_args(provider).replace(
        f"--api-url {provider.api_url} ", "") + " --zone eu3.make.com")
    assert make.config.api_url == "https://eu3.make.com/api/v2/"


def test_zone_with_sandbox_says_it_is_ignored(shell, rec):
    pytest.importorskip("authlib")
    make = shell.run_line_magic("make_login", "--sandbox --no-listen --zone eu2")
    assert "--zone ignored with --sandbox" in rec.text
    assert make.config.api_url.startswith("http://127.0.0.1:")
    panel = rec.shown[-1]
    assert panel.secret is None  # the sandbox never asks for a client secret
    assert "Log in to the Make sandbox" in panel.header.value


def test_login_options_are_exactly_what_makeauth_takes():
    """One list of login settings: every %make_login setting is a MakeAuth keyword, and every
    MakeAuth setting is an option unless it is named here as something else."""
    import inspect

    from make_notebook_auth import MakeAuth
    from make_notebook_auth.magics import LOGIN_OPTIONS, MakeMagics

    # Not login settings of the magic: the secret never goes on a line, profile and remember
    # are options of their own, zones (a list) and store (an object) are for Python code.
    takes = set(inspect.signature(MakeAuth).parameters) - {"client_secret", "profile",
                                                          "remember", "zones", "store"}
    assert set(LOGIN_OPTIONS) == takes
    doc = MakeMagics.make_login.__doc__
    for name in LOGIN_OPTIONS:
        assert "--" + name.replace("_", "-") in doc
