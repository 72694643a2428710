"""Headless Debian chromium for the web page tests, driven by Playwright for Python.

Playwright's own browser download is never used (no internet in CI): it launches the
system ``/usr/bin/chromium``, which ``make install`` puts there with apt. Every request
the page makes to anything but the loopback test server is refused and recorded, so a
test can prove the page fetches nothing from the internet.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("MMRAG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Screenshots land here (gitignored); CI uploads the folder as an artifact.
ARTIFACTS = Path(os.environ.get("MMRAG_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[1] / "artifacts") / "web"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) \
            and not shutil.which(CHROMIUM):
        return f"{CHROMIUM} not found: install Debian's chromium (make install does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@dataclass
class PageWatch:
    """What a page did that a test should fail on: console errors, uncaught exceptions,
    requests that left the machine."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    allow_console: str | None = None  # a regex for console errors the test provokes

    def assert_clean(self) -> None:
        assert not self.external, f"the page tried to reach the internet: {self.external}"
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"
        errors = [m for m in self.console_errors
                  if not (self.allow_console and re.search(self.allow_console, m))]
        assert not errors, f"console errors: {errors}"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def open_page(browser, *, width: int = 1280, height: int = 900):
    """A fresh context (empty localStorage) and page, watched by a :class:`PageWatch`."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(30_000)
    watch = PageWatch()

    def gate(route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("http://", "https://", "ws://", "wss://")) and host not in LOOPBACK:
            watch.external.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", gate)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and watch.console_errors.append(m.text))
    page.on("pageerror", lambda e: watch.page_errors.append(str(e)))
    return context, page, watch


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
