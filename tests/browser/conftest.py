"""Browser fixtures: one Debian Chromium per test module (Playwright, no browser
download) and a fresh tab per test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api

from tests.browser.helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    """One Chromium per module, with a fresh profile directory."""
    assert Path(CHROMIUM).exists(), "install Debian's chromium (scripts/debian-packages.txt)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="radpipe-chromium-")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A fresh tab with no session."""
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    yield tab
    tab.close()
