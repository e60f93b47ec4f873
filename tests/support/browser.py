"""A real headless browser for tests: Debian's chromium, installed on first use.

The report must open offline in a browser, so the tests load it in one rather
than trusting the HTML text; `--dump-dom` hands back the page after its
scripts ran. The dashboard's tests drive the same chromium with Playwright
(`playwright_browser`), which hovers, clicks and waits for a live page.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--virtual-time-budget=5000",
]


def chromium() -> Path:
    """The chromium binary, installed with apt-get when it is missing (we run as root)."""
    found = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.is_file() else None)
    if found:
        return Path(found)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                   check=True, env=env, capture_output=True)
    return CHROMIUM


def _run(page: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="populace-chromium-") as profile:
        return subprocess.run(
            [str(chromium()), *FLAGS, f"--user-data-dir={profile}", *extra,
             page.resolve().as_uri()],
            check=True, capture_output=True, text=True, timeout=timeout,
        )


def dump_dom(page: Path) -> str:
    """The DOM of `page` after it loaded and its scripts ran."""
    return _run(page, "--dump-dom").stdout


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1200, 2400)) -> Path:
    """A PNG of `page` as the browser drew it."""
    _run(page, f"--screenshot={out.resolve()}", f"--window-size={size[0]},{size[1]}")
    return out


@contextlib.contextmanager
def playwright_browser() -> Iterator[Any]:
    """A Playwright browser driving Debian's chromium (never a browser build of
    Playwright's own, which would have to be downloaded)."""
    from playwright.sync_api import sync_playwright

    binary = chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(binary), args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update"])
        try:
            yield browser
        finally:
            browser.close()
