"""Postprocess + report stages on synthetic studies: the PDF, priors, the DICOM objects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from radpipe.api.apps import load_apps
from radpipe.api.models import AnalysisJob, DeliverySpec, JobSpec, ObjectMeta
from radpipe.config import BrandingConfig, Settings
from radpipe.pipeline.executor import execute_stage
from radpipe.results.schema import Measurement, ResultsDocument, StudyRef
from radpipe.results.synthetic import SyntheticCase, cached_study, load_case, seed_upstream
from radpipe.results.warehouse import Warehouse
from radpipe.store.local import LocalStore


def make_job(uid: str, case: SyntheticCase, app: str, **spec: object) -> AnalysisJob:
    return AnalysisJob(
        metadata=ObjectMeta(
            name=uid, uid=uid, annotations={"radpipe.io/created": "2024-05-01T10:00:00+00:00"}
        ),
        spec=JobSpec(accession=case.truth.accession, app=app, **spec),  # type: ignore[arg-type]
    )


def run_stages(
    store: LocalStore, settings: Settings, job: AnalysisJob, stages: tuple[str, ...]
) -> dict[str, object]:
    app = load_apps(None)[job.spec.app].spec
    results = {}
    for stage in stages:
        run = execute_stage(job, app, stage, store, settings)
        assert run.result.state == "succeeded", run.result.message
        results[stage] = run.result
    return results


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def glioma() -> SyntheticCase:
    return load_case(cached_study("mr-glioma", 1))


def test_glioma_report_with_prior(glioma: SyntheticCase, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        branding=BrandingConfig(institution="St. Example Hospital", department="Neuroradiology"),
    )
    store = LocalStore(tmp_path / "store")
    # an earlier study of the same patient in the warehouse
    prior = ResultsDocument(
        job="rp-prior",
        app="glioma",
        study=StudyRef(
            study_instance_uid="1.2.3.4",
            accession="OLD1",
            patient_id=glioma.truth.patient_id,
            study_date="20100101",
        ),
        measurements=[Measurement(name="WT", label="Whole tumour", value=30.0, unit="cm3")],
    )
    Warehouse(settings.warehouse.url or "").record(prior)
    job = make_job("rp-report1", glioma, "glioma")
    seed_upstream(store, job.uid, glioma)
    results = run_stages(store, settings, job, ("postprocess", "report"))
    post = results["postprocess"].data  # type: ignore[attr-defined]
    volumes = post["results"]["volumesCm3"]
    assert volumes["WT"] == pytest.approx(glioma.truth.volumes_cm3["WT"], rel=0.05)
    change = {c["name"]: c for c in post["findings"]["prior"]["changes"]}["WT"]
    assert change["prior"] == 30.0
    assert change["percent"] == pytest.approx(100 * (volumes["WT"] - 30) / 30, abs=0.1)
    pdf = store.root / "jobs" / job.uid / "report" / "report.pdf"
    text = pdf_text(pdf)
    for expected in (
        "St. Example Hospital",
        glioma.truth.patient_id,
        glioma.truth.accession,
        "Comparison with prior",
        "OLD1",
        "Whole tumour",
        "research use",
        "Methods",
    ):
        assert expected in text, expected
    assert "SYNTH, Glioma" in text  # the patient name SYNTH^GLIOMA^0001 as FAMILY, Given
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert (
        int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages"))) <= 2
    )
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    rows = fonts.splitlines()[2:]
    assert rows and all(" yes " in row for row in rows), fonts  # every font embedded
    objects = {o["kind"]: o for o in results["report"].data["dicomObjects"]}  # type: ignore[attr-defined]
    assert set(objects) == {"seg", "sr", "pdf"}
    # re-running the report stage makes the same objects (same UIDs)
    store.delete_prefix(f"jobs/{job.uid}/report/")
    again = run_stages(store, settings, job, ("report",))["report"].data  # type: ignore[attr-defined]
    assert [o["sopInstanceUID"] for o in again["dicomObjects"]] == [
        o["sopInstanceUID"]
        for o in results["report"].data["dicomObjects"]  # type: ignore[attr-defined]
    ]


def test_empty_prediction_and_no_seg_requested(glioma: SyntheticCase, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = LocalStore(tmp_path / "store")
    empty = SyntheticCase(
        truth=glioma.truth,
        study_dir=glioma.study_dir,
        datasets=glioma.datasets,
        mapping=glioma.mapping,
        labels_grid=np.zeros_like(glioma.labels_grid),
        brain_grid=glioma.brain_grid,
    )
    job = make_job("rp-empty1", empty, "glioma", delivery=DeliverySpec(seg=True, sr=True))
    seed_upstream(store, job.uid, empty)
    results = run_stages(store, settings, job, ("postprocess", "report"))
    assert results["postprocess"].data["results"]["findings"] == ["No tumour segmented."]  # type: ignore[attr-defined]
    kinds = [o["kind"] for o in results["report"].data["dicomObjects"]]  # type: ignore[attr-defined]
    assert kinds == ["sr", "pdf"]  # nothing to segment: no SEG
    assert "No tumour segmented" in pdf_text(
        store.root / "jobs" / job.uid / "report" / "report.pdf"
    )


def test_hemorrhage_report(tmp_path: Path) -> None:
    case = load_case(cached_study("ct-hemorrhage", 4))
    settings = Settings(data_dir=tmp_path / "data")
    store = LocalStore(tmp_path / "store")
    job = make_job("rp-ich1", case, "hemorrhage")
    seed_upstream(store, job.uid, case)
    results = run_stages(store, settings, job, ("postprocess", "report"))
    doc = results["postprocess"].data["findings"]  # type: ignore[attr-defined]
    present = {f["code"] for f in doc["findings"] if f["present"]}
    assert present == {"any", *case.truth.hemorrhage_subtypes}
    assert len(doc["keySlices"]) == 3
    volume = next(m["value"] for m in doc["measurements"] if m["name"] == "bleedVolume")
    assert 0.3 * case.truth.volumes_cm3["any"] <= volume <= 1.5 * case.truth.volumes_cm3["any"]
    kinds = [o["kind"] for o in results["report"].data["dicomObjects"]]  # type: ignore[attr-defined]
    assert kinds == ["seg", "sr", "pdf"]
