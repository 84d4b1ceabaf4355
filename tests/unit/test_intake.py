"""The receiver's study logic without sockets: quiet period, one job per app per study,
``onLaterSeries``, the spool and its clean-up, and the fetch stage copying a pushed study."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydicom
import pytest

from radpipe.api.apps import load_apps
from radpipe.api.models import AnalysisJob, JobSpec, ObjectMeta, Phase
from radpipe.config import Settings
from radpipe.intake.receiver import Intake, IntakeError, Receiver, job_accession
from radpipe.intake.rules import StudyFacts, parse_rules
from radpipe.intake.submitter import JobState
from radpipe.pipeline.executor import execute_stage
from radpipe.store import open_store


class FakeSubmitter:
    """Records submitted specs; the jobs' states are what the test sets (default Pending)."""

    def __init__(self) -> None:
        self.specs: list[tuple[JobSpec, dict[str, str]]] = []
        self.keys: list[str | None] = []
        self.states: dict[str, JobState | None] = {}
        self.asked: list[str] = []

    def submit(self, spec: JobSpec, annotations: dict[str, str], key: str | None = None) -> str:
        self.specs.append((spec, annotations))
        self.keys.append(key)
        return f"rp-{len(self.specs):012d}"

    def job_states(self, study_uid: str, uids: Sequence[str]) -> dict[str, JobState | None]:
        self.asked.append(study_uid)
        return {uid: self.states.get(uid, JobState(Phase.PENDING)) for uid in uids}

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def series_files(tmp_path_factory: pytest.TempPathFactory) -> list[list[bytes]]:
    """A small synthetic CT study: the bytes of each series."""
    from radpipe.synth import generate_study

    folder = tmp_path_factory.mktemp("ct")
    generate_study("ct-hemorrhage", folder, seed=2, small=True)
    series: dict[str, list[bytes]] = {}
    for path in sorted((folder / "dicom").rglob("*.dcm")):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
        series.setdefault(uid, []).append(path.read_bytes())
    return list(series.values())


def make(settings: Settings, rules: list[dict[str, object]]) -> tuple[Intake, FakeSubmitter, Clock]:
    settings.intake.quiet_period_seconds = 5
    submitter, clock = FakeSubmitter(), Clock()
    intake = Intake(
        settings,
        open_store(settings.store),
        parse_rules(rules, load_apps(None)),
        submitter,
        clock=clock,
    )
    return intake, submitter, clock


def push(intake: Intake, clock: Clock, *series: list[bytes]) -> list[str]:
    """Receive ``series`` from CT1, let the quiet period pass, return the jobs it settles."""
    for data in itertools.chain(*series):
        intake.receive(data, "CT1")
    clock.now += 6
    return intake.settle_due()


RULE = {"name": "ct", "match": {"modality": "CT"}, "app": "hemorrhage", "review": True}


def test_quiet_period_one_job_and_no_duplicate_for_later_series(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    intake, submitter, clock = make(settings, [RULE])
    for data in series_files[0]:
        assert intake.receive(data, "CT1") == 0
    clock.now += 4
    for data in series_files[1]:  # a second association within the quiet period
        assert intake.receive(data, "PACS") == 0
    clock.now += 4
    assert intake.settle_due() == [] and intake.pending()  # not quiet long enough yet
    clock.now += 2
    assert intake.settle_due() == ["rp-000000000001"]
    spec, annotations = submitter.specs[0]
    assert spec.app == "hemorrhage" and spec.review.required
    study = spec.study_instance_uid
    assert spec.source.store_prefix == f"intake/{study}/"
    assert annotations["radpipe.io/intake-calling-ae"] == "CT1,PACS"
    # a later series: settled again, but the app already has its job
    assert push(intake, clock, series_files[2]) == []
    record = intake.read_record(study)
    assert len(record["jobs"]) == 1 and record["matchedRules"] == ["ct"]
    assert len(record["facts"]["series"]) == 3


def test_new_job_rule_starts_again_only_for_new_series(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    intake, submitter, clock = make(settings, [RULE | {"onLaterSeries": "new-job"}])
    assert len(push(intake, clock, series_files[0])) == 1
    assert push(intake, clock, series_files[0][:2]) == []  # the same series again: nothing new
    assert len(push(intake, clock, series_files[1])) == 1 and len(submitter.specs) == 2


def test_no_rule_no_job_resume_and_refusals(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    intake, submitter, clock = make(
        settings, [{"name": "mr", "match": {"modality": "MR"}, "app": "glioma"}]
    )
    assert intake.receive(b"not dicom", "CT1") == 0xC000
    for data in series_files[0]:
        intake.receive(data, "CT1")
    # a restarted receiver settles what was spooled but never settled
    fresh, _, fresh_clock = make(settings, [RULE])
    assert fresh.resume() == 1
    fresh_clock.now += 6
    assert len(fresh.settle_due()) == 1
    clock.now += 6
    assert intake.settle_due() == [] and submitter.specs == []
    settings.intake.allowed_calling_aes = []
    with pytest.raises(IntakeError, match="allowed_calling_aes is empty"):
        Receiver(intake)
    assert job_accession(StudyFacts("1.2.3", accession="A B/C")).startswith("I")
    assert job_accession(StudyFacts("1.2.3", accession="ACC-1")) == "ACC-1"


def test_fetch_copies_a_pushed_study_with_the_usual_manifest(
    settings: Settings, series_files: list[list[bytes]], tmp_path: Path
) -> None:
    intake, submitter, clock = make(settings, [RULE])
    push(intake, clock, *series_files[:2])
    spec = submitter.specs[0][0]
    job = AnalysisJob(metadata=ObjectMeta(name="rp-fetch1"), spec=spec)
    app = load_apps(None)["hemorrhage"].spec
    run = execute_stage(job, app, "fetch", intake.store, settings)
    assert run.result.complete, run.result.message
    manifest = run.result.data["manifest"]
    assert manifest["instance_count"] == len(series_files[0]) + len(series_files[1])
    assert manifest["series_count"] == 2 and not manifest["problems"]
    assert manifest["source"] == {"node": "intake", "transport": "push", "method": "c-store"}
    key = manifest["series"][0]["instances"][0]["key"]
    assert key.startswith("jobs/rp-fetch1/fetch/instances/") and intake.store.exists(key)
    assert all(s["complete"] and s["headers"]["Modality"] == "CT" for s in manifest["series"])


def spooled(intake: Intake, study: str) -> list[str]:
    return intake.store.list(f"intake/{study}/instances/")


def test_spool_is_deleted_only_after_every_job_ended_and_the_retention(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    intake, submitter, clock = make(settings, [RULE])
    (uid,) = push(intake, clock, series_files[0] + series_files[1])
    study = submitter.specs[0][0].study_instance_uid
    assert study and len(spooled(intake, study)) == len(series_files[0]) + len(series_files[1])
    later = datetime.now(UTC) + timedelta(days=30)

    # the job has not ended: kept, however old
    submitter.states[uid] = JobState(Phase.AWAITING_REVIEW)
    report = intake.clean_spool(now=later)
    assert report.kept_jobs_running == 1 and report.studies_deleted == 0
    assert spooled(intake, study)

    # ended: kept until the retention (24 h by default) has passed since it ended
    ended = datetime.now(UTC) + timedelta(hours=1)
    submitter.states[uid] = JobState(Phase.SUCCEEDED, ended)
    report = intake.clean_spool(now=ended + timedelta(hours=23, minutes=59))
    assert report.kept_retention == 1 and spooled(intake, study)
    report = intake.clean_spool(now=ended + timedelta(hours=24, seconds=1))
    assert report.studies_deleted == 1
    assert report.instances_deleted == len(series_files[0]) + len(series_files[1])
    assert spooled(intake, study) == []
    record = intake.read_record(study)  # the record stays: no second job on a re-push
    assert record["spoolDeletedAt"] and record["jobs"][0]["job"] == uid
    asked = len(submitter.asked)
    assert intake.clean_spool(now=later).studies_deleted == 0
    assert len(submitter.asked) == asked  # a deleted spool is not looked at again

    # the same study pushed again: no new job, and its new spool is cleaned in turn
    assert push(intake, clock, series_files[0]) == [] and len(submitter.specs) == 1
    assert "spoolDeletedAt" not in intake.read_record(study)
    assert intake.clean_spool(now=later).instances_deleted == len(series_files[0])


def test_spool_clean_up_keeps_studies_still_arriving_and_drops_vanished_jobs(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    intake, submitter, clock = make(settings, [RULE])
    settings.intake.spool_retention_hours = 0
    (uid,) = push(intake, clock, series_files[0])
    study = submitter.specs[0][0].study_instance_uid
    assert study
    # more of the study arrives (not settled yet): the clean-up leaves it alone
    submitter.states[uid] = JobState(Phase.FAILED, datetime.now(UTC) - timedelta(hours=1))
    intake.receive(series_files[1][0], "CT1")
    report = intake.clean_spool()
    assert report.kept_receiving == 1 and len(spooled(intake, study)) == len(series_files[0]) + 1
    clock.now += 6
    intake.settle_due()
    # a job deleted from the cluster (or the store) counts as ended
    submitter.states[uid] = None
    report = intake.clean_spool(now=datetime.now(UTC) + timedelta(minutes=1))
    assert report.studies_deleted == 1 and spooled(intake, study) == []
    # a study that matched no rule is cleaned after the retention from when it settled
    settings.intake.spool_prefix = "intake-norule/"
    quiet, _, quiet_clock = make(
        settings, [{"name": "mr", "match": {"modality": "MR"}, "app": "glioma"}]
    )
    for data in series_files[2]:
        quiet.receive(data, "CT1")
    quiet_clock.now += 6
    assert quiet.settle_due() == []
    settings.intake.spool_retention_hours = 2
    assert quiet.clean_spool().kept_retention == 1
    assert quiet.clean_spool(now=datetime.now(UTC) + timedelta(hours=3)).studies_deleted == 1


def test_receiver_cleans_the_spool_at_start_and_periodically(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    intake, submitter, clock = make(settings, [RULE])
    settings.intake.spool_retention_hours = 0
    settings.intake.spool_cleanup_interval_seconds = 0.5
    settings.intake.allowed_calling_aes = ["CT1"]
    settings.intake.bind = "127.0.0.1"
    settings.intake.port = 0
    (uid,) = push(intake, clock, series_files[0])
    study = submitter.specs[0][0].study_instance_uid
    assert study
    submitter.states[uid] = JobState(Phase.CANCELLED, datetime.now(UTC) - timedelta(seconds=1))
    receiver = Receiver(intake)
    receiver.start()
    try:
        deadline = time.monotonic() + 10
        while "spoolDeletedAt" not in intake.read_record(study) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spooled(intake, study) == [], "not cleaned at start"
        assert intake.read_record(study)["spoolDeletedInstances"] == len(series_files[0])
        # periodically: more of the study arrives while the receiver runs (no new job),
        # settles, and its new spool goes at the next clean-up
        for data in series_files[1]:
            assert intake.receive(data, "CT1") == 0
        clock.now += 6

        def cleaned_again() -> bool:
            record = intake.read_record(study)
            return record.get("spoolDeletedInstances") == len(series_files[1])

        deadline = time.monotonic() + 10
        while not cleaned_again() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cleaned_again(), "not cleaned periodically"
        assert spooled(intake, study) == [] and len(submitter.specs) == 1
    finally:
        receiver.stop()


def test_a_restarted_receiver_still_knows_who_sent_the_study(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    by_sender = RULE | {"match": {"modality": "CT", "callingAE": ["CT1"]}}
    intake, submitter, _ = make(settings, [by_sender])
    for data in series_files[0]:
        assert intake.receive(data, "CT1") == 0
    # the receiver stops before the study settles; a new one settles what was spooled
    fresh, fresh_submitter, fresh_clock = make(settings, [by_sender])
    assert fresh.resume() == 1
    fresh_clock.now += 6
    assert len(fresh.settle_due()) == 1 and submitter.specs == []
    spec, annotations = fresh_submitter.specs[0]
    assert annotations["radpipe.io/intake-calling-ae"] == "CT1"
    assert fresh.read_record(str(spec.study_instance_uid))["callingAEs"] == ["CT1"]
    # and the same request gets the same idempotency key (the cluster submitter's job name)
    again, again_submitter, again_clock = make(settings, [by_sender])
    again.store.delete(f"intake/{spec.study_instance_uid}/study.json")
    assert again.resume() == 1
    again_clock.now += 6
    again.settle_due()
    assert again_submitter.keys == fresh_submitter.keys and fresh_submitter.keys[0]


def test_a_job_that_could_not_be_created_is_tried_again_without_duplicates(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    """The API server (or the local store) fails for one rule: the other rule's job is
    made and recorded, and the failed one is tried again after a growing wait."""
    second = {"name": "ct-too", "match": {"modality": "CT"}, "app": "glioma"}
    intake, submitter, clock = make(settings, [RULE, second])
    real_submit = submitter.submit
    failures = {"glioma": 2}

    def flaky(spec: JobSpec, annotations: dict[str, str], key: str | None = None) -> str:
        if failures.get(spec.app, 0) > 0:
            failures[spec.app] -= 1
            raise ConnectionError("API server unavailable")
        return real_submit(spec, annotations, key)

    submitter.submit = flaky  # type: ignore[method-assign]
    assert len(push(intake, clock, series_files[0])) == 1  # hemorrhage made, glioma failed
    study = str(submitter.specs[0][0].study_instance_uid)
    assert intake.read_record(study)["failedRules"] == ["ct-too"]
    assert intake.pending() == [study]
    clock.now += 6  # the first retry waits two quiet periods
    assert intake.settle_due() == [] and failures["glioma"] == 1  # not tried yet
    clock.now += 5
    assert intake.settle_due() == [] and failures["glioma"] == 0  # tried, failed again
    clock.now += 19  # now it waits four quiet periods
    assert intake.settle_due() == []
    clock.now += 2
    assert len(intake.settle_due()) == 1
    assert [s.app for s, _ in submitter.specs] == ["hemorrhage", "glioma"]
    record = intake.read_record(study)
    assert record["failedRules"] == [] and [j["app"] for j in record["jobs"]] == [
        "hemorrhage",
        "glioma",
    ]
    assert intake.pending() == []
    # a failed rule recorded when the receiver stopped is settled again after a restart
    failures["glioma"] = 0
    record["failedRules"] = ["ct-too"]
    intake.store.put_json(f"intake/{study}/study.json", record)
    fresh, fresh_submitter, fresh_clock = make(settings, [RULE, second])
    assert fresh.resume() == 1
    fresh_clock.now += 6
    assert fresh.settle_due() == [] and fresh_submitter.specs == []  # both apps have jobs
    assert fresh.read_record(study)["failedRules"] == []


def test_an_instance_arriving_while_its_old_spool_is_deleted_is_refused_for_a_retry(
    settings: Settings, series_files: list[list[bytes]]
) -> None:
    intake, _, _ = make(settings, [RULE])
    study = str(pydicom.dcmread(__import__("io").BytesIO(series_files[0][0])).StudyInstanceUID)
    intake._cleaning.add(study)
    assert intake.receive(series_files[0][0], "CT1") == 0xA700  # out of resources: resend
    assert intake.pending() == [] and intake.store.list(f"intake/{study}/") == []
    intake._cleaning.discard(study)
    assert intake.receive(series_files[0][0], "CT1") == 0
