"""How the package's errors read where people meet them: IPython shows the sentence."""

from __future__ import annotations

import socket

import pytest
from IPython.core.interactiveshell import InteractiveShell

from make_notebook_auth import MakeAuth, MakeError, NotLoggedInError


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("xmode", "Context")
    return ip


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(shell, capsys, code: str) -> str:
    capsys.readouterr()
    shell.run_cell(code)
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_make_error_shows_its_sentence_and_tb_gives_the_full_traceback(shell, capsys):
    # A network failure deep inside requests: the chained traceback is dozens of lines.
    auth = MakeAuth("cid", issuer=f"http://127.0.0.1:{closed_port()}")
    state = auth.start().state
    shell.user_ns["auth"] = auth
    shell.user_ns["reply"] = f"?code={'c' * 32}&state={state}"
    out = run(shell, capsys, "auth.finish(reply)")
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0].startswith("MakeNetworkError: Could not reach Make's token endpoint")
    assert len(lines) <= 3
    assert "%tb" in lines[-1]
    assert "Traceback" not in out and "requests" not in out.replace("REQUESTS_CA_BUNDLE", "")

    full = run(shell, capsys, "%tb")
    assert "Traceback (most recent call last)" in full
    assert "make_notebook_auth/auth.py" in full and "in finish" in full  # the frames
    assert len(full.splitlines()) > 6


def test_logged_out_comes_first(provider, shell, capsys):
    auth = MakeAuth(provider.public_client_id, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=provider.redirect_uri)
    make = auth.finish(provider.authorize(auth.start().url))
    make.logout()
    with pytest.raises(NotLoggedInError) as info:
        make.get("users/me")
    assert str(info.value).startswith("This session was logged out. Not logged in to Make")
    shell.user_ns["make"] = make
    out = run(shell, capsys, "make.get('users/me')")
    assert out.lstrip().startswith("NotLoggedInError: This session was logged out.")


def test_render_traceback_is_short_while_handled_then_full():
    try:
        raise MakeError("Something went wrong. Do this next.")
    except MakeError as exc:
        error = exc
        # How IPython shows it: while handling it, and every time it is raised again.
        assert error._render_traceback_() == [
            "MakeError: Something went wrong. Do this next.",
            "(The full traceback: run %tb in the next cell.)",
        ]
        assert len(error._render_traceback_()) == 2
    # %tb, afterwards: the full traceback.
    full = error._render_traceback_()
    assert full[0] == "Traceback (most recent call last):"
    assert full[-1] == "make_notebook_auth.errors.MakeError: Something went wrong. Do this next."


def test_the_same_error_raised_again_is_short_again(shell, capsys):
    # A shared failure (one refresh failing for several callers) is raised more than once.
    shell.user_ns["error"] = MakeError("Shared failure. Log in again.")
    for _ in range(2):
        out = run(shell, capsys, "raise error")
        assert out.strip().splitlines()[0] == "MakeError: Shared failure. Log in again."
        assert "Traceback" not in out
    assert "Traceback (most recent call last)" in run(shell, capsys, "%tb")
