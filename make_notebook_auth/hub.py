"""The JupyterHub service ``make-login``: one redirect URI for every user of a hub.

On JupyterHub the browser cannot reach a kernel's loopback port. This managed service, reached
at ``{hub}/services/make-login/``, is the hub's one registered redirect URI
(``https://hub.example.org/services/make-login/callback``) and routes each reply to the kernel
that asked for it:

1. ``%make_login`` in a kernel registers its login's ``state`` (``POST api/pending``),
   authenticated as the hub user by the single-user server's ``JUPYTERHUB_API_TOKEN``, then
   long-polls ``GET api/reply`` (see :mod:`make_notebook_auth.hubrelay`).
2. Make redirects the browser to ``callback?code=…&state=…&iss=…``. The service requires the
   browser to be logged into the hub (JupyterHub's OAuth for services) and hands the reply only
   to a kernel of the same hub user that registered the state, once, within the state's
   lifetime (minutes). A reply for an unknown, expired, used or foreign state gets a page that
   says so and is not kept.
3. The kernel finishes the login itself: the service never sees the PKCE verifier, the client
   secret or a token.

Pending states live in memory (bounded in number, per user and in time); no request line with a
query string is logged. For an admin, two lines of ``jupyterhub_config.py``::

    from make_notebook_auth.hub import configure
    configure(c, url="http://127.0.0.1:10101")

Only this module imports jupyterhub and tornado (``pip install 'make-notebook-auth[hub]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .hubrelay import SERVICE_NAME, STATE_PATTERN

ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
DEFAULT_LIFETIME = 300  # seconds a registered state waits for its reply
MAX_LIFETIME = 900
DEFAULT_PER_USER = 8  # pending states one hub user may hold
DEFAULT_MAX_PENDING = 10_000  # pending states in all
MAX_WAIT = 25  # seconds one long poll is held open
MAX_POLLS = 2  # long polls open at once on one state (a kernel needs one)
MAX_BODY = 4096  # bytes of a registration
#: The redirect's parameters that are handed on (each at most MAX_PARAM characters).
REPLY_PARAMS = ("code", "state", "iss", "error", "error_description", "error_uri")
MAX_PARAM = 2048

log = logging.getLogger("make_notebook_auth.hub")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;
line-height:1.5;color:#1b1b1f}}h1{{font-size:1.4rem}}</style></head>
<body><h1 class="make-login-title">{title}</h1><p class="make-login-body">{body}</p></body></html>
"""

_AGAIN = "Run %make_login in your notebook again for a new sign-in link."


def page(title: str, body: str) -> str:
    """A small HTML page; both texts are escaped."""
    return _PAGE.format(title=html.escape(title), body=html.escape(body))


# -- pending states (no tornado here: tested on its own) ---------------------------------------

class Refused(Exception):
    """A request the store refuses: HTTP ``status``, a page ``title`` and what to do."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass
class _Pending:
    user: str
    expires: float
    created: float
    reply: str | None = None  # the browser's query string, until a kernel takes it
    used: bool = False
    event: asyncio.Event | None = None
    seq: int = field(default=0)
    polls: int = 0  # long polls waiting on this state


class PendingStore:
    """Registered states: ``register`` (kernel), ``deliver`` (browser), ``take`` (kernel).

    Bounded: at most ``max_pending`` states in all and ``per_user`` per hub user (a user's
    oldest state makes room for a new one), each for at most ``max_lifetime`` seconds, with at
    most :data:`MAX_POLLS` long polls waiting on it. A state
    is handed to its own user's kernel once; then it is remembered as used (without its reply)
    until it expires, so that a replayed reply is told so. Single-threaded (the event loop's).
    """

    def __init__(
        self,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        max_lifetime: float = MAX_LIFETIME,
        per_user: int = DEFAULT_PER_USER,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = float(lifetime)
        self.max_lifetime = float(max(max_lifetime, lifetime))
        self.per_user = int(per_user)
        self.max_pending = int(max_pending)
        self.clock = clock
        self._states: dict[str, _Pending] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return f"<PendingStore {len(self._states)} states>"

    def _live(self, state: str) -> _Pending | None:
        entry = self._states.get(state)
        if entry is not None and entry.expires <= self.clock():
            self._drop(state)
            return None
        return entry

    def _drop(self, state: str) -> None:
        entry = self._states.pop(state, None)
        if entry is not None:
            entry.reply = None
            if entry.event is not None:
                entry.event.set()  # a waiting poll ends (and finds the state gone)

    def purge(self) -> None:
        """Forget every expired state."""
        now = self.clock()
        for state in [s for s, e in self._states.items() if e.expires <= now]:
            self._drop(state)

    def register(self, user: str, state: str, lifetime: float | None = None) -> float:
        """Wait for ``state``'s reply on behalf of ``user``; returns the lifetime granted."""
        if not isinstance(state, str) or not STATE_PATTERN.fullmatch(state):
            raise Refused(400, "Bad state", "The state is missing or malformed.")
        seconds = self.lifetime if lifetime is None else float(lifetime)
        if not seconds > 0:
            raise Refused(400, "Bad lifetime", "The lifetime must be a positive number.")
        seconds = min(seconds, self.max_lifetime)
        self.purge()
        entry = self._live(state)
        if entry is not None:
            if entry.user != user:
                raise Refused(409, "State in use", "This state is already registered.")
            self._drop(state)  # the same user's kernel listens again (e.g. after a failure)
        mine = sorted((e.seq, s) for s, e in self._states.items() if e.user == user)
        while mine and len(mine) >= self.per_user:
            self._drop(mine.pop(0)[1])
        if len(self._states) >= self.max_pending:
            raise Refused(503, "Too many pending logins",
                          "The service is waiting for too many logins; try again in a few "
                          "minutes.")
        now = self.clock()
        self._seq += 1
        self._states[state] = _Pending(user=user, expires=now + seconds, created=now,
                                       seq=self._seq)
        return seconds

    def forget(self, user: str, state: str) -> bool:
        """The kernel stopped waiting for ``state`` (only its own user can say so)."""
        entry = self._live(state)
        if entry is None or entry.user != user:
            return False
        self._drop(state)
        return True

    def deliver(self, user: str, query: str) -> str:
        """The browser of hub user ``user`` brought back ``query`` (the callback's query
        string): keep the reply for the kernel; returns the state. Raises :class:`Refused`
        (and keeps nothing) for an unknown, expired, used or foreign state."""
        reply = reply_query(query)
        state = dict(parse_qsl(reply)).get("state", "")
        entry = self._live(state) if state else None
        if entry is None:
            raise Refused(410, "Unknown or expired login",
                          "This sign-in reply does not belong to a login that is waiting (it "
                          "expired after a few minutes, or was never started here). " + _AGAIN)
        if entry.user != user:
            raise Refused(403, "Not your login",
                          "This sign-in reply belongs to a login started by another JupyterHub "
                          "user; it was not used. " + _AGAIN)
        if entry.used or entry.reply is not None:
            raise Refused(409, "Already used",
                          "This sign-in reply was already handed to your notebook; it cannot "
                          "be used twice. " + _AGAIN)
        entry.reply = reply
        if entry.event is not None:
            entry.event.set()
        return state

    async def take(self, user: str, state: str, wait: float) -> str | None:
        """The reply for ``user``'s ``state``, waiting up to ``wait`` seconds; None when none
        came yet. Raises :class:`Refused` (404) when the state is unknown, expired, used or
        registered by another user."""
        entry = self._live(state)
        if entry is None or entry.user != user or entry.used:
            raise Refused(404, "Unknown login", "No login is waiting under this state.")
        if entry.reply is None and wait > 0:
            if entry.polls >= MAX_POLLS:
                raise Refused(429, "Too many polls", "This state is already being waited for.")
            if entry.event is None or entry.event.is_set():
                entry.event = asyncio.Event()
            remaining = min(wait, entry.expires - self.clock())
            entry.polls += 1
            try:
                await asyncio.wait_for(entry.event.wait(), timeout=max(remaining, 0))
            except asyncio.TimeoutError:
                pass
            finally:
                entry.polls -= 1
            if self._live(state) is not entry:
                raise Refused(404, "Unknown login", "No login is waiting under this state.")
        if entry.reply is None:
            return None
        reply, entry.reply = entry.reply, None
        entry.used = True
        return reply


def reply_query(query: str) -> str:
    """The redirect's parameters worth handing on (:data:`REPLY_PARAMS`), re-encoded; each
    must appear at most once and be at most :data:`MAX_PARAM` characters."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=64)
    except ValueError:
        pairs = None
    if pairs is None:
        raise Refused(400, "Not a sign-in reply", "This address could not be read. " + _AGAIN)
    kept: dict[str, str] = {}
    for key, value in pairs:
        if key not in REPLY_PARAMS:
            continue
        if key in kept or len(value) > MAX_PARAM:
            raise Refused(400, "Not a sign-in reply",
                          "This address is not a sign-in reply from Make. " + _AGAIN)
        kept[key] = value
    if not kept.get("state") or not ("code" in kept or "error" in kept):
        raise Refused(400, "Not a sign-in reply",
                      "This address is not a sign-in reply from Make (no state, or no code). "
                      + _AGAIN)
    return urlencode(kept)


# -- JupyterHub configuration --------------------------------------------------------------------

def _add_scope(roles: Any, name: str, defaults: list[str], scope: str) -> None:
    for role in roles:
        if isinstance(role, dict) and role.get("name") == name:
            scopes = list(role.get("scopes") or [])
            if scope not in scopes:
                role["scopes"] = [*scopes, scope]
            return
    roles.append({"name": name, "scopes": [*defaults, scope]})


def configure(
    c: Any,
    url: str = "http://127.0.0.1:10101",
    *,
    lifetime: int = DEFAULT_LIFETIME,
    per_user: int = DEFAULT_PER_USER,
    command: list[str] | None = None,
) -> None:
    """Add the ``make-login`` managed service to a ``jupyterhub_config.py``'s ``c``.

    - the service, listening at ``url`` (reached by users at ``{hub}/services/make-login/``),
      started by the hub as ``python -m make_notebook_auth.hub``, with JupyterHub's OAuth and no
      confirmation page (it only asks "who is this browser's user");
    - the access scope ``access:services!service=make-login`` added to the ``user`` role (a
      browser may bring back its own user's reply) and to the ``server`` role (a single-user
      server's ``JUPYTERHUB_API_TOKEN`` may register its user's logins). The service itself
      needs no hub permissions: it asks the hub only who a token or browser belongs to.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
        raise ValueError(f"url must be http(s)://HOST:PORT where the service listens, not {url!r}")
    hub = c.JupyterHub
    service = {
        "name": SERVICE_NAME,
        "url": url,
        "command": command or [sys.executable, "-m", "make_notebook_auth.hub",
                               f"--lifetime={int(lifetime)}", f"--per-user={int(per_user)}"],
        "oauth_no_confirm": True,
        "display": False,
    }
    services = hub["services"] if "services" in hub else []
    if isinstance(services, list):
        hub.services = [s for s in services if s.get("name") != SERVICE_NAME] + [service]
    else:  # a LazyConfigValue (c.JupyterHub.services.append(...) elsewhere in the file)
        services.append(service)
    roles = hub["load_roles"] if "load_roles" in hub else []
    if isinstance(roles, list):
        roles = [dict(r) if isinstance(r, dict) else r for r in roles]
        _add_scope(roles, "user", ["self"], ACCESS_SCOPE)
        _add_scope(roles, "server", ["users:activity!user", "access:servers!server"],
                   ACCESS_SCOPE)
        hub.load_roles = roles
    else:
        raise ValueError("configure() must see c.JupyterHub.load_roles as a list: set it as a "
                         "list before calling configure()")


# -- the service (tornado + jupyterhub, imported here only) ---------------------------------------

def _log_request(handler: Any) -> None:
    """Tornado's access log without the query string (the callback's holds the code)."""
    request = handler.request
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(level, "%d %s %s %.1fms", status, request.method, request.path,
            1000.0 * request.request_time())


def make_app(store: PendingStore, prefix: str) -> Any:
    """The tornado application serving the service under ``prefix``."""
    from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import web

    # The instance the handlers' ``hub_auth`` default to, so the OAuth callback finds the state
    # (and PKCE verifier) that the login redirect stored.
    oauth = HubOAuth.instance(cache_max_age=60)

    class Quiet:
        def _request_summary(self: Any) -> str:
            # Tornado's error log line, without the query string (the callback's holds the code).
            return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    class Base(Quiet, web.RequestHandler):
        def set_default_headers(self) -> None:
            self.set_header("Cache-Control", "no-store")
            self.set_header("Referrer-Policy", "no-referrer")
            self.set_header("X-Content-Type-Options", "nosniff")

        def page(self, status: int, title: str, body: str) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(page(title, body))

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.page(status_code, "Error", f"HTTP {status_code}. {_AGAIN}")

    class Index(Base):
        def get(self) -> None:
            self.page(200, "Make login for JupyterHub",
                      "This service brings Make's sign-in replies back to your notebook. "
                      "Nothing to do here: run %make_login in a notebook.")

    class Callback(HubOAuthenticated, Base):
        hub_auth = oauth  # type: ignore[assignment]

        @web.authenticated
        def get(self) -> None:
            user = self.current_user["name"]
            try:
                store.deliver(user, self.request.query)
            except Refused as exc:
                self.page(exc.status, exc.title, exc.message)
                return
            self.page(200, "Handed to your notebook",
                      "Your notebook completes the login by itself. You can close this tab.")

    class Api(Base):
        async def prepare(self) -> None:
            token = oauth.get_token(self, in_cookie=False)  # tokens only: no CSRF surface
            model = await oauth.user_for_token(token, sync=False) if token else None
            if (not model or model.get("kind") != "user"
                    or not oauth.check_scopes(oauth.access_scopes, model)):
                self.json(403, {"message": "a hub user's token with "
                                           f"{ACCESS_SCOPE} is required"})
                return
            self.user = model["name"]

        def json(self, status: int, body: dict[str, Any]) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.json(status_code, {"message": f"HTTP {status_code}"})

    class PendingApi(Api):
        def post(self) -> None:
            if len(self.request.body) > MAX_BODY:
                self.json(413, {"message": "body too large"})
                return
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                self.json(400, {"message": "a JSON object is required"})
                return
            lifetime = body.get("lifetime")
            if lifetime is not None and (isinstance(lifetime, bool)
                                         or not isinstance(lifetime, (int, float))):
                self.json(400, {"message": "lifetime must be a number of seconds"})
                return
            try:
                granted = store.register(self.user, body.get("state"), lifetime)
            except Refused as exc:
                self.json(exc.status, {"message": exc.message})
                return
            self.json(201, {"lifetime": granted})

        def delete(self) -> None:
            store.forget(self.user, self.get_argument("state", ""))
            self.set_status(204)
            self.finish()

    class ReplyApi(Api):
        async def get(self) -> None:
            try:
                wait = float(self.get_argument("wait", "0"))
            except ValueError:
                wait = 0.0
            wait = min(max(wait, 0.0), MAX_WAIT)
            try:
                reply = await store.take(self.user, self.get_argument("state", ""), wait)
            except Refused as exc:
                self.json(exc.status, {"message": exc.message})
                return
            if reply is None:
                self.set_status(204)
                self.finish()
                return
            self.json(200, {"reply": reply})

    class OAuthCallback(Quiet, HubOAuthCallbackHandler):
        hub_auth = oauth  # type: ignore[assignment]

    return web.Application(
        [
            (prefix, Index),
            (url_path_join(prefix, "callback"), Callback),
            (url_path_join(prefix, "api/pending"), PendingApi),
            (url_path_join(prefix, "api/reply"), ReplyApi),
            (url_path_join(prefix, "oauth_callback"), OAuthCallback),
        ],
        cookie_secret=os.urandom(32),
        log_function=_log_request,
        hub_auth=oauth,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m make_notebook_auth.hub",
        description="JupyterHub service make-login: routes Make's sign-in replies to the "
                    "kernel that asked (started by the hub; see configure()).",
    )
    parser.add_argument("--lifetime", type=int, default=DEFAULT_LIFETIME,
                        help="seconds a login waits for its reply (default %(default)s)")
    parser.add_argument("--per-user", type=int, default=DEFAULT_PER_USER,
                        help="pending logins per hub user (default %(default)s)")
    parser.add_argument("--max-pending", type=int, default=DEFAULT_MAX_PENDING,
                        help="pending logins in all (default %(default)s)")
    args = parser.parse_args(argv)
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if not service_url or not os.environ.get("JUPYTERHUB_API_TOKEN"):
        parser.error("run by JupyterHub as a managed service (JUPYTERHUB_SERVICE_URL and "
                     "JUPYTERHUB_API_TOKEN are not set); see configure()")
    logging.basicConfig(level=logging.INFO,
                        format="[%(levelname).1s %(asctime)s make-login] %(message)s")
    from tornado.ioloop import IOLoop

    parts = urlsplit(service_url)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    # --lifetime is also the most a kernel may ask for (kernels ask for their listen timeout).
    store = PendingStore(lifetime=args.lifetime, max_lifetime=args.lifetime,
                         per_user=args.per_user, max_pending=args.max_pending)
    app = make_app(store, prefix)
    app.listen(parts.port or 80, address=parts.hostname or "127.0.0.1",
               max_body_size=64 * 1024, max_buffer_size=64 * 1024)
    log.info("listening on %s (prefix %s)", service_url, prefix)

    async def purge() -> None:
        while True:
            await asyncio.sleep(30)
            store.purge()

    loop = IOLoop.current()
    loop.spawn_callback(purge)
    loop.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
