"""Hospital integration end to end: dcmtk's storescu pushes a synthetic CT head study to
``radpipe``'s receiver in parts; the quiet period makes it one study, the routing rule picks
the app, the job waits for review, and after acceptance the result reaches a real Orthanc
(C-FIND finds it). A rejected job sends nothing; an unknown calling AE is refused. Once a
study's jobs have ended and the retention has passed, its spool is deleted (local store and
a real MinIO).

The trained models are not part of this test: the app ("intaketoy") runs the real fetch
(from the intake spool) and deliver stages around a tiny stand-in report stage that writes
a real Encapsulated PDF object into the pushed study.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from radpipe.api.models import AnalysisJob, Phase, utcnow
from radpipe.config import S3Config, Settings
from radpipe.dicom.client import open_client
from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.writers.common import OutputInfo
from radpipe.dicom.writers.documents import make_encapsulated_pdf
from radpipe.intake.receiver import Intake, Receiver
from radpipe.intake.rules import load_rules
from radpipe.intake.submitter import LocalSubmitter
from radpipe.pipeline.contract import Stage, StageContext, StageOutcome
from radpipe.pipeline.registry import register_stage, unregister_stage
from radpipe.web.review import record_review
from tests.fixtures.fhir import FhirEndpoint
from tests.fixtures.minio import MinioServer
from tests.fixtures.pacs import OrthancServer
from tests.fixtures.web import minimal_pdf

pytestmark = pytest.mark.integration

APP_YAML = """
apiVersion: radpipe.io/v1alpha1
kind: AnalysisApp
metadata: {name: intaketoy}
spec:
  title: Intake test analysis
  modality: CT
  stages: [{name: fetch}, {name: report}, {name: deliver, settings: {attempts: 2}}]
"""


class ToyReport(Stage):
    """Stands in for postprocess + report: a PDF, its DICOM wrapper and one measurement."""

    name = "report"
    version = "test"
    requires = ("fetch",)

    def run(self, ctx: StageContext) -> StageOutcome:
        manifest = ctx.result_of("fetch").data["manifest"]
        key = manifest["series"][0]["instances"][0]["key"]
        reference = pydicom.dcmread(ctx.store.open(key), stop_before_pixels=True)
        pdf = minimal_pdf(["intake test report", ctx.job.uid])
        ctx.put_bytes("report.pdf", pdf)
        info = OutputInfo(job_uid=ctx.job.uid, app="intaketoy", model_name="toy", model_version="1")
        ds = make_encapsulated_pdf(info, reference, pdf, title="Test report", source=[reference])
        path = ctx.workdir / "pdf.dcm"
        ds.save_as(path, enforce_file_format=True)
        ctx.put_file("pdf.dcm", path)
        obj = {
            "name": "pdf.dcm",
            "kind": "pdf",
            "sopClassUID": str(ds.SOPClassUID),
            "sopInstanceUID": str(ds.SOPInstanceUID),
            "seriesInstanceUID": str(ds.SeriesInstanceUID),
            "studyInstanceUID": str(ds.StudyInstanceUID),
        }
        findings = {
            "study": {"patientId": str(reference.PatientID)},
            "measurements": [
                {"name": "bleed", "label": "Bleed volume", "value": 3.2, "unit": "cm3"}
            ],
            "findings": [{"code": "any", "text": "Test finding."}],
        }
        return StageOutcome(data={"dicomObjects": [obj], "findings": findings})


@pytest.fixture(scope="module")
def ct_study(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[Path]]:
    """A small synthetic CT head study, its files by series number."""
    from radpipe.synth import generate_study

    folder = tmp_path_factory.mktemp("ct")
    generate_study("ct-hemorrhage", folder, seed=11, small=True, accession="PUSH1")
    by_series: dict[int, list[Path]] = {}
    for path in sorted((folder / "dicom").rglob("*.dcm")):
        number = int(pydicom.dcmread(path, stop_before_pixels=True).SeriesNumber)
        by_series.setdefault(number, []).append(path)
    return by_series


def restamp(files: list[Path], out: Path, study_uid: str) -> list[Path]:
    """Copies of ``files`` as another study (new Study/Series/SOP Instance UIDs)."""
    out.mkdir(parents=True, exist_ok=True)
    series: dict[str, str] = {}
    written = []
    for number, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series.setdefault(ds.SeriesInstanceUID, generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        target = out / f"{number}.dcm"
        ds.save_as(target)
        written.append(target)
    return written


@pytest.fixture
def receiving(
    settings: Settings, tmp_path: Path, orthanc: OrthancServer, fhir_endpoint: FhirEndpoint
) -> Iterator[tuple[Receiver, LocalSubmitter]]:
    """The receiver (allowing CT1, quiet period 1.5 s) with one routing rule, jobs run by
    the local runner; results go to Orthanc and to the FHIR endpoint (tests/fixtures/fhir.py:
    a local endpoint validating with fhir.resources, not a real FHIR server)."""
    settings.fhir.endpoint = fhir_endpoint.url
    settings.fhir.backoff_seconds = 0.01
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "intaketoy.yaml").write_text(APP_YAML)
    settings.apps_dir = apps
    settings.pacs = {"hospital": orthanc.dimse_node()}
    settings.runner.retry_backoff_seconds = 0.01
    settings.intake.ae_title = "RADPIPE-IN"
    settings.intake.bind = "127.0.0.1"
    settings.intake.port = 0
    settings.intake.allowed_calling_aes = ["CT1"]
    settings.intake.quiet_period_seconds = 1.5
    settings.intake.rules = [
        {"name": "mr-brain", "match": {"modality": "MR"}, "app": "glioma"},
        {
            "name": "ct-head-review",
            "match": {"modality": "CT", "bodyPart": "HEAD", "callingAE": "CT1"},
            "app": "intaketoy",
            "priority": "stat",
            "review": True,
            "delivery": {"pacs": ["hospital"]},
        },
    ]
    register_stage(ToyReport)
    from radpipe.api.apps import load_apps

    rules = load_rules(settings.intake.rules, None, load_apps(apps))
    submitter = LocalSubmitter(settings)
    intake = Intake(settings, submitter.runner.store, rules, submitter)
    receiver = Receiver(intake)
    receiver.start()
    yield receiver, submitter
    receiver.stop()
    submitter.close()
    unregister_stage(ToyReport.name)


def push(
    receiver: Receiver, files: list[Path], calling: str = "CT1"
) -> subprocess.CompletedProcess[str]:
    """storescu the files over one association."""
    return subprocess.run(
        ["storescu", "-aet", calling, "-aec", "RADPIPE-IN", "127.0.0.1", str(receiver.port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=60,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def jobs_of(submitter: LocalSubmitter, study_uid: str) -> list[AnalysisJob]:
    return [j for j in submitter.runner.list_jobs() if j.spec.study_instance_uid == study_uid]


def in_orthanc(orthanc: OrthancServer, obj: dict[str, str]) -> bool:
    client = open_client(PacsNode("o", orthanc.dimse_node()))
    return obj["sopInstanceUID"] in client.find_instances(
        obj["studyInstanceUID"], obj["seriesInstanceUID"]
    )


def delivered_object(submitter: LocalSubmitter, job: AnalysisJob) -> dict[str, str]:
    result = submitter.runner.store.get_json(f"jobs/{job.uid}/report/result.json")
    obj: dict[str, str] = result["data"]["dicomObjects"][0]
    return obj


def test_pushed_in_parts_one_job_by_rule_delivered_after_acceptance(
    receiving: tuple[Receiver, LocalSubmitter],
    ct_study: dict[int, list[Path]],
    orthanc: OrthancServer,
    fhir_endpoint: FhirEndpoint,
) -> None:
    receiver, submitter = receiving
    numbers = sorted(ct_study)
    study_uid = str(pydicom.dcmread(ct_study[numbers[0]][0]).StudyInstanceUID)
    # two associations inside the quiet period: one study, one job
    first = push(receiver, [f for n in numbers[:2] for f in ct_study[n]])
    assert first.returncode == 0, first.stderr
    second = push(receiver, [f for n in numbers[2:-1] for f in ct_study[n]])
    assert second.returncode == 0, second.stderr
    wait_for(lambda: jobs_of(submitter, study_uid), 20, "a job for the pushed study")
    wait_for(
        lambda: jobs_of(submitter, study_uid)[0].status.phase is Phase.AWAITING_REVIEW,
        60,
        "the job to wait for review",
    )
    (job,) = jobs_of(submitter, study_uid)
    assert job.spec.app == "intaketoy" and job.spec.priority.value == "stat"
    assert job.metadata.annotations["radpipe.io/intake-rule"] == "ct-head-review"
    fetched = submitter.runner.store.get_json(f"jobs/{job.uid}/fetch/manifest.json")
    pushed = sum(len(ct_study[n]) for n in numbers[:-1])
    assert fetched["instance_count"] == pushed and fetched["source"]["node"] == "intake"
    obj = delivered_object(submitter, job)
    assert not in_orthanc(orthanc, obj)  # held: nothing sent before review

    # more series of the same study later: the study settles again, no second job
    late = push(receiver, ct_study[numbers[-1]])
    assert late.returncode == 0, late.stderr
    intake = receiver.intake
    wait_for(
        lambda: (
            intake.read_record(study_uid).get("instances") == pushed + len(ct_study[numbers[-1]])
        ),
        20,
        "the late series to settle",
    )
    assert len(jobs_of(submitter, study_uid)) == 1
    assert [j["job"] for j in intake.read_record(study_uid)["jobs"]] == [job.uid]

    # a radiologist accepts (what the web app does): delivery runs
    record_review(submitter.runner.store, job, "accepted", "", "rita")
    submitter.runner.release(job.uid)
    done = submitter.runner.run(job.uid)
    assert done.status.phase is Phase.SUCCEEDED, done.status.message
    assert in_orthanc(orthanc, obj)
    # and to the EMR side: a final DiagnosticReport with its Observation and the PDF
    report = fhir_endpoint.resources[f"DiagnosticReport/radpipe-{job.uid}"]
    assert (
        report["status"] == "final"
        and report["presentedForm"][0]["contentType"] == "application/pdf"
    )
    assert report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{study_uid}"
    assert f"Observation/radpipe-{job.uid}-m1" in fhir_endpoint.resources
    assert any("DiagnosticReport" in t for t in done.status.results["deliveredTo"])


def test_rejected_job_delivers_nothing_and_unknown_ae_is_refused(
    receiving: tuple[Receiver, LocalSubmitter],
    ct_study: dict[int, list[Path]],
    orthanc: OrthancServer,
    fhir_endpoint: FhirEndpoint,
    tmp_path: Path,
) -> None:
    receiver, submitter = receiving
    study_uid = generate_uid()
    files = restamp(
        [f for n in sorted(ct_study)[:2] for f in ct_study[n]], tmp_path / "b", study_uid
    )

    refused = push(receiver, files, calling="UNKNOWN-AE")
    assert refused.returncode != 0
    assert "Association Rejected" in refused.stderr + refused.stdout
    assert not receiver.intake.pending()

    assert push(receiver, files).returncode == 0
    wait_for(
        lambda: any(j.status.phase is Phase.AWAITING_REVIEW for j in jobs_of(submitter, study_uid)),
        60,
        "the job to wait for review",
    )
    (job,) = jobs_of(submitter, study_uid)
    record_review(submitter.runner.store, job, "rejected", "wrong series analysed", "rita")
    submitter.runner.release(job.uid)
    done = submitter.runner.run(job.uid)
    assert done.status.phase is Phase.FAILED
    assert "rejected by rita" in (done.status.message or "")
    assert not in_orthanc(orthanc, delivered_object(submitter, job))
    assert not any(job.uid in key for key in fhir_endpoint.resources)
    assert submitter.runner.store.exists(f"retraining/intaketoy/{job.uid}/reason.json")

    # the job has ended: its study's spool goes once the retention (24 h) has passed;
    # the job keeps its own copy (fetch) and the study record stays
    intake = receiver.intake
    spool = f"intake/{study_uid}/instances/"
    assert len(intake.store.list(spool)) == len(files)
    assert intake.clean_spool().kept_retention == 1
    report = intake.clean_spool(now=utcnow() + timedelta(hours=24, minutes=1))
    assert report.studies_deleted == 1 and report.instances_deleted == len(files)
    assert intake.store.list(spool) == []
    assert intake.store.list(f"jobs/{job.uid}/fetch/")
    assert intake.read_record(study_uid)["jobs"][0]["job"] == job.uid


FETCH_ONLY_APP = """
apiVersion: radpipe.io/v1alpha1
kind: AnalysisApp
metadata: {name: spooltoy}
spec:
  title: Spool clean-up test
  modality: CT
  stages: [{name: fetch}]
"""


def test_spool_clean_up_on_minio(
    settings: Settings, minio_server: MinioServer, ct_study: dict[int, list[Path]], tmp_path: Path
) -> None:
    """A study pushed to a receiver spooling in MinIO: the job (fetch only) runs from the
    spool and succeeds; the spool stays while the retention runs and goes after it."""
    settings.store.backend = "s3"
    settings.store.s3 = S3Config(**minio_server.store_config(prefix=f"i-{os.urandom(4).hex()}"))
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "spooltoy.yaml").write_text(FETCH_ONLY_APP)
    settings.apps_dir = apps
    settings.intake.bind = "127.0.0.1"
    settings.intake.port = 0
    settings.intake.allowed_calling_aes = ["CT1"]
    settings.intake.quiet_period_seconds = 1
    settings.intake.spool_retention_hours = 1
    from radpipe.api.apps import load_apps

    rules = load_rules(
        [{"name": "ct", "match": {"modality": "CT"}, "app": "spooltoy"}], None, load_apps(apps)
    )
    submitter = LocalSubmitter(settings)
    intake = Intake(settings, submitter.runner.store, rules, submitter)
    receiver = Receiver(intake)
    receiver.start()
    try:
        study_uid = generate_uid()
        files = restamp(ct_study[sorted(ct_study)[0]], tmp_path / "s", study_uid)
        assert push(receiver, files).returncode == 0
        wait_for(
            lambda: any(j.status.phase is Phase.SUCCEEDED for j in jobs_of(submitter, study_uid)),
            60,
            "the fetch-only job to succeed",
        )
        (job,) = jobs_of(submitter, study_uid)
        assert job.status.finished_at is not None
        spool = f"intake/{study_uid}/instances/"
        assert len(intake.store.list(spool)) == len(files)
        report = intake.clean_spool(now=job.status.finished_at + timedelta(minutes=59))
        assert report.kept_retention == 1 and len(intake.store.list(spool)) == len(files)
        report = intake.clean_spool(now=job.status.finished_at + timedelta(minutes=61))
        assert report.studies_deleted == 1 and report.instances_deleted == len(files)
        assert intake.store.list(spool) == []
        fetched = intake.store.get_json(f"jobs/{job.uid}/fetch/manifest.json")
        assert fetched["instance_count"] == len(files)
        assert intake.read_record(study_uid)["spoolDeletedInstances"] == len(files)
    finally:
        receiver.stop()
        submitter.close()
