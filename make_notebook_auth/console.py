"""Text front end: the login without widgets (terminal IPython, ``--no-widget``, plain Python).

:class:`ConsoleLogin` is a view of a :class:`~make_notebook_auth.login.LoginController`, like
the login panel. It prints the sign-in link and reads the reply at a prompt. With a loopback
redirect URI the controller also listens for the browser; in a terminal, the prompt then ends by
itself when the browser completes the login (it never swallows the next line typed). Ctrl-C or
Ctrl-D at the prompt cancels the prompt (the login stays pending: it can still be finished). Where
there is no stdin at all (a kernel whose front end cannot answer ``input()``, a batch run), it
prints the link and the one line that finishes the login in code, and returns the pending
session.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable
from typing import TextIO

from .auth import MakeAuth
from .login import LoginController, LoginView, busy_port_message
from .loopback import DEFAULT_TIMEOUT
from .session import MakeSession

MAX_ATTEMPTS = 5
DEFAULT_FINISH_HINT = "make = auth.finish('<the address you landed on>')"
DEFAULT_RESTART_HINT = "auth.start() (a new link)"
_POLL = 0.2  # seconds between checks of the login while the prompt waits


class _NoStdin(Exception):
    pass


class _Cancelled(Exception):
    pass


def _is_no_stdin(exc: BaseException) -> bool:
    # EOFError: stdin closed; StdinNotImplementedError (IPython): the kernel's front end does not
    # answer input(); OSError/RuntimeError: no console at all (pytest capture, daemons).
    if isinstance(exc, (EOFError, OSError, RuntimeError)):
        return True
    return type(exc).__name__ == "StdinNotImplementedError"


def _terminal_stdin() -> TextIO | None:
    """``sys.stdin`` when it is a terminal that ``select`` can watch (POSIX), else None."""
    stdin = sys.stdin
    if os.name != "posix" or stdin is None:
        return None
    try:
        return stdin if stdin.isatty() and stdin.fileno() >= 0 else None
    except (AttributeError, ValueError, OSError):
        return None


def who(session: MakeSession) -> str:
    """``Name (email)`` of the logged-in user, from the ID token (no network call)."""
    claims = session.id_claims
    name = claims.get("name") or claims.get("preferred_username")
    email = claims.get("email")
    if name and email:
        return f"{name} ({email})"
    return str(name or email or claims.get("sub") or "an unnamed user")


class ConsoleLogin(LoginView):
    """One text-mode login: link, optional loopback listener, prompt loop.

    ``input_func`` replaces the prompt (tests, custom front ends); by default a terminal is read
    directly (so that a login completed from the browser ends the prompt), anything else with
    ``input()``.
    """

    def __init__(
        self,
        auth: MakeAuth,
        *,
        listen: bool = True,
        input_func: Callable[[str], str] | None = None,
        out: TextIO | None = None,
        finish_hint: str = DEFAULT_FINISH_HINT,
        restart_hint: str = DEFAULT_RESTART_HINT,
        listen_timeout: float = DEFAULT_TIMEOUT,
        service: str = "Make",
    ) -> None:
        self.auth = auth
        self.input_func = input_func
        self.out = out
        self.finish_hint = finish_hint
        self.restart_hint = restart_hint
        self.service = service
        self.pending_hint = (
            "open the sign-in link printed when the login started, approve, then paste the "
            f"address you were sent to at the prompt, or run: {finish_hint}"
        )
        self.controller = LoginController(auth, self, listen=listen,
                                          listen_timeout=listen_timeout, service=service)
        self._prompting = False

    @property
    def listener(self) -> object:
        return self.controller.listener

    def _print(self, text: str = "") -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    # -- LoginView -------------------------------------------------------------------------

    def on_started(self, controller: LoginController) -> None:
        request = controller.request
        assert request is not None
        self._print(f"Log in to {self.service} (profile {self.auth.config.profile!r}): open "
                    "this link, sign in and approve:")
        self._print(f"    {request.url}")
        redirect = self.auth.config.redirect_uri
        if controller.listener is not None:
            self._print("This session then completes by itself "
                        f"({controller.listener.where}). If the browser shows an error "
                        "page instead, copy the whole address from its address bar and paste "
                        "it below.")
            return
        if controller.busy_port is not None:
            self._print(busy_port_message(controller.busy_port, "below"))
        elif controller.capture_error is not None:
            self._print(f"{controller.capture_error} below.")
        self._print(f"You land on an address starting with {redirect}?code= (the page may "
                    "show an error: that is fine). Copy the whole address from the "
                    "browser's address bar and paste it below.")

    def on_start_failed(self, message: str) -> None:
        self._print(f"The login could not be started: {message}")

    def on_failed(self, message: str, source: str) -> None:
        where = " (from the browser)" if source == "browser" else ""
        self._print(f"Login not completed{where}: {message}")

    def on_logged_in(self, session: MakeSession, source: str) -> None:
        if source == "browser":
            tail = "" if _terminal_stdin() is not None or not self._prompting else (
                " Press Enter to continue.")
            self._print(f"\nLogged in to {self.service} as {who(session)} (via the browser)."
                        f"{tail}")
        elif source != "restored":
            self._print(f"Logged in to {self.service} as {who(session)}.")

    def on_listen_timeout(self) -> None:
        self._print("\nStopped listening for the browser's reply (timed out); pasting the "
                    "address still works.")

    # -- running ---------------------------------------------------------------------------

    def run(self) -> MakeSession:
        """Start the login and prompt for the reply; returns ``auth.session`` (still pending
        when nothing came back)."""
        if not self.controller.start():
            return self.auth.session
        if not self.controller.pending:  # restored
            return self.auth.session
        self._prompting = True
        try:
            return self._prompt()
        except _Cancelled:
            self._print(f"\nLogin cancelled at the prompt; it is still pending. To finish it "
                        f"later, approve in the browser, then run:\n    {self.finish_hint}")
            if self.controller.listening:
                self._print("(Until then this session still listens, so approving in the "
                            "browser completes it by itself.)")
            self._print(f"To start again instead: {self.restart_hint}")
            return self.auth.session
        except _NoStdin:
            self._print("No input is possible here. After approving, finish the login with:")
            self._print(f"    {self.finish_hint}")
            return self.auth.session
        finally:
            self._prompting = False

    def _prompt(self) -> MakeSession:
        listening = self.controller.listening
        prompt = ("Paste the address (or just press Enter once the browser says you are logged "
                  "in): " if listening else "Paste the address: ")
        for _ in range(MAX_ATTEMPTS):
            reply = self._read(prompt)
            if reply is None or not self.controller.pending:
                # Completed from the browser meanwhile (or closed): the prompt ends here.
                return self.auth.session
            if not reply.strip():
                self._print("Nothing pasted yet.")
                continue
            if self.controller.finish(reply, source="paste"):
                return self.auth.session
        self._print(f"Giving up after {MAX_ATTEMPTS} tries. Finish later with:")
        self._print(f"    {self.finish_hint}")
        return self.auth.session

    def _read(self, prompt: str) -> str | None:
        """One line from the user; None when the login stopped being pending meanwhile."""
        terminal = _terminal_stdin() if self.input_func is None else None
        try:
            if terminal is None:
                return (self.input_func or input)(prompt)
            return self._read_terminal(terminal, prompt)
        except KeyboardInterrupt:
            raise _Cancelled() from None
        except _Cancelled:
            raise
        except BaseException as exc:
            if _is_no_stdin(exc):
                raise _NoStdin() from None
            raise

    def _read_terminal(self, stdin: TextIO, prompt: str) -> str | None:
        # input() would block until a line comes, and then swallow the line typed for the next
        # command after the browser completed the login: watch stdin and the login together.
        out = self.out or sys.stdout
        out.write(prompt)
        out.flush()
        while self.controller.pending:
            ready, _, _ = select.select([stdin], [], [], _POLL)
            if ready:
                line = stdin.readline()
                if line == "":  # Ctrl-D
                    raise _Cancelled()
                return line.rstrip("\r\n")
        return None

    def close(self, message: str = "") -> None:
        """Stop listening (the login was replaced, finished in code or logged out)."""
        self.controller.close(message)
