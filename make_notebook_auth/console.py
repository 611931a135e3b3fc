"""Text front end: the login without widgets (terminal IPython, ``--no-widget``, plain Python).

:func:`console_login` prints the sign-in link and reads the reply with ``input()``. With a
loopback redirect URI it also listens for the browser (the user then just presses Enter). Where
there is no stdin (a kernel whose front end cannot answer ``input()``, a batch run), it prints
the link and the one line that finishes the login in code, and returns the pending session.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from .auth import MakeAuth
from .errors import MakeError
from .loopback import DEFAULT_TIMEOUT, LoopbackListener, loopback_target
from .session import MakeSession

MAX_ATTEMPTS = 5
DEFAULT_FINISH_HINT = "make = auth.finish('<the address you landed on>')"


class _NoStdin(Exception):
    pass


def _is_no_stdin(exc: BaseException) -> bool:
    # EOFError: stdin closed; StdinNotImplementedError (IPython): the kernel's front end does not
    # answer input(); OSError/RuntimeError: no console at all (pytest capture, daemons).
    if isinstance(exc, (EOFError, OSError, RuntimeError)):
        return True
    return type(exc).__name__ == "StdinNotImplementedError"


def who(session: MakeSession) -> str:
    """``Name (email)`` of the logged-in user, from the ID token (no network call)."""
    claims = session.id_claims
    name = claims.get("name") or claims.get("preferred_username")
    email = claims.get("email")
    if name and email:
        return f"{name} ({email})"
    return str(name or email or claims.get("sub") or "an unnamed user")


class ConsoleLogin:
    """One text-mode login: link, optional loopback listener, prompt loop."""

    def __init__(
        self,
        auth: MakeAuth,
        *,
        listen: bool = True,
        input_func: Callable[[str], str] | None = None,
        out: TextIO | None = None,
        finish_hint: str = DEFAULT_FINISH_HINT,
        listen_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.auth = auth
        self.listen = listen
        self.input_func = input_func or input
        self.out = out
        self.finish_hint = finish_hint
        self.listen_timeout = listen_timeout
        self.listener: LoopbackListener | None = None
        self._lock = threading.Lock()
        self._announced = False
        self._prompting = False

    def _print(self, text: str = "") -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def _finish(self, reply: str) -> MakeSession:
        with self._lock:
            if self.auth.session.logged_in:
                return self.auth.session
            return self.auth.finish(reply)

    def _from_browser(self, url: str) -> None:
        session = self._finish(url)
        with self._lock:
            if not self._announced:
                self._announced = True
                tail = " Press Enter to continue." if self._prompting else ""
                self._print(f"\nLogged in to Make as {who(session)} (via the browser).{tail}")

    def run(self) -> MakeSession:
        request = self.auth.start()
        redirect = self.auth.config.redirect_uri
        listening = False
        if self.listen and loopback_target(redirect) is not None:
            self.listener = LoopbackListener(
                redirect, is_pending=self.auth.is_pending, complete=self._from_browser,
                timeout=self.listen_timeout,
            )
            listening = self.listener.start()
        self._print(f"Log in to Make (profile {self.auth.config.profile!r}): open this link, "
                    "sign in and approve:")
        self._print(f"    {request.url}")
        if listening:
            self._print("This session then completes by itself (listening on "
                        f"127.0.0.1:{self.listener.port if self.listener else ''}). If the "
                        "browser shows an error page instead, copy the whole address from its "
                        "address bar and paste it below.")
        else:
            self._print(f"You land on an address starting with {redirect}?code= (the page may "
                        "show an error: that is fine). Copy the whole address from the "
                        "browser's address bar and paste it below.")
        self._prompting = True
        try:
            return self._prompt(listening)
        except _NoStdin:
            self._prompting = False
            self._print("No input is possible here. After approving, finish the login with:")
            self._print(f"    {self.finish_hint}")
            return self.auth.session

    def _prompt(self, listening: bool) -> MakeSession:
        prompt = ("Paste the address (or just press Enter once the browser says you are logged "
                  "in): " if listening else "Paste the address: ")
        for _ in range(MAX_ATTEMPTS):
            try:
                reply = self.input_func(prompt)
            except KeyboardInterrupt:
                raise _NoStdin() from None
            except BaseException as exc:
                if _is_no_stdin(exc):
                    raise _NoStdin() from None
                raise
            if self.auth.session.logged_in:
                self._stop()
                return self.auth.session
            if not reply.strip():
                self._print("Nothing pasted yet.")
                continue
            try:
                session = self._finish(reply)
            except MakeError as exc:
                self._print(f"Login not completed: {exc}")
                continue
            self._stop()
            self._print(f"Logged in to Make as {who(session)}.")
            return session
        self._prompting = False
        self._print(f"Giving up after {MAX_ATTEMPTS} tries. Finish later with:")
        self._print(f"    {self.finish_hint}")
        return self.auth.session

    def _stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()

    def close(self) -> None:
        """Stop listening (the login was replaced, finished in code or logged out)."""
        self._stop()


def console_login(
    auth: MakeAuth,
    *,
    listen: bool = True,
    input_func: Callable[[str], str] | None = None,
    out: TextIO | None = None,
    finish_hint: str = DEFAULT_FINISH_HINT,
    listen_timeout: float = DEFAULT_TIMEOUT,
) -> MakeSession:
    """Log in on a text console; returns ``auth.session`` (still pending if nothing came back).

    ``input_func`` defaults to ``input``; ``finish_hint`` is the line printed for finishing in
    code when there is no stdin.
    """
    return ConsoleLogin(
        auth, listen=listen, input_func=input_func, out=out, finish_hint=finish_hint,
        listen_timeout=listen_timeout,
    ).run()
