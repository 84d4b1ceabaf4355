"""The DICOM receiver in cluster mode against a real kube-apiserver.

``radpipe receive --cluster`` runs as a process with a token of the chart's own receiver
ServiceAccount (its Role: create, get and list AnalysisJobs in one namespace). dcmtk's
storescu pushes a synthetic CT head study in two associations; the routing rules make it
exactly one AnalysisJob with the app, accession and priority the rule names, and no
patient name or ID anywhere in the resource (nor in the receiver's log). A second arrival
of the same study creates nothing, even when the receiver has lost its record of the first
job (the job's name is derived from the request, so the API server answers 409 and the
receiver reads the existing job back). When the job has ended, the receiver deletes the
study's spool (at start and periodically), reading the job's phase through the API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
import yaml
from pydicom.uid import generate_uid

from radpipe.demo import stop_process
from radpipe.intake.submitter import STUDY_LABEL, study_label
from tests.fixtures.cluster import ControlPlane
from tests.fixtures.helm import Helm
from tests.fixtures.network import free_port, wait_until

pytestmark = [pytest.mark.integration]

PATIENT_NAME = "Intakeson^Jolene^Q"
PATIENT_ID = "MRN-55731-QX"
ACCESSION = "ACC55731"
RULES = {
    "rules": [
        {"name": "mr-brain", "match": {"modality": "MR"}, "app": "glioma"},
        {
            "name": "ct-head-stat",
            "match": {"modality": "CT", "bodyPart": "HEAD", "callingAE": "CT1"},
            "app": "hemorrhage",
            "priority": "stat",
            "review": True,
        },
    ]
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> list[list[Path]]:
    """A small synthetic CT head study with known patient data, its files by series."""
    from radpipe.synth import generate_study

    source = tmp_path_factory.mktemp("ct")
    generate_study("ct-hemorrhage", source, seed=5, small=True)
    out = tmp_path_factory.mktemp("ct-phi")
    study_uid = generate_uid()
    series: dict[str, list[Path]] = {}
    uids: dict[str, str] = {}
    for number, path in enumerate(sorted((source / "dicom").rglob("*.dcm"))):
        ds = pydicom.dcmread(path)
        ds.PatientName = PATIENT_NAME
        ds.PatientID = PATIENT_ID
        ds.AccessionNumber = ACCESSION
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = uids.setdefault(ds.SeriesInstanceUID, generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        target = out / f"{number:04d}.dcm"
        ds.save_as(target)
        series.setdefault(ds.SeriesInstanceUID, []).append(target)
    return list(series.values())


@dataclass
class ReceiverProcess:
    """``radpipe receive --cluster`` with the given environment; restartable."""

    env: dict[str, str]
    workdir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "receiver.log"

    def start(self, **overrides: str) -> None:
        env = {**self.env, **overrides}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radpipe.cli", "receive", "--cluster"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        wait_until(self.listening, 90, "the receiver to listen")

    def listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError("receiver exited:\n" + self.log.read_text(errors="replace"))
        return "receiving as" in self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, timeout=20)
        self.process = None
        # the next start writes "receiving as" again: keep the old log apart
        if self.log.exists():
            self.log.rename(self.workdir / f"receiver-{time.monotonic_ns()}.log")

    def push(self, files: list[Path], calling: str = "CT1") -> None:
        """storescu the files over one association; it must succeed."""
        result = subprocess.run(
            ["storescu", "-aet", calling, "-aec", "RADPIPE-IN", "127.0.0.1", str(self.port)]
            + [str(f) for f in files],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr + result.stdout


@pytest.fixture
def receiver(
    control_plane: ControlPlane, helm: Helm, tmp_path: Path
) -> Iterator[tuple[ReceiverProcess, str]]:
    """A namespace with the chart's receiver ServiceAccount and RBAC (nothing else), and
    the receiver running with that account's token; artifacts in a local store."""
    plane = control_plane
    namespace = f"intake-{uuid.uuid4().hex[:6]}"
    plane.kubectl("create", "namespace", namespace)
    docs = helm.template(
        sets=[
            f"jobNamespaces={{{namespace}}}",
            "intake.enabled=true",
            "intake.allowedCallingAEs={CT1}",
        ],
        release="rx",
        namespace=namespace,
        crds=False,
    )
    rbac = [
        d
        for d in docs
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")
        and d["metadata"]["name"] == "rx-radpipe-intake"
    ]
    assert sorted(d["kind"] for d in rbac) == ["Role", "RoleBinding", "ServiceAccount"]
    plane.apply(*rbac)
    kubeconfig = plane.service_account_kubeconfig(
        namespace, "rx-radpipe-intake", tmp_path / "kubeconfig"
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADPIPE_")}
    env.update(
        {
            "KUBECONFIG": str(kubeconfig),
            "RADPIPE_DATA_DIR": str(tmp_path / "data"),
            "RADPIPE_INTAKE__NAMESPACE": namespace,
            "RADPIPE_INTAKE__AE_TITLE": "RADPIPE-IN",
            "RADPIPE_INTAKE__BIND": "127.0.0.1",
            "RADPIPE_INTAKE__PORT": str(port),
            "RADPIPE_INTAKE__ALLOWED_CALLING_AES": '["CT1"]',
            "RADPIPE_INTAKE__QUIET_PERIOD_SECONDS": "3",
            "RADPIPE_INTAKE__RULES_FILE": str(rules),
            "RADPIPE_INTAKE__SPOOL_RETENTION_HOURS": "24",
        }
    )
    if "RADPIPE_TOOLS_DIR" in os.environ:
        env["RADPIPE_TOOLS_DIR"] = os.environ["RADPIPE_TOOLS_DIR"]
    process = ReceiverProcess(env, tmp_path, port)
    process.start()
    yield process, namespace
    process.stop()
    plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def intake_jobs(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    return plane.list("analysisjobs", namespace, "app.kubernetes.io/created-by=radpipe-intake")


def spool(workdir: Path, study_uid: str) -> list[Path]:
    folder = workdir / "data" / "artifacts" / "intake" / study_uid / "instances"
    return sorted(p for p in folder.rglob("*.dcm")) if folder.exists() else []


def record(workdir: Path, study_uid: str) -> dict[str, Any]:
    path = workdir / "data" / "artifacts" / "intake" / study_uid / "study.json"
    found: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return found


def test_pushed_study_makes_one_analysis_job_by_rule_and_never_a_duplicate(
    control_plane: ControlPlane,
    receiver: tuple[ReceiverProcess, str],
    study: list[list[Path]],
) -> None:
    plane = control_plane
    process, namespace = receiver
    workdir = process.workdir
    study_uid = str(pydicom.dcmread(study[0][0]).StudyInstanceUID)
    first, rest = study[:2], study[2:]
    assert rest, "the synthetic study has too few series for two parts"
    # two associations, the second within the quiet period: one study
    process.push([f for s in first for f in s])
    process.push([f for s in rest for f in s])
    all_files = [f for s in study for f in s]
    wait_until(lambda: bool(record(workdir, study_uid).get("jobs")), 60, "the study to settle")
    time.sleep(4)  # more than a quiet period: nothing else may be created
    (job,) = intake_jobs(plane, namespace)
    assert len(spool(workdir, study_uid)) == len(all_files)
    assert record(workdir, study_uid)["instances"] == len(all_files)

    # the job the rule names, as the API server stored it
    spec, metadata = job["spec"], job["metadata"]
    assert spec["app"] == "hemorrhage"
    assert spec["accession"] == ACCESSION
    assert spec["priority"] == "stat"
    assert spec["review"]["required"] is True
    assert spec["studyInstanceUID"] == study_uid
    assert spec["source"]["storePrefix"] == f"intake/{study_uid}/"
    assert metadata["labels"][STUDY_LABEL] == study_label(study_uid)
    assert metadata["annotations"]["radpipe.io/intake-rule"] == "ct-head-stat"
    assert metadata["annotations"]["radpipe.io/intake-calling-ae"] == "CT1"
    assert record(workdir, study_uid)["jobs"][0]["job"] == metadata["uid"]
    # no patient data in labels, annotations or status (nor anywhere in the resource)
    for part in (metadata.get("labels", {}), metadata.get("annotations", {}), job.get("status")):
        text = json.dumps(part)
        assert PATIENT_ID not in text and "Intakeson" not in text and "Jolene" not in text
    whole = json.dumps(job)
    assert PATIENT_ID not in whole and "Intakeson" not in whole
    log = process.log.read_text(errors="replace")
    assert "study settled" in log and "jobs started:" in log
    assert PATIENT_ID not in log and "Intakeson" not in log

    # a second arrival of the same study (a series sent again): no second job
    process.push(study[0])
    wait_until(
        lambda: (
            record(workdir, study_uid).get("callingAEs") == ["CT1"]
            and "settledAt" in record(workdir, study_uid)
            and process.log.read_text(errors="replace").count("study settled") >= 2
        ),
        60,
        "the second arrival to settle",
    )
    assert [j["metadata"]["uid"] for j in intake_jobs(plane, namespace)] == [metadata["uid"]]

    # the receiver loses its record (a crash between create and record): a new receiver
    # process settles the spool again, the create meets the existing job (409), reads it
    # back, and records it; still one job
    process.stop()
    (workdir / "data" / "artifacts" / "intake" / study_uid / "study.json").unlink()
    process.start()
    wait_until(
        lambda: bool(record(workdir, study_uid).get("jobs")), 60, "the spool to settle again"
    )
    time.sleep(4)
    jobs = intake_jobs(plane, namespace)
    assert [j["metadata"]["uid"] for j in jobs] == [metadata["uid"]]
    assert record(workdir, study_uid)["jobs"][0]["job"] == metadata["uid"]
    assert "exists already" in process.log.read_text(errors="replace")


def test_spool_goes_once_the_cluster_job_has_ended(
    control_plane: ControlPlane,
    receiver: tuple[ReceiverProcess, str],
    study: list[list[Path]],
) -> None:
    plane = control_plane
    process, namespace = receiver
    workdir = process.workdir
    study_uid = str(pydicom.dcmread(study[0][0]).StudyInstanceUID)
    files = [f for s in study[:2] for f in s]
    process.push(files)
    wait_until(lambda: bool(record(workdir, study_uid).get("jobs")), 60, "the study to settle")
    (job,) = intake_jobs(plane, namespace)
    name = job["metadata"]["name"]
    # restarted with no retention and a 1 s clean-up interval: the job has not ended
    # (no operator runs it), so the spool stays, at start and after
    process.stop()
    process.start(
        RADPIPE_INTAKE__SPOOL_RETENTION_HOURS="0",
        RADPIPE_INTAKE__SPOOL_CLEANUP_INTERVAL_SECONDS="1",
    )
    time.sleep(3)
    assert len(spool(workdir, study_uid)) == len(files)
    assert "kept 1 with jobs not ended" in process.log.read_text(errors="replace")
    # the job ends (what the operator would write): the receiver reads the phase through
    # the API (list by the study's label) and deletes the spool
    plane.kubectl(
        "patch",
        "analysisjob",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Succeeded", "finishedAt": "2026-01-01T00:00:00Z"}}),
    )
    wait_until(
        lambda: record(workdir, study_uid).get("spoolDeletedInstances") == len(files),
        30,
        "the spool to be deleted",
    )
    assert spool(workdir, study_uid) == []
    wait_until(
        lambda: (
            f"1 studies deleted ({len(files)} instances)" in process.log.read_text(errors="replace")
        ),
        10,
        "the clean-up's log line",
    )
    assert len(intake_jobs(plane, namespace)) == 1

    # a job made before jobs carried the study label (an older receiver) is still found:
    # while it runs, the spool of a later arrival stays; once it has ended, it goes
    def set_phase(phase: str) -> None:
        status = {
            "phase": phase,
            "finishedAt": "2026-01-01T00:00:00Z" if phase != "Running" else None,
        }
        plane.kubectl(
            "patch",
            "analysisjob",
            name,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    plane.kubectl("label", "analysisjob", name, "-n", namespace, f"{STUDY_LABEL}-")
    set_phase("Running")
    process.push(study[0])
    wait_until(
        lambda: "spoolDeletedAt" not in record(workdir, study_uid), 30, "the re-push to settle"
    )
    time.sleep(3)  # three clean-ups
    assert len(spool(workdir, study_uid)) == len(study[0])
    assert "spoolDeletedAt" not in record(workdir, study_uid)
    set_phase("Failed")
    wait_until(
        lambda: record(workdir, study_uid).get("spoolDeletedInstances") == len(study[0]),
        30,
        "the later spool to be deleted",
    )
    assert spool(workdir, study_uid) == [] and len(intake_jobs(plane, namespace)) == 1
