"""The text fallback: link printed, reply read with input(), hint when there is no stdin.

A real terminal (IPython in a pseudo-terminal) is driven in ``test_console_pty.py``."""

from __future__ import annotations

import io
import re

import pytest
import requests
from providers import loopback_redirect_uri as loopback_uri

from make_notebook_auth import LoginPendingError, MakeAuth
from make_notebook_auth.console import ConsoleLogin

PASTE_URI = "https://app.example.test/callback"
LINK = re.compile(r"https?://\S+/oauth/v2/authorize\?\S+")



def console_login(auth, **kw):
    return ConsoleLogin(auth, **kw).run()


def make_auth(provider, redirect_uri=PASTE_URI):
    return MakeAuth(provider.public_client_id, issuer=provider.issuer,
                    api_url=provider.api_url, redirect_uri=redirect_uri)


class Terminal:
    """A fake console: records output, answers prompts with scripted replies."""

    def __init__(self, provider, replies):
        self.provider = provider
        self.out = io.StringIO()
        self.replies = list(replies)
        self.prompts = []

    def link(self) -> str:
        return LINK.findall(self.out.getvalue())[-1]

    def input(self, prompt: str) -> str:
        self.prompts.append(prompt)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply(self) if callable(reply) else reply


def approve(term):
    return term.provider.authorize(term.link())


def test_paste_reply(provider):
    term = Terminal(provider, [approve])
    session = console_login(make_auth(provider), input_func=term.input, out=term.out)
    assert session.logged_in
    text = term.out.getvalue()
    assert "app.example.test/callback?code=" in text
    assert f"Logged in to Make as {provider.users['alice']['name']}" in text
    assert session.get("users/me").status_code == 200


def test_bad_reply_then_good(provider):
    term = Terminal(provider, ["", "nonsense !!", approve])
    session = console_login(make_auth(provider), input_func=term.input, out=term.out)
    assert session.logged_in
    text = term.out.getvalue()
    assert "Nothing pasted yet." in text
    assert "Login not completed:" in text
    assert len(term.prompts) == 3


def test_gives_up_after_attempts(provider):
    term = Terminal(provider, ["x !"] * 5)
    session = console_login(make_auth(provider), input_func=term.input, out=term.out,
                            finish_hint="HINT-LINE")
    assert session.pending
    assert "HINT-LINE" in term.out.getvalue()


class StdinNotImplementedError(RuntimeError):
    """Named like IPython's, raised by a kernel whose front end cannot answer input()."""


@pytest.mark.parametrize("error", [EOFError(), StdinNotImplementedError("no stdin"),
                                   OSError("reading from stdin while output is captured")])
def test_no_stdin_prints_finish_hint(provider, error):
    term = Terminal(provider, [error])
    auth = make_auth(provider)
    session = console_login(auth, input_func=term.input, out=term.out,
                            finish_hint="make = %make_finish <address>")
    assert session.pending
    text = term.out.getvalue()
    assert "No input is possible here" in text
    assert "make = %make_finish <address>" in text
    # The documented way works afterwards.
    assert auth.finish(provider.authorize(term.link())) is session
    assert session.logged_in


def test_loopback_then_enter(provider):
    def browser_then_enter(term):
        s = requests.Session()
        s.trust_env = False
        response = s.get(term.provider.authorize(term.link()), timeout=30,
                         allow_redirects=False)
        assert response.status_code == 200
        return ""

    term = Terminal(provider, [browser_then_enter])
    auth = make_auth(provider, loopback_uri())
    session = console_login(auth, input_func=term.input, out=term.out)
    assert session.logged_in
    text = term.out.getvalue()
    assert "listening on 127.0.0.1" in text
    assert "(via the browser)" in text
    assert "press Enter once" in term.prompts[0]


def test_no_listen_prints_paste_instructions(provider):
    term = Terminal(provider, [approve])
    session = console_login(make_auth(provider, loopback_uri()), listen=False,
                            input_func=term.input, out=term.out)
    assert session.logged_in
    assert "listening" not in term.out.getvalue()


def test_ctrl_c_at_the_prompt_cancels_and_says_how_to_finish(provider):
    term = Terminal(provider, [KeyboardInterrupt()])
    auth = make_auth(provider)
    session = ConsoleLogin(auth, input_func=term.input, out=term.out,
                           finish_hint="make = %make_finish <address>",
                           restart_hint="run the same %make_login line again").run()
    assert session.pending
    text = term.out.getvalue()
    assert "Login cancelled at the prompt" in text
    assert "No input is possible" not in text
    assert "make = %make_finish <address>" in text
    assert "run the same %make_login line again" in text
    assert "panel" not in text
    assert auth.finish(provider.authorize(term.link())) is session  # still pending, usable


def test_busy_port_says_why_it_is_paste_mode(provider):
    import socket

    uri = loopback_uri()
    port = int(uri.split(":")[2].split("/")[0])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        term = Terminal(provider, [approve])
        session = console_login(make_auth(provider, uri), input_func=term.input, out=term.out)
    assert session.logged_in
    text = term.out.getvalue()
    assert f"already listens on 127.0.0.1:{port}" in text
    assert "listening on" not in text


def test_pending_error_in_a_terminal_never_mentions_a_panel(provider):
    term = Terminal(provider, [EOFError()])
    session = console_login(make_auth(provider), input_func=term.input, out=term.out,
                            finish_hint="make = %make_finish <address>")
    with pytest.raises(LoginPendingError) as info:
        session.get("users/me")
    message = str(info.value)
    assert "panel" not in message
    assert "at the prompt" in message and "make = %make_finish <address>" in message
