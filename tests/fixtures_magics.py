"""Fixtures for the %make_* magics: an in-process IPython shell with the extension loaded, and
a :class:`Recorder` that stands in for the front end (what was said, shown, and typed)."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from make_notebook_auth.magics import Context, MakeMagics


class Recorder:
    def __init__(self):
        self.lines: list[str] = []
        self.shown: list = []
        self.replies: list = []

    def say(self, text):
        self.lines.append(text)

    def input(self, prompt):
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply() if callable(reply) else reply

    @property
    def text(self):
        return "\n".join(self.lines)


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "make_notebook_auth")
    yield ip
    ip.run_line_magic("unload_ext", "make_notebook_auth")


@pytest.fixture
def rec(shell):
    """The loaded magics' context, showing panels into a list instead of a front end."""
    magics = shell.magics_manager.registry["MakeMagics"]
    assert isinstance(magics, MakeMagics)
    recorder = Recorder()
    magics.context = Context(shell, widgets=True, out=recorder.say,
                             display=recorder.shown.append, input_func=recorder.input)
    yield recorder
    magics.context.close()
