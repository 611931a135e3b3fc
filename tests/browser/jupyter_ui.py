"""Driving JupyterLab 4 and Notebook 7 with Playwright: open a notebook, wait for the kernel,
Run All, re-run a cell, read outputs, save. Both front ends share JupyterLab's DOM classes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from playwright.sync_api import Page, expect

KERNEL_TIMEOUT = 90_000  # ms


@dataclass(frozen=True)
class Frontend:
    name: str  # "lab" or "notebook"

    def notebook_url(self, server, path: str) -> str:
        if self.name == "lab":
            return f"{server.url}lab/tree/{path}?reset&token={server.token}"
        return f"{server.url}notebooks/{path}?token={server.token}"

    def __str__(self) -> str:
        return self.name


LAB = Frontend("lab")
NOTEBOOK = Frontend("notebook")
FRONTENDS = [LAB, NOTEBOOK]


def open_notebook(page: Page, server, frontend: Frontend, path: str) -> None:
    """Open ``path`` and wait until its kernel is attached and idle."""
    page.goto(frontend.notebook_url(server, path))
    wait_kernel(page)


def wait_kernel(page: Page) -> None:
    """Wait until the open notebook's kernel is attached and idle."""
    expect(page.locator(".jp-Notebook").first).to_be_visible(timeout=KERNEL_TIMEOUT)
    kernel_name = page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName").first
    # The execution indicator says idle before any kernel exists: first the kernel's name...
    expect(kernel_name).not_to_have_text(re.compile(r"^\s*$|No Kernel|Kernel$"),
                                          timeout=KERNEL_TIMEOUT)
    expect(kernel_name).to_contain_text("Python", timeout=KERNEL_TIMEOUT)
    # ... then idle.
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
           ).to_be_attached(timeout=KERNEL_TIMEOUT)


def run_all(page: Page) -> None:
    """Run > Run All Cells (the ``runmenu:run-all`` command)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
    page.locator("li[data-command='runmenu:run-all']").first.click()


def cell(page: Page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cell(page: Page, index: int) -> None:
    """Select cell ``index`` and run it in place (Ctrl+Enter)."""
    target = cell(page, index)
    target.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def wait_idle(page: Page, timeout: float = KERNEL_TIMEOUT) -> None:
    page.wait_for_timeout(300)  # let the indicator leave "idle" first (and keep routes served)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
           ).to_be_attached(timeout=timeout)


def output_text(page: Page, index: int) -> str:
    return cell(page, index).locator(".jp-OutputArea").inner_text()


def save(page: Page) -> None:
    """The notebook toolbar's Save button (``docmanager:save``)."""
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").first.click()
