"""The terminal login in a real IPython terminal, driven through a pseudo-terminal (pexpect).

The sandbox runs in this process with a redirect URI on a free port; IPython runs as a child
with this checkout on its path. Each test types what a person types, reads what they see.
"""

from __future__ import annotations

import os
import re
import socket
import sys

import pytest
import requests
from fixtures_sandbox import make_authorize

from make_notebook_auth.sandbox import PUBLIC_CLIENT_ID, Sandbox

pexpect = pytest.importorskip("pexpect")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(rb"(http://127\.0\.0\.1:\d+/oauth/v2/authorize\?[^\s\x1b]+)")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox():
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    server = Sandbox("127.0.0.1", 0, redirect_uri=redirect)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ipython(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, IPYTHONDIR=str(tmp_path / "ipython"),
               MAKE_NOTEBOOK_AUTH_CACHE=str(tmp_path / "cache"), TERM="xterm",
               NO_PROXY="127.0.0.1,localhost")
    for name in list(env):
        if name.startswith("MAKE_") and name != "MAKE_NOTEBOOK_AUTH_CACHE":
            env.pop(name)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "IPython", "--no-banner", "--colors=NoColor", "--no-confirm-exit",
         "--HistoryManager.enabled=False"],
        env=env, cwd=str(tmp_path), timeout=TIMEOUT, dimensions=(60, 400),
    )
    child.cell = 1
    try:
        child.expect(rb"In \[1\]:")
        run(child, "%load_ext make_notebook_auth")
        yield child
    finally:
        child.sendline("exit")
        child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=5)
        child.close(force=True)


def next_prompt(child) -> bytes:
    """Wait for the next cell's prompt; return what the terminal showed before it."""
    child.cell += 1
    child.expect(rb"In \[%d\]:" % child.cell)
    return ANSI.sub(b"", child.before)


def run(child, line: str) -> bytes:
    """Type ``line``; return what the terminal shows until the next prompt."""
    child.sendline(line)
    return next_prompt(child)


def login_line(sandbox) -> str:
    # Quoted values, as a shell user types them.
    return (f'make = %make_login --issuer "{sandbox.issuer}" --api-url {sandbox.api_url} '
            f"--client-id '{PUBLIC_CLIENT_ID}' --redirect-uri \"{sandbox.redirect_uri}\" "
            '--scopes "openid user:read  scenarios:read" --force')


def browser(url: str) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    return s.get(url, timeout=TIMEOUT, allow_redirects=False)


def start_login(child, sandbox) -> str:
    child.sendline(login_line(sandbox))
    child.expect(LINK)
    link = child.match.group(1).decode()
    child.expect(rb"Paste the address")
    return link


def test_browser_completion_ends_the_prompt_and_the_next_line_runs(ipython, sandbox):
    link = start_login(ipython, sandbox)
    assert "scope=openid+user%3Aread+scenarios%3Aread&" in link  # quotes not sent
    page = browser(make_authorize(sandbox.issuer)(link))
    assert page.status_code == 200 and "Logged in to Make" in page.text
    ipython.expect(rb"Logged in to Make as Alice")
    next_prompt(ipython)  # the prompt ended by itself
    shown = run(ipython, "print(6 * 7)")
    assert b"42" in shown  # the line went to IPython, not into the finished prompt
    shown = run(ipython, "print(make.get('users/me').status_code)")
    assert b"200" in shown


@pytest.mark.parametrize("key", ["c", "d"])
def test_ctrl_c_or_ctrl_d_cancels_and_finish_works_later(ipython, sandbox, key):
    link = start_login(ipython, sandbox)
    ipython.sendcontrol(key)
    said = next_prompt(ipython).decode(errors="replace")
    assert "Login cancelled at the prompt" in said
    assert "make = %make_finish <the address you landed on>" in said
    assert "No input is possible" not in said and "panel" not in said

    # Using the pending session: a short error that talks about the terminal, not a panel.
    shown = run(ipython, "make.get('users/me')").decode(errors="replace")
    assert "LoginPendingError: The Make login is not finished yet" in shown
    assert "panel" not in shown and "Traceback" not in shown

    redirect = make_authorize(sandbox.issuer)(link)
    shown = run(ipython, f'make = %make_finish "{redirect}"').decode(errors="replace")
    assert "Logged in to Make as Alice" in shown
    assert b"200" in run(ipython, "print(make.get('users/me').status_code)")
