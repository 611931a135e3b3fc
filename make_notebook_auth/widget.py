"""ipywidgets edge: :class:`LoginPanel`, the login panel ``%make_login`` shows in a notebook.

The panel holds a link to Make's sign-in page (new tab), two lines of instructions, a paste
field with a submit button (Enter submits too), a status line and a "Start over" button. It is
a view of a :class:`~make_notebook_auth.login.LoginController`, which runs the login (and the
loopback listener that lets it complete without pasting); the terminal login is the other view.

A "Confidential client? Client secret" field appears only when asked for (``ask_secret=True``,
``%make_login --confidential``) and no secret is known yet: never for the sandbox, whose
clients need none, and not for a public client, which has none.

Nothing secret stays in a widget (widget state may be saved into the ``.ipynb``): the paste field
is cleared after every submit, failed or not, the client-secret field as soon as it is read, and
the link (which holds only the public ``state`` and PKCE challenge) is replaced once the login is
complete. Everything shown is HTML-escaped. Status icons are Font Awesome icons (shipped with
ipywidgets), never emoji, which render as empty boxes where no emoji font is installed.

Only this module imports ipywidgets; it is imported lazily by the magics.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import ipywidgets as widgets

from .auth import MakeAuth
from .config import is_loopback_host
from .errors import MakeError
from .flow import AuthorizationRequest
from .login import LOGGED_IN, PENDING, LoginController, LoginView, busy_port_message
from .loopback import DEFAULT_TIMEOUT
from .session import MakeSession

USERINFO_ROWS = 12  # claims shown in the compact table
_NAME_CLAIMS = ("name", "preferred_username", "nickname", "given_name")


def browser_link(url: str, environ: Mapping[str, str] | None = None) -> str:
    """The address a browser should open for ``url``.

    Behind JupyterHub or Binder (``JUPYTERHUB_SERVICE_PREFIX`` set) the user's browser cannot
    reach the kernel's loopback, so a loopback ``http://127.0.0.1:PORT/path?query`` becomes
    ``{prefix}proxy/PORT/path?query`` on the notebook's own origin (``jupyter-server-proxy``).
    Other URLs are returned unchanged.
    """
    env = os.environ if environ is None else environ
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if not prefix:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if parts.scheme != "http" or not is_loopback_host(parts.hostname) or not port:
        return url
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    rel = f"{prefix.rstrip('/')}/proxy/{port}{parts.path or '/'}"
    return rel + (f"?{parts.query}" if parts.query else "")


def display_name(claims: Mapping[str, Any]) -> str:
    """``Name (email)``, or whichever of them is known, or the subject."""
    name = next((str(claims[k]) for k in _NAME_CLAIMS if claims.get(k)), "")
    email = str(claims.get("email") or "")
    if name and email:
        return f"{name} ({email})"
    return name or email or str(claims.get("sub") or "an unnamed user")


def userinfo_table(claims: Mapping[str, Any], limit: int = USERINFO_ROWS) -> str:
    """A compact, escaped HTML table of userinfo claims."""
    rows = []
    for key, value in list(claims.items())[:limit]:
        if isinstance(value, (dict, list)):
            text = json.dumps(value, ensure_ascii=False, default=str)
        else:
            text = str(value)
        if len(text) > 120:
            text = text[:119] + "\u2026"
        rows.append(
            f"<tr><th style='text-align:left;padding:1px 10px 1px 0'>{html.escape(str(key))}</th>"
            f"<td style='text-align:left;padding:1px 0'>{html.escape(text)}</td></tr>"
        )
    if not rows:
        return ""
    more = len(claims) - limit
    tail = f"<div style='font-size:85%'>\u2026 and {more} more</div>" if more > 0 else ""
    return (
        "<table class='make-login-userinfo-table' "
        "style='font-size:90%;border-collapse:collapse;line-height:1.3'>"
        + "".join(rows) + "</table>" + tail
    )


def _password_field(placeholder: str, description: str, css_class: str) -> widgets.Password:
    field = widgets.Password(
        placeholder=placeholder,
        description=description,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="auto", max_width="100%"),
        continuous_update=False,  # sent once (Enter or leaving the field), not per key
    )
    field.add_class(css_class)
    return field


def _hidden_section(title: str, field: widgets.Widget, note: str,
                    css_class: str) -> widgets.Accordion:
    """A closed accordion holding ``field`` and a short ``note`` (escaped)."""
    text = widgets.HTML(
        "<div style='font-size:90%;white-space:normal;overflow-wrap:anywhere'>"
        + html.escape(note) + "</div>",
        layout=widgets.Layout(width="auto", max_width="100%"),
    )
    accordion = widgets.Accordion(
        children=[widgets.VBox([field, text],
                               layout=widgets.Layout(width="auto", overflow="hidden"))],
        selected_index=None, layout=widgets.Layout(width="auto", max_width="100%"),
    )
    accordion.set_title(0, title)
    accordion.add_class(css_class)
    return accordion


class LoginPanel(widgets.VBox, LoginView):
    """The Make login panel: link, instructions, paste field, status, start over.

    >>> panel = LoginPanel(MakeAuth())   # starts a login (and the loopback listener)
    >>> display(panel)                    # then panel.session is the MakeSession
    """

    pending_hint = ("open the sign-in link in the login panel, approve, then paste the address "
                    "you were sent to into the panel (or run the login cell again).")

    def __init__(
        self,
        auth: MakeAuth,
        *,
        listen: bool = True,
        title: str | None = None,
        listen_timeout: float = DEFAULT_TIMEOUT,
        on_login: Callable[[MakeSession], None] | None = None,
        finish_hint: str | None = None,
        request: AuthorizationRequest | None = None,
        service: str = "Make",
        ask_secret: bool = False,
    ) -> None:
        self.auth = auth
        self.on_login = on_login
        self.finish_hint = finish_hint
        self.service = service
        self._secret_value = ""
        self.controller = LoginController(auth, self, listen=listen,
                                          listen_timeout=listen_timeout, service=service)

        cfg = auth.config
        heading = title or f"Log in to {service}"
        bits = [f"profile <code>{html.escape(cfg.profile)}</code>",
                f"client <code>{html.escape(cfg.client_id)}</code>"]
        host = urlsplit(cfg.issuer).netloc
        if host and host != "www.make.com":
            bits.append(f"at <code>{html.escape(host)}</code>")
        self.header = widgets.HTML(
            f"<div style='line-height:1.45'><b>{html.escape(heading)}</b> &middot; "
            + " &middot; ".join(bits) + "</div>"
        )
        self.link = widgets.HTML()
        self.link.add_class("make-login-link")
        self.instructions = widgets.HTML()
        self.instructions.add_class("make-login-instructions")
        self.paste = widgets.Text(
            placeholder="Paste the whole address here (…/callback?code=…)",
            layout=widgets.Layout(width="auto", flex="1 1 auto", min_width="0"),
            description="Address:",
            style={"description_width": "initial"},
        )
        self.paste.add_class("make-login-paste")
        self.paste.on_msg(self._on_text_msg)
        self.submit = widgets.Button(description="Log in", button_style="primary",
                                     icon="sign-in", tooltip="Complete the login",
                                     layout=widgets.Layout(flex="0 0 auto"))
        self.submit.add_class("make-login-submit")
        self.submit.on_click(lambda _b: self.submit_reply())
        self.restart = widgets.Button(description="Start over", icon="refresh",
                                      tooltip="New sign-in link (forget this attempt)",
                                      layout=widgets.Layout(width="auto"))
        self.restart.add_class("make-login-restart")
        self.restart.on_click(lambda _b: self.start_over())
        self.status = widgets.HTML()
        self.status.add_class("make-login-status")
        self.userinfo = widgets.HTML()
        self.userinfo.add_class("make-login-userinfo")

        self.secret: widgets.Password | None = None
        sections: list[widgets.Widget] = []
        if ask_secret and not cfg.confidential:
            self.secret = _password_field("The client secret Make gave you", "Client secret:",
                                          "make-login-secret")
            self.secret.observe(self._on_secret, names="value")
            sections.append(_hidden_section(
                "Confidential client? Client secret", self.secret,
                "Type it, press Enter, then open the sign-in link. It is kept in the kernel's "
                "memory only: the field is cleared at once. (Or set MAKE_CLIENT_SECRET before "
                "starting Jupyter.)", "make-login-secret-box"))
        # Instead of the sign-in link, a Make API token (it needs the API's zone to be known).
        self.api_token: widgets.Password | None = None
        if cfg.api_url:
            self.api_token = _password_field("A token from your Make profile (API access)",
                                             "API token:", "make-login-api-token")
            self.api_token.observe(self._on_api_token, names="value")
            sections.append(_hidden_section(
                "Use a Make API token instead", self.api_token,
                "Type it and press Enter instead of signing in. It is sent as 'Authorization: "
                "Token' to this login's API only, kept in the kernel's memory only (the field is "
                "cleared at once) and never remembered on disk; revoke it in your Make profile.",
                "make-login-api-token-box"))

        self.paste_row = widgets.HBox([self.paste, self.submit],
                                      layout=widgets.Layout(width="auto", max_width="52rem"))
        self.controls = widgets.VBox([self.paste_row])
        self._sections = sections
        self.extras = widgets.VBox([*sections, widgets.HBox([self.restart])])
        super().__init__(
            [self.header, self.link, self.instructions, self.controls, self.status,
             self.userinfo, self.extras],
            layout=widgets.Layout(border="1px solid #ccc", padding="6px 10px", max_width="56rem",
                                  overflow="hidden"),
        )
        self.add_class("make-login-panel")
        self.controller.start(request)

    # -- public ----------------------------------------------------------------------------

    @property
    def session(self) -> MakeSession:
        """The profile's ``MakeSession`` (pending until the panel completes)."""
        return self.auth.session

    @property
    def state(self) -> str:
        """``pending``, ``logged_in``, ``closed`` or ``logged_out``."""
        return self.controller.state

    @property
    def request(self) -> AuthorizationRequest | None:
        return self.controller.request

    @property
    def listener(self) -> Any:
        return self.controller.listener

    @property
    def last_error(self) -> str | None:
        return self.controller.last_error

    def submit_reply(self, reply: str | None = None) -> bool:
        """Finish the login with ``reply`` (default: the paste field). True once logged in.

        The paste field is cleared whatever the outcome: a pasted code never stays in widget
        state (which a saved notebook keeps)."""
        text = self.paste.value if reply is None else reply
        self.paste.value = ""
        return self.controller.finish(text, source="paste")

    def start_over(self) -> None:
        """A new sign-in link (and listener); the panel forgets errors and the pasted text."""
        self.paste.value = ""
        self.controller.restart()

    def close_login(self, message: str = "This login panel was replaced by a newer one.") -> None:
        """Stop waiting: listener off, link and inputs disabled, ``message`` shown."""
        self.controller.close(message)

    # -- LoginView -------------------------------------------------------------------------

    def on_started(self, controller: LoginController) -> None:
        request = controller.request
        assert request is not None
        href = html.escape(browser_link(request.url), quote=True)
        self.link.value = (
            f"<a href=\"{href}\" target=\"_blank\" rel=\"noopener noreferrer\" "
            "class=\"make-login-anchor\" style=\"font-size:115%;font-weight:600;"
            "color:var(--jp-content-link-color,#1a5fb4);text-decoration:underline\">"
            f"Open {html.escape(self._site())} sign-in page "
            "<i class='fa fa-external-link' aria-hidden='true'></i></a> "
            "<span style='font-size:90%'>(new tab)</span>"
        )
        redirect = html.escape(self.auth.config.redirect_uri)
        step1 = "1. Click the link, sign in and approve access for this notebook."
        if controller.listening:
            step2 = (
                "2. This panel then completes by itself. If the new tab shows an error instead "
                f"of \u201cLogged in\u201d, copy the whole address from its address bar (it starts "
                f"with <code>{redirect}?code=</code>) and paste it below."
            )
        else:
            step2 = (
                "2. You land on a page whose address starts with "
                f"<code>{redirect}?code=</code> (the page itself may show an error: that is "
                "fine). Copy the whole address from the browser's address bar, paste it below "
                "and press Enter."
            )
        self.instructions.value = (
            f"<div style='line-height:1.45'><div>{step1}</div><div>{step2}</div></div>"
        )
        self._show_controls(True)
        self.restart.disabled = self.paste.disabled = self.submit.disabled = False
        if controller.listener is not None:
            self._set_status(
                f"Waiting for you to approve in the browser ({controller.listener.where} for "
                "the reply)\u2026", kind="info"
            )
        elif controller.busy_port is not None:
            self._set_status(busy_port_message(controller.busy_port, "below"), kind="info")
        elif controller.capture_error is not None:
            self._set_status(f"{controller.capture_error} below.", kind="info")
        else:
            self._set_status("Waiting for the pasted address\u2026", kind="info")

    def on_start_failed(self, message: str) -> None:
        self._disable_link("No sign-in link: the login could not be started.")
        self._set_status(message, kind="error")

    def before_finish(self) -> None:
        secret = self._take_secret()
        if secret:
            self.auth.set_client_secret(secret)

    def on_completing(self, source: str) -> None:
        if source == "paste":
            self.submit.disabled = True
            self._set_status("Completing the login\u2026", kind="info")

    def on_failed(self, message: str, source: str) -> None:
        self._set_status(message, kind="error")
        self.submit.disabled = self.state != PENDING

    def on_logged_in(self, session: MakeSession, source: str) -> None:
        self.paste.value = ""
        for field in (self.secret, self.api_token):
            if field is not None:
                field.value = ""
        self._show_controls(False)
        for section in self._sections:
            section.layout.display = "none"
        self._disable_link("Logged in with an API token: this link was not used."
                           if source == "api_token" else "Signed in: this link has been used.")
        self.instructions.value = ""
        claims: Mapping[str, Any] = {}
        try:
            claims = session.userinfo()
        except Exception:  # userinfo is a nicety; the login itself succeeded
            claims = {k: v for k, v in session.id_claims.items()
                      if k in ("sub", "name", "email", "preferred_username")}
        who = display_name(claims or session.id_claims)
        if source == "api_token":
            self._set_status(
                f"Logged in to {self.service} as {who} with an API token: sent as "
                "'Authorization: Token' to this login's API only. Revoke it in your Make profile "
                "when done.", kind="ok")
        else:
            self._set_status(f"Logged in to {self.service} as {who}.", kind="ok")
        self.userinfo.value = userinfo_table(claims)
        if source != "restored" and self.on_login is not None:
            try:
                self.on_login(session)
            except Exception:  # noqa: S110 - never undo a completed login over a callback
                pass

    def on_listen_timeout(self) -> None:
        self._set_status(
            "Stopped listening for the browser's reply (timed out). After approving, paste "
            "the address below, or click Start over for a new link.", kind="info"
        )

    def on_closed(self, message: str) -> None:
        self._disable_link("This sign-in link is no longer in use.")
        self._show_controls(False)
        self.paste.value = ""
        self._set_status(message, kind="info")

    def on_logged_out(self) -> None:
        self.userinfo.value = ""
        self._set_status(f"Logged out of {self.service}. Run the login cell again to log in.",
                         kind="info")

    # -- widgets ---------------------------------------------------------------------------

    def _site(self) -> str:
        return "Make's" if self.service == "Make" else f"{self.service}'s"

    def _on_text_msg(self, _widget: Any, content: Mapping[str, Any], _buffers: Any) -> None:
        if content.get("event") == "submit":
            self.submit_reply()

    def _on_secret(self, change: Mapping[str, Any]) -> None:
        # Widget state can be saved into the notebook: move the secret into memory at once.
        value = str(change.get("new") or "").strip()
        if not value or self.secret is None:
            return
        self._secret_value = value
        self.secret.value = ""
        self.secret.placeholder = "Received: kept in the kernel's memory for this login"

    def _on_api_token(self, change: Mapping[str, Any]) -> None:
        # Widget state can be saved into the notebook: the field is emptied whatever happens.
        value = str(change.get("new") or "")
        if not value or self.api_token is None:
            return
        self.api_token.value = ""
        self.controller.use_api_token(value)

    def _take_secret(self) -> str:
        value, self._secret_value = self._secret_value, ""
        if self.secret is not None:
            value = value or str(self.secret.value).strip()
            self.secret.value = ""
        return value

    def _show_controls(self, show: bool) -> None:
        for box in (self.controls, self.extras):
            box.layout.display = None if show else "none"

    def _disable_link(self, text: str) -> None:
        self.link.value = (
            "<span class='make-login-link-disabled' style='color:#777'>"
            f"{html.escape(text)}</span>"
        )

    def _set_status(self, text: str, *, kind: str) -> None:
        icon = {"ok": "fa-check-circle", "error": "fa-exclamation-triangle", "info": ""}[kind]
        mark = f"<i class='fa {icon}' aria-hidden='true'></i> " if icon else ""
        color = {"ok": "#1b7f3a", "error": "#b3261e", "info": "inherit"}[kind]
        self.status.value = (
            f"<div class='make-login-status-{kind}' style='color:{color};line-height:1.45;"
            f"overflow-wrap:anywhere'>{mark}{html.escape(text)}</div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = self.plain_text()
        return bundle

    def plain_text(self) -> str:
        """What a front end without widgets shows: the link and how to finish."""
        profile = self.auth.config.profile
        if self.state == LOGGED_IN:
            return f"{self.service} login panel (profile {profile!r}): logged in."
        if self.request is None:
            return (f"{self.service} login panel (profile {profile!r}): "
                    f"{self.last_error or 'not started'}")
        hint = self.finish_hint or "auth.finish('<the address you land on>')"
        return (
            f"{self.service} login (profile {profile!r}). Open this link, sign in and approve:\n"
            f"{browser_link(self.request.url)}\n"
            f"If this panel does not show up, finish with: {hint}"
        )


class ApiTokenPanel(widgets.VBox):
    """``%make_login --api-token`` without ``MAKE_API_TOKEN``: a password field for a Make API
    token, which logs the (pending) ``session`` in. The field is cleared at every submit, failed
    or not, so the token is never left in the widget state a saved notebook keeps."""

    pending_hint = "type the API token into the panel above (or set MAKE_API_TOKEN)."

    def __init__(self, session: MakeSession, *, service: str = "Make") -> None:
        self._session = session
        self.service = service
        self.header = widgets.HTML(
            f"<div style='line-height:1.45'><b>Log in to {html.escape(service)} with an API "
            f"token</b> &middot; profile <code>{html.escape(session.profile)}</code> &middot; "
            f"<code>{html.escape(session.api_url or '')}</code></div>"
            "<div style='font-size:90%;white-space:normal'>Create one in your Make profile "
            "(API access), with the scopes you need. It is kept in the kernel's memory only.</div>"
        )
        self.token = widgets.Password(
            placeholder="Make API token", description="API token:",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="auto", flex="1 1 auto", min_width="0"),
            continuous_update=False,
        )
        self.token.add_class("make-login-api-token")
        self.token.observe(lambda change: self.submit_token(change["new"]) if change["new"]
                           else None, names="value")
        self.status = widgets.HTML()
        self.status.add_class("make-login-status")
        self.controls = widgets.HBox([self.token],
                                     layout=widgets.Layout(width="auto", max_width="52rem"))
        super().__init__([self.header, self.controls, self.status],
                         layout=widgets.Layout(border="1px solid #ccc", padding="6px 10px",
                                               max_width="56rem", overflow="hidden"))
        self.add_class("make-login-panel")
        self._set_status("Type the token and press Enter.", kind="info")

    @property
    def session(self) -> MakeSession:
        return self._session

    def submit_token(self, value: str | None = None) -> bool:
        """Log in with ``value`` (default: the field's); the field is emptied either way."""
        text = self.token.value if value is None else value
        self.token.value = ""
        if self._session.logged_in:
            return True
        try:
            self._session.use_api_token(text or "", source="The typed API token")
        except MakeError as exc:
            self._set_status(str(exc), kind="error")
            return False
        self.controls.layout.display = "none"
        self._set_status(
            f"Logged in to {self.service} with an API token (profile "
            f"'{self._session.profile}'): sent as 'Authorization: Token' to this API only. "
            "Revoke it in your Make profile when done.", kind="ok")
        return True

    def close_login(self, message: str = "This login panel was replaced by a newer one.") -> None:
        self.controller.close(message)

    @property
    def controller(self) -> _ApiTokenController:
        return _ApiTokenController(self)

    def _set_status(self, text: str, *, kind: str) -> None:
        LoginPanel._set_status(self, text, kind=kind)  # type: ignore[arg-type]


class _ApiTokenController:
    """What the magics' context asks of a view's controller (``pending``, ``close``)."""

    last_error = ("This login takes a Make API token, typed into its panel (or set "
                  "MAKE_API_TOKEN), not an address.")

    def __init__(self, panel: ApiTokenPanel) -> None:
        self.panel = panel

    def finish(self, reply: str, *, source: str = "paste") -> bool:
        return False

    @property
    def pending(self) -> bool:
        return not self.panel.session.logged_in

    def close(self, message: str) -> None:
        if self.pending:
            self.panel.controls.layout.display = "none"
            self.panel._set_status(message, kind="info")
