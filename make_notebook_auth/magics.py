"""IPython edge: ``%load_ext make_notebook_auth`` registers the ``%make_*`` line magics.

- ``make = %make_login [--profile P] [--client-id ID] [--scopes S] [--zone Z]
  [--redirect-uri U] [--issuer URL] [--api-url URL] [--sandbox] [--remember] [--confidential]
  [--no-widget] [--no-listen] [--force]``: shows the login panel and returns the profile's
  ``MakeSession`` at once (pending until the panel completes).
- ``%make_finish [--profile P] ADDRESS``: finish a pending login with the pasted address
  (for front ends where neither the panel nor ``input()`` works).
- ``%make_logout [--profile P]``: revoke and forget the login.
- ``%make_userinfo [--profile P]``: the OIDC userinfo as a DataFrame.

Options take values the way a shell user writes them: bare, quoted or with spaces inside quotes
(``--scopes "openid user:read"``); lines are split with :func:`shlex.split`.

The client secret never goes on a magic's line (it would be saved in the notebook): it comes
from ``MAKE_CLIENT_SECRET`` or the panel's password field (``--confidential`` shows it).

:class:`Context` holds the kernel's logins (one ``MakeAuth`` and one login view, the panel or
the terminal prompt, per profile); the magics are a thin argument-parsing layer over it. The
login settings are listed once (:data:`LOGIN_OPTIONS`): they become the magic's options and are
forwarded as they are to ``MakeAuth``. ipywidgets is imported only when a panel is shown.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from . import registry
from .api import userinfo_frame
from .auth import MakeAuth
from .config import API_TOKEN_ENV, MakeConfig, setting
from .console import ConsoleLogin
from .errors import MakeError, UnattendedLoginError
from .loopback import loopback_target, port_is_free
from .session import MakeSession
from .unattended import headless_reason, how_to_run_unattended

if TYPE_CHECKING:
    import pandas as pd

    from .widget import ApiTokenPanel, LoginPanel

SANDBOX_REDIRECT_URIS = ("http://127.0.0.1:8765/callback", "http://127.0.0.1:8766/callback")
SANDBOX = "the Make sandbox"

# The login settings, once: option -> help. They become %make_login's options and are forwarded
# unchanged (as keyword arguments) to MakeAuth and MakeConfig.resolve.
LOGIN_OPTIONS: dict[str, str] = {
    "client_id": "OAuth client id (default: MAKE_CLIENT_ID). The client secret is never given "
                 "here: set MAKE_CLIENT_SECRET or use --confidential to type it into the panel.",
    "scopes": "Scopes separated by spaces or commas (default: MAKE_SCOPES, else a read-only set "
              "plus openid). Quote them if they contain spaces.",
    "zone": "Your Make zone: eu1, eu2, us1, us2 or a host such as eu1.make.com (default: "
            "MAKE_ZONE). Another host or URL is taken as a custom zone.",
    "redirect_uri": "Redirect URI registered for the client (default: MAKE_REDIRECT_URI, else "
                    "http://127.0.0.1:8765/callback).",
    "issuer": "Authorization server (default: MAKE_ISSUER, else https://www.make.com).",
    "api_url": "Full API base, e.g. https://eu1.make.com/api/v2 (default: MAKE_API_URL).",
}

_F = TypeVar("_F", bound=Callable[..., Any])


def _login_options(func: _F) -> _F:
    """``@argument`` for every login setting of :data:`LOGIN_OPTIONS`."""
    for name, text in reversed(LOGIN_OPTIONS.items()):
        func = argument("--" + name.replace("_", "-"), default=None, help=text)(func)
    return func


def _parse(magic: Callable[..., Any], line: str) -> Any:
    """The magic's options from ``line``, split as a shell splits it (quotes removed)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"The options could not be read ({exc}): check the quotes.") from None
    return magic.parser.parse_args(argv)  # type: ignore[attr-defined]


def _looks_like_a_token(line: str) -> bool:
    """``--api-token <value>``: a value after the flag would be saved in the notebook."""
    try:
        argv = shlex.split(line)
    except ValueError:
        return False
    for i, arg in enumerate(argv):
        if arg.startswith("--api-token="):
            return True
        if arg == "--api-token" and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            return True
    return False


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


def _same_login(session: MakeSession | None, settings: dict[str, Any]) -> bool:
    """Whether ``session`` is what these login settings ask for (same authorization server,
    client, API and scopes). Settings that cannot be resolved ask for nothing else."""
    if session is None:
        return False
    try:
        wanted = MakeConfig.resolve(**settings)
    except MakeError:
        return True
    have = session.config
    if wanted.api_url is not None and have.api_url != wanted.api_url:
        return False
    return (have.issuer, have.client_id, set(have.scopes)) == (
        wanted.issuer, wanted.client_id, set(wanted.scopes))


class Context:
    """The kernel's Make logins: one ``MakeAuth`` and one login view per profile."""

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
        # The login panel or text login of each profile: its listener may outlive the cell.
        self.views: dict[str, LoginPanel | ConsoleLogin | ApiTokenPanel] = {}

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
        profile: str = "default",
        *,
        sandbox: bool = False,
        remember: bool = False,
        confidential: bool = False,
        widget: bool = True,
        listen: bool = True,
        force: bool = False,
        api_token: bool = False,
        **settings: Any,
    ) -> MakeSession:
        """Start a login for ``profile`` and return its (pending) ``MakeSession``.

        ``settings`` are :data:`LOGIN_OPTIONS` (``client_id``, ``scopes``, ...), forwarded to
        ``MakeAuth``.

        Which credential: a Make API token (``MAKE_API_TOKEN``) when ``api_token`` is set, or
        when ``MAKE_API_TOKEN`` is set and no OAuth client is (no ``client_id``, no
        ``MAKE_CLIENT_ID``); otherwise the OAuth login. Where no one can complete a browser
        login (see ``unattended.py``), never a panel or prompt: a live login, a remembered
        login, an API token, in that order; else a session whose first use raises
        ``UnattendedLoginError``."""
        unknown = set(settings) - set(LOGIN_OPTIONS)
        if unknown:
            raise TypeError(f"unknown login settings: {', '.join(sorted(unknown))}")
        settings = {k: v for k, v in settings.items() if v is not None}
        settings["profile"] = profile
        service = "Make"
        token: str | None = None
        token_source = API_TOKEN_ENV
        if sandbox:
            ignored = [f"--{k.replace('_', '-')}" for k in ("zone", "issuer", "api_url",
                                                             "client_id") if k in settings]
            if ignored:
                self.say(f"Note: {', '.join(ignored)} ignored with --sandbox (the sandbox is "
                         "its own authorization server and API).")
            if confidential:
                self.say("Note: --confidential ignored with --sandbox (its clients need no "
                         "secret typed in).")
            sandbox_settings = self._sandbox_settings(settings.get("redirect_uri"))
            settings.update(
                client_id=sandbox_settings["MAKE_CLIENT_ID"],
                # Never MAKE_CLIENT_SECRET (it belongs to a real Make client): only the
                # sandbox's own, if any.
                client_secret=sandbox_settings.get("MAKE_CLIENT_SECRET") or "",
                issuer=sandbox_settings["MAKE_ISSUER"],
                api_url=sandbox_settings["MAKE_API_URL"],
                redirect_uri=sandbox_settings["MAKE_REDIRECT_URI"],
            )
            settings.pop("zone", None)
            service, confidential = SANDBOX, False
            token, token_source = sandbox_settings.get(API_TOKEN_ENV), "the sandbox"
        else:
            token = setting(API_TOKEN_ENV)
            if not api_token and token is not None and (
                    settings.get("client_id") or setting("MAKE_CLIENT_ID")):
                token = None  # an OAuth client is configured: it wins unless --api-token

        if not force:
            current = registry.lookup(profile)
            if _alive(current) and _same_login(current, settings):
                assert current is not None
                self.say(f"Already logged in to {service} as {self._who(current)} (profile "
                         f"{profile!r}); returning that session. Use --force to log in again.")
                return current
        if sandbox:
            self.say("Using the local Make sandbox: demo users, synthetic data, no Make "
                     "account needed.")
        reason = headless_reason(self.shell)
        if reason is not None:
            return self._unattended(profile, settings, reason, token, token_source,
                                    remember=remember)
        if api_token or (token is not None and not sandbox):
            return self._api_token_login(profile, settings, token, token_source,
                                         service=service, widget=widget)
        try:
            auth = MakeAuth(remember=remember, **settings)
        except MakeError as exc:
            raise UsageError(str(exc)) from None
        if auth.store_notice:
            self.say(auth.store_notice)
        if sandbox and auth.config.client_secret != (settings["client_secret"] or None):
            auth.set_client_secret(settings["client_secret"])

        self._retire(profile)
        self.auths[profile] = auth
        if auth.session.logged_in and not force:
            self.say(f"Logged in to {service} as {self._who(auth.session)} (profile "
                     f"{profile!r}, restored).")
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

            panel = LoginPanel(auth, listen=listen, finish_hint=hint, request=request,
                               service=service, ask_secret=confidential)
            self.views[profile] = panel
            self.show(panel)
            return auth.session
        console = ConsoleLogin(auth, listen=listen, input_func=self.input_func,
                               finish_hint=hint, service=service,
                               restart_hint="run the same %make_login line again")
        self.views[profile] = console
        return console.run()

    def _unattended(self, profile: str, settings: dict[str, Any], reason: str,
                    token: str | None, token_source: str, *, remember: bool) -> MakeSession:
        """No one to click: a remembered login, else an API token, else a session that fails
        at its first use with how to run unattended. Never waits."""
        self._retire(profile)
        try:
            auth: MakeAuth | None = MakeAuth(remember=True, **settings)
        except MakeError:
            auth = None  # no OAuth client configured: nothing can be remembered for it
        if auth is not None and auth.session.logged_in:
            self.auths[profile] = auth
            self.say(f"Logged in to Make as {self._who(auth.session)} (profile {profile!r}, "
                     f"remembered login; {reason}).")
            return auth.session
        if token is not None:
            session = self._token_session(profile, settings, token, token_source)
            self.say(f"Using the API token from {token_source} (profile {profile!r}, "
                     f"{session.api_url}): {reason}.")
            return session
        try:
            config = MakeConfig.resolve(**settings)
        except MakeError:
            config = MakeConfig(client_id=settings.get("client_id") or "", profile=profile)
        session = MakeSession(config)
        session.fail_unattended(UnattendedLoginError(how_to_run_unattended(reason)))
        self.say(f"Not logged in to Make (profile {profile!r}): {reason}, and there is no "
                 "remembered login or API token; using `make` will raise an error that says "
                 "how to run unattended.")
        return session

    @staticmethod
    def _token_session(profile: str, settings: dict[str, Any], token: str,
                       source: str) -> MakeSession:
        try:
            config = MakeConfig.for_api_token(zone=settings.get("zone"),
                                              api_url=settings.get("api_url"), profile=profile)
            return MakeSession(config).use_api_token(token, source=source)
        except MakeError as exc:
            raise UsageError(str(exc)) from None

    def _api_token_login(self, profile: str, settings: dict[str, Any], token: str | None,
                         token_source: str, *, service: str, widget: bool) -> MakeSession:
        """Log in with a Make API token: the one from ``MAKE_API_TOKEN`` (or the sandbox's),
        else one typed into the panel's password field (never on the magic's line)."""
        self._retire(profile)
        self.auths.pop(profile, None)
        if token is not None:
            session = self._token_session(profile, settings, token, token_source)
            self.say(f"Logged in to {service} with the API token from {token_source} (profile "
                     f"{profile!r}, {session.api_url}). It is sent as 'Authorization: Token', "
                     "only to this API; %make_logout forgets it here, and it is revoked in your "
                     "Make profile (API access).")
            return session
        try:
            config = MakeConfig.for_api_token(zone=settings.get("zone"),
                                              api_url=settings.get("api_url"), profile=profile)
        except MakeError as exc:
            raise UsageError(str(exc)) from None
        use_widget = widget and (self.widgets if self.widgets is not None
                                 else _widgets_usable(self.shell))
        if not use_widget:
            raise UsageError(
                f"No API token: set {API_TOKEN_ENV} in the environment the kernel starts with "
                "(never in the notebook), or run %make_login --api-token in a notebook to type "
                "it into the panel.")
        from .widget import ApiTokenPanel

        session = MakeSession(config)
        panel = ApiTokenPanel(session, service=service)
        session.pending_hint = ApiTokenPanel.pending_hint
        self.views[profile] = panel
        self.show(panel)
        return session

    def _retire(self, profile: str) -> None:
        """Close the profile's previous panel or text login (its listener holds the redirect
        port)."""
        view = self.views.pop(profile, None)
        if view is not None:
            view.controller.close("A newer login for this profile replaced this one.")

    def _sandbox_settings(self, redirect_uri: str | None) -> dict[str, str]:
        try:
            from .sandbox import ensure_sandbox
        except ImportError as exc:
            raise UsageError(
                "The sandbox needs the optional dependencies: pip install -e "
                f"'.[sandbox]' in the package's checkout ({exc})."
            ) from None
        sandbox = ensure_sandbox()
        settings = dict(sandbox.settings())
        configured = os.environ.get("MAKE_REDIRECT_URI", "").strip()
        if not redirect_uri and configured and loopback_target(configured) is not None:
            redirect_uri = configured  # the sandbox takes any loopback port (RFC 8252)
        if sandbox.api_token:
            settings[API_TOKEN_ENV] = sandbox.api_token
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
        view = self.views.get(profile)
        if view is not None and view.controller.pending:
            if not view.controller.finish(reply, source="paste"):
                raise UsageError(view.controller.last_error
                                 or "The login could not be completed.")
            return auth.session
        if auth.session.logged_in:
            return auth.session
        try:
            session = auth.finish(reply)
        except MakeError as exc:
            raise UsageError(str(exc)) from None
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
        if session.credential == "api_token":
            self.say(f"Logged out of Make (profile {profile!r}): the API token is forgotten "
                     "in this kernel. This package does not revoke API tokens: delete it in "
                     "your Make profile (API access) to revoke it.")
        elif revoked:
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
        for profile in list(self.views):
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
    @_login_options
    @argument("--sandbox", action="store_true",
              help="Log into the local Make sandbox (demo users, synthetic data; needs the "
                   "[sandbox] extra) instead of Make.")
    @argument("--remember", action="store_true",
              help="Keep the login across kernel restarts: tokens on disk, never the "
                   "client secret; %%make_logout deletes them.")
    @argument("--confidential", action="store_true",
              help="The client is confidential (it has a client secret): the panel asks for "
                   "the secret unless MAKE_CLIENT_SECRET is set.")
    @argument("--no-widget", action="store_true",
              help="Print the link and read the reply as text instead of showing the panel.")
    @argument("--no-listen", action="store_true",
              help="Don't listen on a loopback redirect URI's port; paste the address instead.")
    @argument("--force", action="store_true",
              help="Log in again even if the profile already has a live session.")
    @argument("--api-token", action="store_true",
              help="Use a Make API token instead of the OAuth login: MAKE_API_TOKEN, else "
                   "type it into the panel (never on this line). Needs --zone or --api-url "
                   "(or MAKE_ZONE / MAKE_API_URL).")
    @line_magic
    def make_login(self, line: str = "") -> MakeSession:
        """Log into Make: show the login panel and return the profile's MakeSession.

        The session is returned at once and is pending until the panel completes; using it
        before then raises an error that says to finish the login above::

            make = %make_login
            make = %make_login --zone eu2 --scopes "openid user:read scenarios:read"
            make.get("users/me").json()      # after the panel says you are logged in
        """
        if _looks_like_a_token(line):
            raise UsageError(
                "The API token never goes on the magic's line (it would be saved in the "
                "notebook). Set MAKE_API_TOKEN in the environment the kernel starts with, or "
                "run %make_login --api-token alone and type the token into the panel."
            )
        if "secret" in line.lower():
            # argparse would echo the unknown option and its value.
            raise UsageError(
                "The client secret never goes on the magic's line (it would be saved in the "
                "notebook). Set MAKE_CLIENT_SECRET before starting Jupyter, or use "
                "--confidential and type it into the login panel's 'Client secret' field."
            )
        args = _parse(self.make_login, line)
        return self.context.login(
            args.profile, sandbox=args.sandbox, remember=args.remember,
            confidential=args.confidential, widget=not args.no_widget,
            listen=not args.no_listen, force=args.force, api_token=args.api_token,
            **{name: getattr(args, name) for name in LOGIN_OPTIONS},
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
        args = _parse(self.make_finish, line)
        return self.context.finish("".join(args.reply), profile=args.profile)

    @magic_arguments()
    @argument("--profile", "-p", default="default", help="Profile to log out.")
    @line_magic
    def make_logout(self, line: str = "") -> None:
        """Revoke the profile's tokens at Make and forget the login."""
        args = _parse(self.make_logout, line)
        self.context.logout(args.profile)

    @magic_arguments()
    @argument("--profile", "-p", default=None,
              help="Profile to show (default: every logged-in profile).")
    @line_magic
    def make_userinfo(self, line: str = "") -> pd.DataFrame:
        """The logged-in user's OpenID Connect userinfo as a pandas DataFrame."""
        args = _parse(self.make_userinfo, line)
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
