"""End to end on generated DICOM: ``radpipe classify`` on synthetic studies (radpipe.synth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from radpipe.cli import cli
from radpipe.config import Settings
from radpipe.synth import generate_study


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("synth")
    truths = {}
    for kind, seed, vendor in (("mr-glioma", 5, "philips"), ("ct-hemorrhage", 6, "siemens")):
        truth = generate_study(kind, root / kind, seed=seed, vendor=vendor, small=True)
        truths[truth.study_instance_uid] = truth
    return root, truths


def test_classify_a_directory_of_generated_studies(
    settings: Settings, studies: tuple[Path, dict[str, Any]]
) -> None:
    root, truths = studies
    result = CliRunner().invoke(cli, ["classify", str(root), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    documents = json.loads(result.output)
    assert isinstance(documents, list)
    assert {d["studyInstanceUID"] for d in documents} == set(truths)
    for document in documents:
        truth = truths[document["studyInstanceUID"]]
        classes = {s.series_instance_uid: s.series_class for s in truth.series}
        assert len(document["series"]) == len(truth.series)
        correct = sum(classes[s["seriesInstanceUID"]] == s["class"] for s in document["series"])
        assert correct >= len(truth.series) - 1, document["series"]
        assert document["ok"], document.get("error")
        for role, uid in document["roles"].items():
            assert classes[uid] == role
    apps = {d["app"] for d in documents}
    assert apps == {"glioma", "hemorrhage"}


def test_classify_table_for_one_generated_study(
    settings: Settings, studies: tuple[Path, dict[str, Any]]
) -> None:
    root, _ = studies
    result = CliRunner().invoke(
        cli, ["classify", str(root / "mr-glioma"), "--app", "metastasis"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "app metastasis" in result.output
    assert "✓ t1c:" in result.output
