"""Open a page in real headless Chromium and record what a person would see.

Chromium is the first of: ``$SIGNALML_CHROMIUM``, a ``chromium`` (or
``chromium-browser``) on PATH, the build that ``playwright install chromium``
downloaded (``scripts/setup.sh`` runs it, no root needed). It is driven through
Playwright's Python package with ``executable_path``. With none of them the
calling test is skipped, and the skip names what to do.

``load_page(url, screenshot=path)`` returns a :class:`PageLoad`: the text of
the headings, the tables' sizes, every ``<img>`` with its natural width (0
when the image did not load), console errors, uncaught page errors and failed
requests (network failures and HTTP status >= 400), and the screenshot path.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SETUP_HINT = "run `.venv/bin/python -m playwright install chromium`, or set SIGNALML_CHROMIUM to a Chromium binary"
PAGE_TIMEOUT_S = 30.0


@dataclass
class Image:
    src: str
    natural_width: int
    natural_height: int


@dataclass
class PageLoad:
    title: str
    headings: list[str]
    table_rows: list[int]  # rows (header row included) of each <table>, in page order
    images: list[Image]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[str]:
        return [image.src for image in self.images if image.natural_width == 0]


def find_chromium() -> str | None:
    """The Chromium binary to drive, or None when this machine has none.
    Raises ``FileNotFoundError`` when ``$SIGNALML_CHROMIUM`` names no
    executable: a setting that is wrong is an error, not a reason to skip."""
    wanted = os.environ.get("SIGNALML_CHROMIUM")
    if wanted:
        if os.path.isfile(wanted) and os.access(wanted, os.X_OK):
            return wanted
        raise FileNotFoundError(f"SIGNALML_CHROMIUM={wanted} is not an executable file")
    on_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if on_path:
        return on_path
    return _playwright_chromium()


def _playwright_chromium() -> str | None:
    """The build ``playwright install chromium`` put in its cache, if any."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def chromium_path() -> str:
    """The Chromium binary (see :func:`find_chromium`); skips the calling test,
    with the reason, when there is none, and fails it when the setting is wrong."""
    try:
        found = find_chromium()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}: {SETUP_HINT}", pytrace=False)
    if found is None:
        pytest.skip(f"no headless Chromium on this machine: {SETUP_HINT}")
    return found


def load_page(url: str, *, screenshot: Path | None = None, viewport_width: int = 1280) -> PageLoad:
    """Load ``url`` (``file://`` or ``http://``), wait for the network to go
    idle, and collect what rendered; with ``screenshot``, save a full-page PNG."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright package is missing from this environment: {SETUP_HINT}", pytrace=False)

    executable = chromium_path()
    console_errors: list[str] = []
    page_errors: list[str] = []
    failed_requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": viewport_width, "height": 900})
            page.set_default_timeout(PAGE_TIMEOUT_S * 1000)
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("requestfailed", lambda r: failed_requests.append(f"{r.url} ({r.failure})"))
            page.on("response", lambda r: failed_requests.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)
            page.goto(url, wait_until="networkidle")
            seen = page.evaluate(
                """() => ({
                    title: document.title,
                    headings: [...document.querySelectorAll('h1, h2, h3')].map(h => h.textContent.trim()),
                    tableRows: [...document.querySelectorAll('table')].map(t => t.rows.length),
                    images: [...document.images].map(i => ({
                        src: i.getAttribute('src'), width: i.complete ? i.naturalWidth : 0, height: i.naturalHeight,
                    })),
                })"""
            )
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return PageLoad(
        title=seen["title"],
        headings=seen["headings"],
        table_rows=seen["tableRows"],
        images=[Image(i["src"], i["width"], i["height"]) for i in seen["images"]],
        console_errors=console_errors,
        page_errors=page_errors,
        failed_requests=failed_requests,
        screenshot=screenshot,
    )


if __name__ == "__main__":
    # `python -m tests.browser`: print the Chromium the tests would drive; exit 1 when none.
    import sys

    try:
        found = find_chromium()
    except FileNotFoundError as exc:
        sys.exit(f"error: {exc}")
    if found is None:
        sys.exit(1)
    print(found)
