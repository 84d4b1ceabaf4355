"""Warehouse, priors and retraining set on SQLite (the embedded default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radpipe.results import priors, retraining
from radpipe.results.schema import Measurement, ResultsDocument, StudyRef
from radpipe.results.warehouse import Warehouse, patient_key
from radpipe.store.local import LocalStore


def make_doc(job: str, date: str, wt: float, *, patient: str = "MRN1", app: str = "glioma"):
    """A small glioma results document."""
    return ResultsDocument(
        job=job,
        app=app,
        study=StudyRef(
            study_instance_uid=f"1.2.3.{job[-1]}",
            accession=f"A{job[-1]}",
            patient_id=patient,
            study_date=date,
        ),
        measurements=[
            Measurement(name="WT", label="Whole tumour", value=wt, unit="cm3"),
            Measurement(name="ET", label="Enhancing", value=0.0 if wt < 5 else 2.0, unit="cm3"),
        ],
    )


def exercise_warehouse(url: str) -> None:
    """The same checks on any database URL (SQLite here, PostgreSQL in integration)."""
    wh = Warehouse(url)
    try:
        wh.record(make_doc("job1", "20230101", 20.0))
        wh.record(make_doc("job2", "20230601", 30.0))
        wh.record(make_doc("job9", "20230301", 99.0, patient="OTHER"))
        wh.record(make_doc("job8", "20230301", 50.0, app="metastasis"))
        current = make_doc("job3", "20240101", 24.0)
        comparison = priors.find_prior(wh, current)
        assert comparison is not None
        assert comparison.prior_job == "job2"
        wt = next(c for c in comparison.changes if c.name == "WT")
        assert wt.absolute == pytest.approx(-6.0)
        assert wt.percent == pytest.approx(-20.0)
        et = next(c for c in comparison.changes if c.name == "ET")
        assert et.percent == pytest.approx(0.0)
        assert [p["value"] for p in comparison.trend] == [20.0, 30.0, 24.0]
        # recording the same job again replaces it (idempotent), no duplicate row
        wh.record(make_doc("job2", "20230601", 31.0))
        assert len(wh.history("MRN1", "glioma")) == 2
        assert wh.get("job2").document["measurements"][0]["value"] == 31.0
        # a rejected result is no prior any more
        wh.set_status("job2", "rejected")
        assert priors.find_prior(wh, current).prior_job == "job1"
        assert wh.queue_retraining("job2", "glioma", "rejected", "wrong side")
        assert not wh.queue_retraining("job2", "glioma", "rejected", "again")
        assert [c.job_uid for c in wh.retraining_cases("glioma")] == ["job2"]
    finally:
        wh.close()


def test_sqlite_warehouse_priors_and_idempotence(tmp_path: Path) -> None:
    exercise_warehouse(f"sqlite:///{tmp_path / 'wh.db'}")


def test_no_prior_for_first_study(tmp_path: Path) -> None:
    wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    assert priors.find_prior(wh, make_doc("job1", "20230101", 20.0)) is None
    assert patient_key("MRN1") != patient_key("MRN2")
    assert "MRN1" not in patient_key("MRN1")


def test_rejection_queues_images_and_labels(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    wh.record(make_doc("job1", "20230101", 20.0))
    store.put_bytes("jobs/job1/preprocess/input.npy", b"images")
    store.put_bytes("jobs/job1/infer/prediction.npy", b"labels")
    prefix = retraining.reject(store, wh, "job1", "edema missed")
    assert store.get_bytes(prefix + "images/input.npy") == b"images"
    assert store.get_bytes(prefix + "labels/prediction.npy") == b"labels"
    reason = store.get_json(prefix + "reason.json")
    assert reason["reasons"][0]["reason"] == "rejected"
    assert reason["files"]["images"] == ["input.npy"]
    assert wh.get("job1").status == "rejected"
    assert wh.retraining_cases()[0].location == prefix
