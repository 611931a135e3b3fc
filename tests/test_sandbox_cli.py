"""``make-notebook-auth sandbox`` / ``python -m make_notebook_auth.sandbox`` as a subprocess."""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from fixtures_sandbox import make_authorize

from make_notebook_auth.sandbox.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(MAKE_[A-Z_]+)=(\S+)$")
PUBLIC_NAMES = ["MAKE_ISSUER", "MAKE_API_URL", "MAKE_CLIENT_ID", "MAKE_REDIRECT_URI"]
START_TIMEOUT = 20.0
TIMEOUT = 10


class SandboxProcess:
    """The CLI in a subprocess, stdout read line by line through a pipe."""

    def __init__(self, *args: str, console_script: bool = False) -> None:
        env = dict(os.environ)
        env.pop("PYTHONUNBUFFERED", None)  # the settings must be flushed without it
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        script = shutil.which("make-notebook-auth") if console_script else None
        if script:
            command = [script, "sandbox", *args]
        elif console_script:  # not installed: the same entry point the console script calls
            command = [sys.executable, "-c",
                       "import sys; from make_notebook_auth.sandbox.__main__ import main; "
                       "sys.exit(main())", "sandbox", *args]
        else:
            command = [sys.executable, "-m", "make_notebook_auth.sandbox", *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=str(ROOT))
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stdout: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._stdout.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def read_settings(self, count: int) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        while len(lines) < count:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no settings after {START_TIMEOUT}s; got {lines!r}")
            if line is None:
                pytest.fail(f"sandbox exited early: {self.finish()[1]}")
            lines.append(line.rstrip("\n"))
        return lines

    def finish(self) -> tuple[str, str]:
        """Stop with SIGTERM (like a supervisor would); return (stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        time.sleep(0.05)
        return "".join(self._stdout), err


@pytest.fixture
def run_cli():
    started: list[SandboxProcess] = []

    def start(*args: str, console_script: bool = False) -> SandboxProcess:
        process = SandboxProcess(*args, console_script=console_script)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def parse(lines: list[str]) -> dict[str, str]:
    values = {}
    for line in lines:
        match = LINE.match(line)
        assert match, f"not a NAME=value line: {line!r}"
        assert "export" not in line and '"' not in line and "'" not in line
        values[match[1]] = match[2]
    return values


def test_prints_exactly_the_public_settings_then_serves(run_cli):
    process = run_cli("--port", "0")
    values = parse(process.read_settings(4))
    assert list(values) == PUBLIC_NAMES
    issuer = values["MAKE_ISSUER"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", issuer)
    assert values["MAKE_API_URL"] == issuer + "/api/v2/"
    assert values["MAKE_CLIENT_ID"] == "sandbox-public"
    assert values["MAKE_REDIRECT_URI"] == "http://127.0.0.1:8765/callback"
    doc = requests.get(issuer + "/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert doc["issuer"] == issuer
    requests.get(issuer + "/oauth/v2/authorize?code=abc123secret", timeout=TIMEOUT)
    out, err = process.finish()
    assert process.proc.returncode == 0
    assert len(out.splitlines()) == 4  # nothing more on stdout
    assert "MAKE_CLIENT_SECRET" not in out + err
    assert "abc123secret" not in err and "GET /" not in err


def test_confidential_prints_the_secret_once_and_logs_no_tokens(run_cli):
    process = run_cli("--confidential", "--port", "0", console_script=True)
    values = parse(process.read_settings(5))
    assert list(values) == [*PUBLIC_NAMES, "MAKE_CLIENT_SECRET"]
    issuer, client_id = values["MAKE_ISSUER"], values["MAKE_CLIENT_ID"]
    secret = values["MAKE_CLIENT_SECRET"]
    assert client_id == "sandbox-confidential" and len(secret) >= 32

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = issuer + "/oauth/v2/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id,
        "redirect_uri": values["MAKE_REDIRECT_URI"], "scope": "openid user:read",
        "state": "s1", "nonce": "n1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    location = make_authorize(issuer)(url)
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = requests.post(issuer + "/oauth/v2/token", timeout=TIMEOUT, data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "client_secret": secret, "redirect_uri": values["MAKE_REDIRECT_URI"],
        "code_verifier": verifier}).json()
    renewed = requests.post(issuer + "/oauth/v2/token", timeout=TIMEOUT, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": client_id, "client_secret": secret}).json()
    me = requests.get(values["MAKE_API_URL"] + "users/me", timeout=TIMEOUT,
                      headers={"Authorization": f"Bearer {renewed['access_token']}"})
    assert me.status_code == 200
    requests.get(values["MAKE_API_URL"] + "users/me", timeout=TIMEOUT,
                 headers={"Authorization": "Bearer forged-token-value"})

    out, err = process.finish()
    assert process.proc.returncode == 0
    assert out.count(secret) == 1 and out.splitlines()[-1] == f"MAKE_CLIENT_SECRET={secret}"
    for value in (secret, code, tokens["access_token"], tokens["refresh_token"],
                  tokens["id_token"], renewed["access_token"], renewed["refresh_token"],
                  "forged-token-value"):
        assert value not in err
        assert value == secret or value not in out


def test_rate_limit_flag(run_cli):
    process = run_cli("--port", "0", "--rate-limit", "2")
    values = parse(process.read_settings(4))
    issuer = values["MAKE_ISSUER"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = issuer + "/oauth/v2/authorize?" + urlencode({
        "response_type": "code", "client_id": values["MAKE_CLIENT_ID"],
        "redirect_uri": values["MAKE_REDIRECT_URI"], "scope": "user:read",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    code = parse_qs(urlsplit(make_authorize(issuer)(url)).query)["code"][0]
    token = requests.post(issuer + "/oauth/v2/token", timeout=TIMEOUT, data={
        "grant_type": "authorization_code", "code": code, "client_id": values["MAKE_CLIENT_ID"],
        "redirect_uri": values["MAKE_REDIRECT_URI"], "code_verifier": verifier}
    ).json()["access_token"]
    responses = [requests.get(values["MAKE_API_URL"] + "users/me", timeout=TIMEOUT,
                              headers={"Authorization": f"Bearer {token}"}) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert int(responses[-1].headers["Retry-After"]) >= 1
    process.finish()


def test_busy_port_is_reported(run_cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        process = run_cli("--port", str(busy.getsockname()[1]))
        process.proc.wait(timeout=START_TIMEOUT)
        out, err = process.finish()
    assert process.proc.returncode == 1
    assert out == "" and "cannot listen" in err


def test_unknown_command_and_bad_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sandbox", "--port", "not-a-number"])
    assert exc.value.code == 2


def test_no_arguments_prints_the_help_and_starts_nothing():
    # The installed script, as a user runs it: help on stdout, exit 2, no server.
    script = shutil.which("make-notebook-auth")
    command = [script] if script else [
        sys.executable, "-c", "import sys; from make_notebook_auth.sandbox.__main__ import "
        "main; sys.exit(main())"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stdout.startswith("usage: make-notebook-auth")
    assert "sandbox" in done.stdout and "--version" in done.stdout
    assert "MAKE_ISSUER=" not in done.stdout and "serving" not in done.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == "make-notebook-auth 0.1.0\n"
