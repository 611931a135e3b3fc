"""``Secret``: a credential that works as the string it is but never shows in a repr.

Tokens, authorization codes, code verifiers and client secrets are kept as ``Secret`` from the
moment the package receives them. A ``Secret`` is a ``str``: it is sent, encoded, hashed,
compared and saved as itself (``requests`` form bodies, headers, ``json.dumps``). Only its
``repr`` is masked, which is what ``traceback.TracebackException(..., capture_locals=True)``,
IPython's ``%xmode Verbose``, debuggers and error reporters show of a frame's locals (and of
dicts, lists and tuples holding it).

Formatting (``str()``, f-strings) keeps the real value on purpose: code that builds a header
from ``session.token["access_token"]`` must keep working. Messages never format a credential.
"""

from __future__ import annotations

from typing import Any

MASK = "'***'"


class Secret(str):
    """A ``str`` whose ``repr`` is ``'***'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return MASK

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (str(self),))


def secret(value: Any) -> Any:
    """``value`` as a ``Secret`` when it is a string; anything else unchanged."""
    if isinstance(value, str) and not isinstance(value, Secret):
        return Secret(value)
    return value


__all__ = ["Secret", "secret"]
