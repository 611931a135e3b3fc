"""Is anyone there to click? Detecting runs where no one can complete a browser login.

A notebook executed by papermill, nbclient, ``jupyter execute`` or ``jupyter nbconvert
--execute`` runs in a real kernel, but the client that sends its cells accepts no input:
nbclient sends every ``execute_request`` with ``allow_stdin`` false (JupyterLab, Notebook,
VS Code and Colab send true, since they can answer ``input()``). That flag, read from the
kernel's current request, is what this module looks at. Outside a kernel (terminal IPython, an
IPython script) nothing is guessed: the text login there already returns at once when there is
no standard input; set the variable below for scripts run by a scheduler.

``MAKE_NOTEBOOK_AUTH_HEADLESS`` overrides the guess: ``1`` (a scheduler that wants to be sure)
or ``0`` (a test harness or a tool that completes the login from outside the notebook).

No imports beyond the standard library; the IPython shell is passed in.
"""

from __future__ import annotations

import os
from typing import Any

HEADLESS_ENV = "MAKE_NOTEBOOK_AUTH_HEADLESS"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def headless_reason(shell: Any = None) -> str | None:
    """Why nobody can complete a browser login here (a short phrase), or None if someone can."""
    override = os.environ.get(HEADLESS_ENV, "").strip().lower()
    if override in _TRUE:
        return f"{HEADLESS_ENV} is set"
    if override in _FALSE:
        return None
    kernel = getattr(shell, "kernel", None) if shell is not None else None
    if kernel is not None and _allow_stdin(kernel) is False:
        return ("this notebook is being run without a front end (papermill, nbclient, "
                "jupyter execute or nbconvert --execute)")
    return None


def _allow_stdin(kernel: Any) -> bool | None:
    """The ``allow_stdin`` of the kernel's current execute request (None when unknown)."""
    try:
        parent = kernel.get_parent("shell")
    except TypeError:  # ipykernel < 6.21: no channel argument
        parent = kernel.get_parent()
    except Exception:  # noqa: BLE001 - an odd kernel only means "unknown"
        parent = None
    content = parent.get("content") if isinstance(parent, dict) else None
    if isinstance(content, dict) and isinstance(content.get("allow_stdin"), bool):
        return bool(content["allow_stdin"])
    value = getattr(kernel, "_allow_stdin", None)
    return value if isinstance(value, bool) else None


def how_to_run_unattended(reason: str) -> str:
    return (
        f"No one can complete a browser login here ({reason}). To run this notebook unattended, "
        "either set MAKE_API_TOKEN (a Make API token from your Make profile, API access) and "
        "MAKE_ZONE or MAKE_API_URL in the environment it runs with, or log in once "
        "interactively with `%make_login --remember` using a confidential client "
        "(MAKE_CLIENT_SECRET), whose refresh token lets later runs restore the login. See "
        "'Running notebooks unattended' in the README."
    )
