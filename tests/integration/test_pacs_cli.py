"""`radpipe pacs …` against a real Orthanc: clear output, clear errors, no tracebacks."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from radpipe.cli import cli
from tests.fixtures.dicom_studies import make_study
from tests.fixtures.pacs import OrthancServer

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, orthanc: OrthancServer) -> Path:
    nodes = {
        "orthanc": json.loads(orthanc.dimse_node().model_dump_json()),
        "orthanc-web": json.loads(orthanc.dicomweb_node().model_dump_json()),
        "down": {"ae_title": "DOWN", "host": "127.0.0.1", "port": 9, "timeout_seconds": 2},
    }
    path = tmp_path / "radpipe.yaml"
    path.write_text(
        yaml.safe_dump(
            {"data_dir": str(tmp_path / "data"), "pacs": nodes, "default_pacs": "orthanc"}
        )
    )
    return path


def _run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), "pacs", *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output


def test_pacs_commands(orthanc: OrthancServer, tmp_path: Path) -> None:
    config = _config(tmp_path, orthanc)
    accession = "C" + uuid.uuid4().hex[:8].upper()
    study = make_study(tmp_path / "s", accession=accession, series=(("T1", 2), ("T2", 1)))

    code, out = _run(config, "nodes")
    assert code == 0 and "orthanc-web" in out and "dicomweb" in out

    for node in ("orthanc", "orthanc-web"):
        code, out = _run(config, "echo", node)
        assert code == 0 and f"{node} (" in out and "ok" in out

    code, out = _run(config, "store", "--node", "orthanc", str(tmp_path / "s"))
    assert code == 0 and "sent 3 of 3" in out

    code, out = _run(config, "find", "--accession", accession, "--series", "--json")
    assert code == 0
    [found] = json.loads(out)
    assert found["study_instance_uid"] == study.study_uid
    assert [s["num_instances"] for s in found["series"]] == [2, 1]

    code, out = _run(config, "find", "--accession", accession, "--node", "orthanc-web")
    assert code == 0 and "1 study found on orthanc-web" in out

    code, out = _run(config, "get", "--accession", accession, "--out", str(tmp_path / "got"))
    assert code == 0 and "3 instances, 2 series" in out
    manifest = json.loads((tmp_path / "got" / "manifest.json").read_text())
    assert manifest["instance_count"] == 3
    assert len(list((tmp_path / "got" / "instances").rglob("*.dcm"))) == 3


def test_pacs_command_errors(orthanc: OrthancServer, tmp_path: Path) -> None:
    config = _config(tmp_path, orthanc)
    code, out = _run(config, "echo", "nowhere")
    assert code == 1 and "no PACS node named 'nowhere'" in out and "orthanc-web" in out

    code, out = _run(config, "echo", "down")
    assert code == 1 and "cannot open an association to PACS down" in out
    assert "radpipe pacs echo down" in out

    code, out = _run(config, "find", "--accession", "NO-SUCH-ONE")
    assert code == 1 and "no matching study" in out

    code, out = _run(config, "find")
    assert code == 2 and "give --accession or --study-uid" in out

    code, out = _run(config, "get", "--accession", "NO-SUCH-ONE", "--out", str(tmp_path / "x"))
    assert code == 1 and "no study with the job's accession number" in out
