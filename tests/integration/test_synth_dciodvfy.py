"""Every file of a synthetic MR and CT study passes dciodvfy (Debian dicom3tools) without errors."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from radpipe.synth import StudyTruth
from tests.synth_fixtures import small_ct, small_mr  # noqa: F401  (session fixtures)


def _errors(path: Path) -> list[str]:
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr
    return [
        f"{path.parent.name}/{path.name}: {line}"
        for line in text.splitlines()
        if line.startswith("Error")
    ]


@pytest.mark.parametrize("which", ["small_mr", "small_ct"])
def test_every_file_passes_dciodvfy(which: str, request: pytest.FixtureRequest) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.fail("dciodvfy not found: install the Debian package dicom3tools")
    out, truth = request.getfixturevalue(which)
    assert isinstance(truth, StudyTruth)
    files = sorted((out / "dicom").rglob("*.dcm"))
    assert len(files) == sum(s.n_instances for s in truth.series)
    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = [e for errs in pool.map(_errors, files) for e in errs]
    assert not errors, "\n".join(errors[:20])
