"""What the browser tests share besides fixtures: Chromium's settings, screenshots,
signing in through the form, and the checks that a page follows live updates in place."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.fixtures.web import PASSWORDS, LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"

#: Set in the page's window; still there later means the document was never reloaded.
MARK_JS = "() => { window.__radpipeSameDocument = 'yes'; }"
SAME_JS = "() => window.__radpipeSameDocument === 'yes'"


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def follows_events(page: Any) -> None:
    """The page's live updates are on the server-sent event stream (not the polling)."""
    page.locator('main[data-live="sse"]').wait_for(timeout=10_000)


def sign_in(page: Any, live: LiveServer, name: str, path: str = "/") -> None:
    """Sign in through the login form, starting from ``path``."""
    page.goto(live.url + path)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
