"""`python -m compiler screenshot report.html out.png`: a PNG of a page's first screen, taken
by headless Chromium (the system's `chromium`, `chromium-browser` or `google-chrome`), for the
docs and for tests that check what a reader sees."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """Path of a Chromium-family browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(
    page: str, png: str, width: int = 1400, height: int = 900, view: str = "", wait_ms: int = 2000
) -> str:
    """Render `page` (an HTML file) in a `width` x `height` window and write its first screen
    to `png` (atomically); return `png`. `view` is the address's fragment, which a compiler
    report reads as the view to open: "all", "find=features.4", "open=12", "at=12", joined
    by "&". Raises RuntimeError without a browser."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError(
            "screenshot: no Chromium found (looked for " + ", ".join(BROWSERS) + "). Fix: "
            "install one, e.g. apt-get install chromium"
        )
    url = "file://" + os.path.abspath(page) + (f"#{view}" if view else "")
    directory = os.path.dirname(os.path.abspath(png))
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        tmp = os.path.join(profile, "shot.png")
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",  # root in containers; the page is our own file
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={tmp}",
            url,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if not os.path.exists(tmp):
            raise RuntimeError(f"screenshot: {browser} wrote no image: {done.stderr[-500:]}")
        shutil.move(tmp, png + ".tmp")
    os.replace(png + ".tmp", png)
    return png
