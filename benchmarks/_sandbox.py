"""A logged-in session for the benchmarks against an in-process sandbox (dave's 40- and
68-team organizations), with the sandbox's sign-in page filled in as the tests do."""

from __future__ import annotations

import sys

from _common import ROOT

sys.path.insert(0, str(ROOT / "tests"))

from fixtures_sandbox import make_authorize  # noqa: E402

from make_notebook_auth import MakeAuth, MakeSession  # noqa: E402
from make_notebook_auth.sandbox import Sandbox  # noqa: E402

MASSIVE = 10  # Massive Dynamic: Enterprise (apiLimit 1,000), 40 teams, zone 1
TINY = 11  # Tiny Core Co: Core (apiLimit 60), 68 teams, zone 2


def login(sb: Sandbox, user: str = "dave", profile: str = "bench") -> MakeSession:
    auth = MakeAuth(sb.client_id, issuer=sb.issuer, redirect_uri=sb.redirect_uri,
                    api_url=sb.api_url, profile=profile)
    return auth.finish(make_authorize(sb.issuer)(auth.start().url, user=user))
