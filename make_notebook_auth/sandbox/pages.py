"""HTML of the sandbox's sign-in page and error page: plain forms, no JavaScript, every value
HTML-escaped. Form actions are relative so the page also works behind a path-prefixing proxy
(``jupyter-server-proxy``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from .data import DemoUser

#: Friendly descriptions for Make's scopes; the scope names themselves are always shown too.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "openid": "Confirm who you are (OpenID Connect)",
    "user:read": "Read your user profile",
    "organizations:read": "Read your organizations",
    "teams:read": "Read your teams",
    "scenarios:read": "Read scenarios",
    "scenarios:write": "Create and change scenarios",
    "scenarios:run": "Run scenarios",
    "connections:read": "Read connections",
    "datastores:read": "Read data stores",
    "hooks:read": "Read webhooks and mailhooks",
    "dlqs:read": "Read incomplete executions",
    "templates:read": "Read templates",
}

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1f;line-height:1.45}
.banner{background:#fff4d6;border:1px solid #e2b33c;padding:.5rem .75rem;border-radius:6px}
code{background:#f1f1f4;padding:0 .25rem;border-radius:3px}
fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0}
button{font-size:1rem;padding:.45rem 1.2rem;margin-right:.5rem;border-radius:6px;cursor:pointer}
button.approve{background:#6d00cc;color:#fff;border:1px solid #6d00cc}
button.deny{background:#fff;border:1px solid #888}
.small{font-size:.85rem;color:#555}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def consent_page(*, client_name: str, client_id: str, redirect_uri: str, scopes: Iterable[str],
                 users: Iterable[DemoUser], hidden: Mapping[str, str],
                 action: str = "authorize", api_token: str | None = None) -> str:
    """The sign-in page: pick a demo user, then approve or deny the listed scopes."""
    scope_items = "".join(
        f"<li><code class=\"scope\">{escape(s)}</code>"
        + (f" &mdash; {escape(SCOPE_DESCRIPTIONS[s])}" if s in SCOPE_DESCRIPTIONS else "")
        + "</li>"
        for s in scopes
    ) or "<li><em>No scopes requested.</em></li>"
    user_items = "".join(
        f"<label><input type=\"radio\" name=\"user\" value=\"{escape(u.key)}\""
        f"{' checked' if n == 0 else ''}> {escape(u.name)} "
        f"<span class=\"small\">&lt;{escape(u.email)}&gt;</span></label><br>"
        for n, u in enumerate(users)
    )
    hidden_inputs = "".join(
        f"<input type=\"hidden\" name=\"{escape(k)}\" value=\"{escape(v)}\">"
        for k, v in hidden.items()
    )
    body = (
        "<p class=\"banner\"><strong>Make sandbox</strong> &mdash; a local stand-in for Make, "
        "for trying things out. Nothing here is a real Make account.</p>"
        "<h1>Sign in to the Make sandbox</h1>"
        f"<p><strong>{escape(client_name)}</strong> "
        f"(<code>{escape(client_id)}</code>) asks for access to:</p>"
        f"<ul class=\"scopes\">{scope_items}</ul>"
        f"<form method=\"post\" action=\"{escape(action)}\">"
        f"{hidden_inputs}"
        f"<fieldset><legend>Sign in as</legend>{user_items}</fieldset>"
        "<button class=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">"
        "Approve</button>"
        "<button class=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>"
        "</form>"
        f"<p class=\"small\">Afterwards your browser goes to <code>{escape(redirect_uri)}</code>. "
        "If nothing is listening there, the browser shows an error: copy the whole address "
        "from its address bar and paste it back into your notebook.</p>"
    )
    if api_token:
        body += (
            "<h2>No OAuth client? An API token</h2>"
            "<p class=\"small\">Like a token made in Make's profile (API access): alice's, "
            "read-only scopes. Set it as <code>MAKE_API_TOKEN</code> in the kernel's "
            "environment (never in the notebook), with <code>MAKE_API_URL</code>:</p>"
            f"<p><code class=\"api-token\">{escape(api_token)}</code></p>"
        )
    return _page("Make sandbox: sign in", body)


def error_page(title: str, detail: str) -> str:
    """Shown when the request cannot be sent back to the client (unknown client or
    redirect URI), so the browser stays here."""
    body = (
        "<p class=\"banner\"><strong>Make sandbox</strong></p>"
        f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>"
    )
    return _page(f"Make sandbox: {title}", body)
