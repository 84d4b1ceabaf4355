"""Shared test set-up: loads every fixture module in tests/fixtures/ and gives each test
its own configuration and artifact directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from radpipe.config import Settings

# Fixture modules import each other; register them all before any is imported.
pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if path.stem != "__init__"
)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded-default settings rooted in the test's own temporary directory."""
    for name in list(__import__("os").environ):
        if name.startswith("RADPIPE_") and name != "RADPIPE_TOOLS_DIR":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return Settings(data_dir=tmp_path / "data")
