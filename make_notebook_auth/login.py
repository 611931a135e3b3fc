"""One login's state machine, shared by the login panel (``widget.py``) and the terminal login
(``console.py``): those two are views of a :class:`LoginController`.

The controller starts a login (a sign-in link, plus a loopback listener when the redirect URI
allows one), finishes it from the browser (through the listener) or from a pasted address, listens
again after the browser brought back an error (a declined approval), starts over with a new link,
closes (replaced by a newer login, finished elsewhere) and notices when listening timed out. It
tells its :class:`LoginView` what happened; the view only shows it and passes on what the user
does. One lock orders the browser's thread and the user's paste, so success is reported once.

No widgets and no printing here; the views do that.
"""

from __future__ import annotations

import threading

from .auth import MakeAuth
from .errors import MakeError
from .flow import AuthorizationRequest
from .hubrelay import HubRelay, HubTarget, hub_target
from .loopback import DEFAULT_TIMEOUT, LoopbackListener, loopback_target
from .session import MakeSession

PENDING, LOGGED_IN, CLOSED, LOGGED_OUT = "pending", "logged_in", "closed", "logged_out"


class LoginView:
    """What a front end shows of a login. Every method is called with the controller's lock
    held (so a view never reports success twice); the defaults do nothing."""

    #: How to finish this login, in this front end's words (for ``LoginPendingError``).
    pending_hint: str | None = None

    def on_started(self, controller: LoginController) -> None:
        """A new sign-in link (``controller.request``); ``controller.listening`` and
        ``controller.busy_port`` say whether the browser's reply is caught by itself."""

    def on_start_failed(self, message: str) -> None:
        """No sign-in link: the login could not be started."""

    def before_finish(self) -> None:
        """About to complete the login (e.g. hand a typed client secret to the auth)."""

    def on_completing(self, source: str) -> None:
        """A reply is being exchanged for tokens (``source``: "paste" or "browser")."""

    def on_failed(self, message: str, source: str) -> None:
        """A reply could not be used; the login is still pending."""

    def on_logged_in(self, session: MakeSession, source: str) -> None:
        """The login completed (called once)."""

    def on_listen_timeout(self) -> None:
        """The listener gave up waiting for the browser (pasting still works)."""

    def on_closed(self, message: str) -> None:
        """The login was closed before it completed (replaced, cancelled)."""

    def on_logged_out(self) -> None:
        """The session logged out after this login completed."""


class LoginController:
    """One login for one :class:`MakeAuth`, shown by one :class:`LoginView`.

    ``service`` names what is logged into ("Make", "the Make sandbox"): the browser tab says
    "Logged in to {service}".
    """

    def __init__(
        self,
        auth: MakeAuth,
        view: LoginView | None = None,
        *,
        listen: bool = True,
        listen_timeout: float = DEFAULT_TIMEOUT,
        service: str = "Make",
    ) -> None:
        self.auth = auth
        self.view = view or LoginView()
        self.listen = listen
        self.listen_timeout = listen_timeout
        self.service = service
        self.state = PENDING
        self.request: AuthorizationRequest | None = None
        self.listener: LoopbackListener | HubRelay | None = None
        self.busy_port: int | None = None  # the redirect port, when another process holds it
        self.capture_error: str | None = None  # why the hub service could not wait for it
        self.last_error: str | None = None
        self._lock = threading.RLock()
        self._states: set[str] = set()
        self._settled = threading.Event()  # set once the login is no longer pending

    # -- what views read -------------------------------------------------------------------

    @property
    def session(self) -> MakeSession:
        return self.auth.session

    @property
    def listening(self) -> bool:
        listener = self.listener
        return listener is not None and listener.listening

    @property
    def pending(self) -> bool:
        return self.state == PENDING

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the login is no longer pending (or ``timeout``); True if it is not."""
        return self._settled.wait(timeout)

    # -- what views call -------------------------------------------------------------------

    def start(self, request: AuthorizationRequest | None = None) -> bool:
        """A new sign-in link (``request``, else a fresh one) and listener. False when the
        login could not be started (the view was told why)."""
        self._stop_listener()  # outside the lock: its thread may be waiting for the lock
        with self._lock:
            if self.state != PENDING:
                return False
            if self.auth.session.logged_in:
                self._logged_in(self.auth.session, "restored")
                return True
            if request is None:
                try:
                    request = self.auth.start()
                except MakeError as exc:
                    self.request = None
                    self.last_error = str(exc)
                    self.view.on_start_failed(self.last_error)
                    return False
            self.request = request
            self._states.add(request.state)
            self.last_error = None
            self.auth.session.pending_hint = self.view.pending_hint
            self._start_listener()
            self.view.on_started(self)
            return True

    def restart(self) -> bool:
        """Start over: a new link and listener, the old attempt forgotten."""
        return self.start(None)

    def finish(self, reply: str, *, source: str = "paste") -> bool:
        """Complete the login with ``reply``; True once logged in. On failure the view was
        told why (``last_error``) and the login stays pending."""
        with self._lock:
            if self.state == LOGGED_IN:
                return True
            if self.state != PENDING:
                self.last_error = "This login was closed: start the login again."
                self.view.on_failed(self.last_error, source)
                return False
            self.view.before_finish()
            self.view.on_completing(source)
            try:
                session = self.auth.finish(reply)
            except MakeError as exc:
                self._failed(str(exc) or type(exc).__name__, source)
                return False
            except Exception as exc:  # a view's thread would swallow the traceback
                self._failed(f"Unexpected error ({type(exc).__name__}): {exc}", source)
                return False
            self._logged_in(session, source)
        if source != "browser":
            self._stop_listener()
        return True

    def use_api_token(self, token: str) -> bool:
        """Log in with a Make API token instead of the sign-in link (the user chose it); True
        once logged in. A token that cannot be used is reported to the view (never repeated)
        and the sign-in link stays usable."""
        with self._lock:
            if self.state == LOGGED_IN:
                return True
            if self.state != PENDING:
                self._failed("This login was closed: start the login again.", "api_token")
                return False
            session = self.auth.session
            # An API token is made and revoked in Make's profile: it is not remembered with
            # the OAuth login's store (never written to a file or the keychain by the panel).
            session.store = None
            try:
                session.use_api_token(token, source="The typed API token")
            except MakeError as exc:
                self._failed(str(exc) or type(exc).__name__, "api_token")
                return False
            self._logged_in(session, "api_token")
        self._stop_listener()
        return True

    def close(self, message: str) -> None:
        """Stop waiting: listener off, the view told ``message``."""
        self._stop_listener()
        with self._lock:
            if self.state == PENDING:
                self.state = CLOSED
                self._settled.set()
                self.view.on_closed(message)

    # -- internals -------------------------------------------------------------------------

    def _failed(self, message: str, source: str) -> None:
        self.last_error = message
        self.view.on_failed(message, source)

    def _logged_in(self, session: MakeSession, source: str) -> None:
        self.state = LOGGED_IN
        self.last_error = None
        self._settled.set()
        session.add_logout_listener(self._on_logout)
        self.view.on_logged_in(session, source)

    def _on_logout(self, _session: MakeSession) -> None:
        with self._lock:
            if self.state == LOGGED_IN:
                self.state = LOGGED_OUT
                self.view.on_logged_out()

    def _start_listener(self) -> None:
        self.busy_port = None
        self.capture_error = None
        if not self.listen:
            return
        hub = hub_target(self.auth.config.redirect_uri)
        if hub is not None:  # checked first: a hub on loopback (tests) is not our port
            self._start_hub_relay(hub)
            return
        target = loopback_target(self.auth.config.redirect_uri)
        if target is None:
            return
        listener = LoopbackListener(
            self.auth.config.redirect_uri,
            is_pending=self._is_ours,
            complete=self._complete_from_browser,
            on_done=self._listener_done,
            timeout=self.listen_timeout,
            success_title=f"Logged in to {self.service}",
        )
        if listener.start():
            self.listener = listener
        else:
            self.busy_port = target.port

    def _start_hub_relay(self, target: HubTarget) -> None:
        # On JupyterHub, with the make-login service's callback as the redirect URI: the
        # service hands the browser's reply to this kernel (hubrelay.py).
        redirect_uri = self.auth.config.redirect_uri
        if self.request is None:
            return
        relay = HubRelay(
            redirect_uri,
            self.request.state,
            target=target,
            is_pending=self._is_ours,
            complete=self._complete_from_browser,
            on_done=self._listener_done,
            timeout=self.listen_timeout,
        )
        if relay.start():
            self.listener = relay
        else:
            self.capture_error = (
                f"Paste mode: JupyterHub's make-login service cannot wait for this login "
                f"({relay.start_error}). After approving, copy the whole address from the "
                "browser's address bar and paste it"
            )

    def _stop_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.stop(wait=1.0)

    def _is_ours(self, state: str) -> bool:
        # A pending login's state; or, once a paste won the race, one of this login's (so the
        # browser tab is told "logged in", not "not the pending login").
        if self.auth.is_pending(state):
            return True
        return self.state == LOGGED_IN and state in self._states

    def _complete_from_browser(self, url: str) -> None:
        if not self.finish(url, source="browser"):
            raise _ViewError(self.last_error or "The login could not be completed.")

    def _listener_done(self, outcome: str) -> None:
        with self._lock:
            if self.state != PENDING:
                return
            if outcome == "failed":
                # The browser brought back an error (a declined approval, a stale tab): it was
                # shown; listen again so that the next approval still completes by itself.
                self.listener = None
                self._start_listener()
            elif outcome == "timeout":
                self.view.on_listen_timeout()


def busy_port_message(port: int, where: str) -> str:
    """Why a login is in paste mode although its redirect URI is a loopback one."""
    return (
        f"Paste mode: another program (perhaps another notebook's login) already listens on "
        f"127.0.0.1:{port}, this login's redirect port, so this session cannot catch the "
        "browser's reply by itself. After approving, the browser lands on that program's page: "
        f"copy the whole address from its address bar and paste it {where}."
    )


class _ViewError(MakeError):
    """The view's error message, handed to the loopback page."""
