"""Small synthetic studies shared by the synth tests (generated once per test session).

Import the fixtures into a test module (``from tests.synth_fixtures import small_mr, small_ct``);
the studies are cached per session in a module-level dict, so several modules share them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from radpipe.synth import StudyTruth, generate_study

MR_ARGS = {"kind": "mr-glioma", "seed": 1, "vendor": "ge"}
CT_ARGS = {"kind": "ct-hemorrhage", "seed": 0, "vendor": "ge"}  # = case 0 of a hemorrhage corpus
_CACHE: dict[tuple[str, int, str], tuple[Path, StudyTruth]] = {}


def small_study(
    root: pytest.TempPathFactory, kind: str, seed: int, vendor: str
) -> tuple[Path, StudyTruth]:
    """Generate (once per session) a small study and return its directory and truth."""
    key = (kind, seed, vendor)
    if key not in _CACHE:
        out = root.mktemp(f"synth-{kind}-{seed}-{vendor}")
        truth = generate_study(kind, out, seed=seed, vendor=vendor, small=True)
        _CACHE[key] = (out, truth)
    return _CACHE[key]


@pytest.fixture(scope="session")
def small_mr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudyTruth]:
    """A small GE MR glioma study (seed 1)."""
    return small_study(tmp_path_factory, **MR_ARGS)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def small_ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudyTruth]:
    """A small GE CT hemorrhage study (seed 0)."""
    return small_study(tmp_path_factory, **CT_ARGS)  # type: ignore[arg-type]
