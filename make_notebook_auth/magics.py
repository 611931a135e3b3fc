"""IPython edge: ``%load_ext make_notebook_auth`` registers the ``%make_*`` line magics.

- ``make = %make_login [--profile P] [--client-id ID] [--scopes S] [--zone Z]
  [--redirect-uri U] [--issuer URL] [--api-url URL] [--sandbox] [--remember] [--no-widget]
  [--no-listen] [--force]``: shows the login panel and returns the profile's ``MakeSession`` at
  once (pending until the panel completes).
- ``%make_finish [--profile P] ADDRESS``: finish a pending login with the pasted address
  (for front ends where neither the panel nor ``input()`` works).
- ``%make_logout [--profile P]``: revoke and forget the login.
- ``%make_userinfo [--profile P]``: the OIDC userinfo as a DataFrame.

The client secret never goes on a magic's line (it would be saved in the notebook): it comes
from ``MAKE_CLIENT_SECRET`` or the panel's password field.

:class:`Context` holds the kernel's logins (one ``MakeAuth`` and panel per profile); the magics
are a thin argument-parsing layer over it. ipywidgets is imported only when a panel is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import registry
from .api import userinfo_frame
from .auth import MakeAuth
from .config import MakeConfig
from .console import ConsoleLogin
from .errors import MakeError
from .loopback import loopback_target, port_is_free
from .session import MakeSession

if TYPE_CHECKING:
    import pandas as pd

    from .widget import LoginPanel

SANDBOX_REDIRECT_URIS = ("http://127.0.0.1:8765/callback", "http://127.0.0.1:8766/callback")


def _finish_hint(profile: str) -> str:
    flag = "" if profile == "default" else f" --profile {profile}"
    return f"make = %make_finish{flag} <the address you landed on>"


def _widgets_usable(shell: Any) -> bool:
    """A kernel with a front end (ipykernel) and ipywidgets installed."""
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _alive(session: MakeSession | None) -> bool:
    if session is None or not session.logged_in:
        return False
    left = session.expires_in
    return left is None or left > 0 or session.can_refresh


def _same_login(session: MakeSession | None, client_id: str | None, secret: str | None,
                kwargs: dict[str, Any]) -> bool:
    """Whether ``session`` is what these login settings ask for (same authorization server,
    client, API and scopes). Settings that cannot be resolved ask for nothing else."""
    if session is None:
        return False
    try:
        wanted = MakeConfig.resolve(client_id, secret, **kwargs)
    except MakeError:
        return True
    have = session.config
    if wanted.api_url is not None and have.api_url != wanted.api_url:
        return False
    return (have.issuer, have.client_id, set(have.scopes)) == (
        wanted.issuer, wanted.client_id, set(wanted.scopes))


class Context:
    """The kernel's Make logins: one ``MakeAuth`` (and login panel) per profile."""

    def __init__(
        self,
        shell: Any = None,
        *,
        widgets: bool | None = None,
        out: Callable[[str], None] | None = None,
        display: Callable[[Any], None] | None = None,
        input_func: Callable[[str], str] | None = None,
    ) -> None:
        self.shell = shell
        self.widgets = widgets
        self._out = out
        self._display = display
        self.input_func = input_func
        self.auths: dict[str, MakeAuth] = {}
        self.panels: dict[str, LoginPanel] = {}
        # Text logins: with no stdin, their listener outlives the cell.
        self.consoles: dict[str, ConsoleLogin] = {}

    # -- output ----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if self._out is not None:
            self._out(text)
        else:
            print(text, flush=True)

    def show(self, obj: Any) -> None:
        if self._display is not None:
            self._display(obj)
            return
        from IPython.display import display

        display(obj)

    # -- login -----------------------------------------------------------------------------

    def login(
        self,
        *,
        profile: str = "default",
        client_id: str | None = None,
        scopes: str | None = None,
        zone: str | None = None,
        redirect_uri: str | None = None,
        issuer: str | None = None,
        api_url: str | None = None,
        sandbox: bool = False,
        remember: bool = False,
        widget: bool = True,
        listen: bool = True,
        force: bool = False,
    ) -> MakeSession:
        """Start a login for ``profile`` and return its (pending) ``MakeSession``."""
        kwargs: dict[str, Any] = dict(
            scopes=scopes, redirect_uri=redirect_uri, zone=zone, issuer=issuer,
            api_url=api_url, profile=profile,
        )
        secret: str | None = None
        title = None
        if sandbox:
            settings = self._sandbox_settings(redirect_uri)
            client_id = settings["MAKE_CLIENT_ID"]
            secret = settings.get("MAKE_CLIENT_SECRET")
            kwargs.update(issuer=settings["MAKE_ISSUER"], api_url=settings["MAKE_API_URL"],
                          redirect_uri=settings["MAKE_REDIRECT_URI"], zone=None)
            title = "Log in to the Make sandbox"

        if not force:
            current = registry.lookup(profile)
            if _alive(current) and _same_login(current, client_id, secret, kwargs):
                assert current is not None
                self.say(f"Already logged in to Make as {self._who(current)} (profile "
                         f"{profile!r}); returning that session. Use --force to log in again.")
                return current
        if sandbox:
            self.say("Using the local Make sandbox: demo users, synthetic data, no Make "
                     "account needed.")
        try:
            auth = MakeAuth(client_id, secret, remember=remember, **kwargs)
        except MakeError as exc:
            raise UsageError(str(exc)) from None
        if sandbox and auth.config.client_secret != secret:
            # MAKE_CLIENT_SECRET belongs to a real Make client: never send it to the sandbox.
            auth.set_client_secret(secret)

        self._retire(profile)
        self.auths[profile] = auth
        if auth.session.logged_in and not force:
            self.say(f"Logged in to Make as {self._who(auth.session)} (profile {profile!r}, "
                     "restored).")
            return auth.session

        use_widget = widget and (self.widgets if self.widgets is not None
                                 else _widgets_usable(self.shell))
        hint = _finish_hint(profile)
        if use_widget:
            try:
                request = auth.start()
            except MakeError as exc:
                raise UsageError(str(exc)) from None
            from .widget import LoginPanel

            panel = LoginPanel(auth, listen=listen, title=title, finish_hint=hint,
                               request=request)
            self.panels[profile] = panel
            self.show(panel)
            return auth.session
        console = ConsoleLogin(auth, listen=listen, input_func=self.input_func,
                               finish_hint=hint)
        self.consoles[profile] = console
        try:
            return console.run()
        except MakeError as exc:
            raise UsageError(str(exc)) from None

    def _retire(self, profile: str) -> None:
        """Close the profile's previous panel or text login (its listener holds the redirect
        port)."""
        panel = self.panels.pop(profile, None)
        if panel is not None:
            panel.close_login("A newer login panel for this profile replaced this one.")
        console = self.consoles.pop(profile, None)
        if console is not None:
            console.close()

    def _sandbox_settings(self, redirect_uri: str | None) -> dict[str, str]:
        try:
            from .sandbox import ensure_sandbox
        except ImportError as exc:
            raise UsageError(
                "The sandbox needs the optional dependencies: pip install "
                f"'make-notebook-auth[sandbox]' ({exc})."
            ) from None
        sandbox = ensure_sandbox()
        settings = dict(sandbox.settings())
        if redirect_uri:
            settings["MAKE_REDIRECT_URI"] = redirect_uri
        else:
            chosen = settings.get("MAKE_REDIRECT_URI", SANDBOX_REDIRECT_URIS[0])
            target = loopback_target(chosen)
            if target is not None and not port_is_free(target.port):
                for alternative in SANDBOX_REDIRECT_URIS:
                    alt = loopback_target(alternative)
                    if alt is not None and port_is_free(alt.port):
                        settings["MAKE_REDIRECT_URI"] = alternative
                        break
        return settings

    @staticmethod
    def _who(session: MakeSession) -> str:
        from .console import who

        return who(session)

    def finish(self, reply: str, profile: str = "default") -> MakeSession:
        """Finish ``profile``'s pending login with the pasted address."""
        auth = self.auths.get(profile)
        if auth is None:
            raise UsageError(f"No login is in progress for profile {profile!r}: run "
                             "`make = %make_login` first.")
        panel = self.panels.get(profile)
        if panel is not None and panel.state == "pending":
            if not panel.submit_reply(reply):
                raise UsageError(panel.last_error or "The login could not be completed.")
            return auth.session
        if auth.session.logged_in:
            return auth.session
        try:
            session = auth.finish(reply)
        except MakeError as exc:
            raise UsageError(str(exc)) from None
        console = self.consoles.pop(profile, None)
        if console is not None:
            console.close()  # finished in code: its listener has nothing left to wait for
        self.say(f"Logged in to Make as {self._who(session)}.")
        return session

    # -- logout / userinfo -----------------------------------------------------------------

    def logout(self, profile: str = "default") -> bool:
        """Revoke and forget ``profile``'s login (and close a pending panel)."""
        self._retire(profile)
        session = registry.lookup(profile)
        auth = self.auths.pop(profile, None)
        if session is None and auth is not None and auth.session.logged_in:
            session = auth.session
        if session is None or not session.logged_in:
            self.say(f"Not logged in to Make (profile {profile!r}): nothing to log out.")
            return False
        revoked = session.logout()
        if revoked:
            self.say(f"Logged out of Make (profile {profile!r}); the tokens were revoked.")
        else:
            self.say(f"Logged out of Make (profile {profile!r}) locally; see the warning above.")
        return revoked

    def userinfo(self, profile: str | None = None) -> pd.DataFrame:
        """Userinfo of ``profile`` (default: every logged-in profile) as a DataFrame."""
        if profile is None and not registry.profiles():
            profile = "default"  # nothing in memory: a remembered login, or the usual error
        try:
            return userinfo_frame(profile)
        except MakeError as exc:
            raise UsageError(str(exc)) from None

    def close(self) -> None:
        for profile in {*self.panels, *self.consoles}:
            self._retire(profile)


@magics_class
class MakeMagics(Magics):
    """``%make_login``, ``%make_finish``, ``%make_logout``, ``%make_userinfo``."""

    def __init__(self, shell: Any = None, context: Context | None = None) -> None:
        super().__init__(shell)
        self.context = context or Context(shell)

    @magic_arguments()
    @argument("--profile", "-p", default="default",
              help="Name of this login; several can be active at once (default: 'default').")
    @argument("--client-id", default=None,
              help="OAuth client id (default: MAKE_CLIENT_ID). The client secret is never "
                   "given here: set MAKE_CLIENT_SECRET or type it into the panel.")
    @argument("--scopes", default=None,
              help="Scopes separated by spaces or commas (default: MAKE_SCOPES, else a "
                   "read-only set plus openid). Quote them if they contain spaces.")
    @argument("--zone", default=None,
              help="Your Make zone, e.g. eu1.make.com (default: MAKE_ZONE).")
    @argument("--redirect-uri", default=None,
              help="Redirect URI registered for the client (default: MAKE_REDIRECT_URI, "
                   "else http://127.0.0.1:8765/callback).")
    @argument("--issuer", default=None,
              help="Authorization server (default: MAKE_ISSUER, else https://www.make.com).")
    @argument("--api-url", default=None,
              help="Full API base, e.g. https://eu1.make.com/api/v2 (default: MAKE_API_URL).")
    @argument("--sandbox", action="store_true",
              help="Log into the local Make sandbox (demo users, synthetic data; needs the "
                   "[sandbox] extra) instead of Make.")
    @argument("--remember", action="store_true",
              help="Keep the login across kernel restarts: tokens on disk, never the "
                   "client secret; %%make_logout deletes them.")
    @argument("--no-widget", action="store_true",
              help="Print the link and read the reply as text instead of showing the panel.")
    @argument("--no-listen", action="store_true",
              help="Don't listen on a loopback redirect URI's port; paste the address instead.")
    @argument("--force", action="store_true",
              help="Log in again even if the profile already has a live session.")
    @line_magic
    def make_login(self, line: str = "") -> MakeSession:
        """Log into Make: show the login panel and return the profile's MakeSession.

        The session is returned at once and is pending until the panel completes; using it
        before then raises an error that says to finish the login above::

            make = %make_login
            make.get("users/me").json()      # after the panel says you are logged in
        """
        if "secret" in line.lower():
            # argparse would echo the unknown option and its value.
            raise UsageError(
                "The client secret never goes on the magic's line (it would be saved in the "
                "notebook). Set MAKE_CLIENT_SECRET before starting Jupyter, or type it into the "
                "login panel's 'Client secret' field."
            )
        args = parse_argstring(self.make_login, line)
        return self.context.login(
            profile=args.profile, client_id=args.client_id, scopes=args.scopes,
            zone=args.zone, redirect_uri=args.redirect_uri, issuer=args.issuer,
            api_url=args.api_url, sandbox=args.sandbox, remember=args.remember,
            widget=not args.no_widget, listen=not args.no_listen, force=args.force,
        )

    @magic_arguments()
    @argument("--profile", "-p", default="default", help="Profile of the pending login.")
    @argument("reply", nargs="*",
              help="The whole address the browser landed on after approving.")
    @line_magic
    def make_finish(self, line: str = "") -> MakeSession:
        """Finish a pending login with the address the browser landed on after approving.

        For front ends where the login panel cannot render and input() is not available::

            make = %make_finish http://127.0.0.1:8765/callback?code=...&state=...
        """
        args = parse_argstring(self.make_finish, line)
        return self.context.finish("".join(args.reply), profile=args.profile)

    @magic_arguments()
    @argument("--profile", "-p", default="default", help="Profile to log out.")
    @line_magic
    def make_logout(self, line: str = "") -> None:
        """Revoke the profile's tokens at Make and forget the login."""
        args = parse_argstring(self.make_logout, line)
        self.context.logout(args.profile)

    @magic_arguments()
    @argument("--profile", "-p", default=None,
              help="Profile to show (default: every logged-in profile).")
    @line_magic
    def make_userinfo(self, line: str = "") -> pd.DataFrame:
        """The logged-in user's OpenID Connect userinfo as a pandas DataFrame."""
        args = parse_argstring(self.make_userinfo, line)
        return self.context.userinfo(args.profile)


_loaded: dict[int, MakeMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics on ``ipython`` (idempotent)."""
    if id(ipython) in _loaded:
        return
    magics = MakeMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    magics = _loaded.pop(id(ipython), None)
    if magics is not None:
        magics.context.close()
        for name in ("make_login", "make_finish", "make_logout", "make_userinfo"):
            ipython.magics_manager.magics["line"].pop(name, None)
