"""PHI stays where it belongs: a study with a distinctive patient name, MRN and birth date
is fetched from a real Orthanc and classified by the local runner with every log at DEBUG;
the PHI appears in no log line, no metric (name, label or value), no job status or stage
message — and it is still in the DICOM outputs, where it belongs by design."""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest
from prometheus_client import REGISTRY, generate_latest

from radpipe.api.models import JobSpec
from radpipe.config import Settings
from radpipe.local.runner import LocalRunner
from radpipe.logs import setup_logging
from tests.data.make_bad_corpus import FLAIR, T1, T1C, T2, base_study
from tests.fixtures.pacs import OrthancServer

pytestmark = [pytest.mark.integration]

NAME, MRN, BIRTH = "Quixotewright^Zebulonia", "MRN-7H3X-99412", "19230417"
ACCESSION = "PHI-ACC-7731"
APP = """
apiVersion: radpipe.io/v1alpha1
kind: AnalysisApp
metadata: {name: phicheck}
spec:
  title: PHI check (fetch and classify)
  modality: MR
  series: {required: [t1, t1c, t2, flair], minProbability: 0.8}
  stages: [{name: fetch}, {name: classify}]
"""


class Everything(logging.Handler):
    """Keeps every formatted record (message, args, extra fields)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.__dict__!r}")


def _phi_study(out: Path) -> list[Path]:
    files = []
    for series in (T1, T1C, T2, FLAIR):
        for path in sorted((base_study() / series).glob("*.dcm")):
            ds = pydicom.dcmread(path)
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, MRN, BIRTH
            ds.AccessionNumber = ACCESSION
            for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                setattr(ds, key, pydicom.uid.generate_uid(entropy_srcs=["phi", str(ds[key].value)]))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            dest = out / series / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(dest, enforce_file_format=True)
            files.append(dest)
    return files


def test_phi_appears_in_no_log_metric_or_status(
    settings: Settings, orthanc: OrthancServer, tmp_path: Path
) -> None:
    orthanc.upload(_phi_study(tmp_path / "study"))
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "phicheck.yaml").write_text(APP)
    settings.apps_dir = tmp_path / "apps"
    settings.pacs = {"orthanc": orthanc.dimse_node()}
    setup_logging("DEBUG")
    handler = Everything()
    for name in ("", "radpipe", "pynetdicom", "pydicom", "urllib3"):
        logging.getLogger(name).addHandler(handler)
    old_levels = {n: logging.getLogger(n).level for n in ("", "pynetdicom")}
    logging.getLogger("").setLevel(logging.DEBUG)
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG)  # radpipe silences it; not here
    try:
        runner = LocalRunner(settings)
        job = runner.submit(JobSpec(accession=ACCESSION, app="phicheck"))
        job = runner.run(job.uid)
    finally:
        for name in ("", "radpipe", "pynetdicom", "pydicom", "urllib3"):
            logging.getLogger(name).removeHandler(handler)
        for name, level in old_levels.items():
            logging.getLogger(name).setLevel(level)
    assert job.status.phase.value == "Succeeded", job.status.message
    assert any(line.startswith("pynetdicom") for line in handler.lines)  # it all logged
    assert sum(line.startswith("radpipe") for line in handler.lines) >= 2
    forms = [NAME, NAME.replace("^", " "), "Quixotewright", "Zebulonia", MRN, BIRTH, "1923-04-17"]
    logged = "\n".join(handler.lines)
    metrics = generate_latest(REGISTRY).decode()
    status = job.model_dump_json(by_alias=True)
    record = runner.store.get_bytes(f"jobs/{job.uid}/job.json").decode()
    results = "".join(
        runner.store.get_bytes(f"jobs/{job.uid}/{s}/result.json").decode()
        for s in ("fetch", "classify")
    )
    for form in forms:
        assert form not in logged, f"{form!r} in a log line"
        assert form not in metrics, f"{form!r} in a metric"
        assert form not in status and form not in record, f"{form!r} in the job status"
        assert form not in results, f"{form!r} in a stage result"
    assert ACCESSION not in logged  # only its hash is logged
    # ... while the DICOM outputs keep it (PHI there is by design)
    key = next(k for k in runner.store.list(f"jobs/{job.uid}/fetch/instances/"))
    from io import BytesIO

    fetched = pydicom.dcmread(BytesIO(runner.store.get_bytes(key)))
    assert (str(fetched.PatientName), fetched.PatientID) == (NAME, MRN)
