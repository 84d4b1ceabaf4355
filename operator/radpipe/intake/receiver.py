"""The DICOM receiver: a Storage SCP that spools pushed studies and starts jobs by rule.

* Only the calling AE titles in ``intake.allowed_calling_aes`` may associate (others are
  rejected at association time, "calling AE title not recognised"), and only when they
  call radpipe by its own AE title (``intake.ae_title``).
* Every instance is written to the artifact store at once, under
  ``intake/<StudyInstanceUID>/instances/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``;
  nothing of a study is held in memory.
* A study is *settled* once ``intake.quiet_period_seconds`` pass with no new instance of
  it, however many associations brought it. Then the routing rules are evaluated and the
  jobs they name are started, with ``source.storePrefix`` pointing at the spool so the
  fetch stage copies the study instead of querying a PACS.
* ``intake/<StudyInstanceUID>/study.json`` records who sent the study and which jobs it
  started (rule, app, job, the series it covered). More series arriving later settle the
  study again, but an app that already has a job for the study is not started twice,
  unless its rule says ``onLaterSeries: new-job`` and new series arrived.
* Spooled instances do not stay forever: once every job a study started has ended
  (Succeeded, Failed or Cancelled) and ``intake.spool_retention_hours`` have passed since
  the last of them ended (or since the study settled, when it started none), the study's
  ``instances/`` are deleted; ``study.json`` stays (no pixel data, no patient data) so a
  late re-push of the study still starts no second job. The receiver does this at start
  and every ``intake.spool_cleanup_interval_seconds``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from radpipe.api.models import ACCESSION_PATTERN, DeliverySpec, JobSpec, ReviewSpec, SourceSpec
from radpipe.api.models import utcnow as _utcnow
from radpipe.config import IntakeConfig, Settings
from radpipe.dicom.contexts import VERIFICATION
from radpipe.dicom.instances import CorruptInstance, inspect_instance
from radpipe.dicom.tls import server_context
from radpipe.intake.facts import Classifier, describe_facts, samples_from_store, study_facts
from radpipe.intake.rules import Rule, RuleSet, StudyFacts
from radpipe.intake.submitter import (
    CALLING_AE_ANNOTATION,
    RULE_ANNOTATION,
    JobState,
    Submitter,
)
from radpipe.store import ArtifactStore, ObjectNotFound

log = logging.getLogger(__name__)

STUDY_RECORD = "study.json"
INSTANCES = "instances/"
#: One small object per calling AE title that sent part of a study, so a receiver that
#: restarts before the study settles still knows the senders (rules match on them).
SENDERS = "senders/"
#: Settles of one study tried before the receiver gives up on it until it restarts (or
#: more of the study arrives); the wait doubles each time, from one quiet period.
MAX_SETTLE_ATTEMPTS = 8
#: Largest PDU we accept: big PDUs mean fewer round trips for 100 kB+ images.
MAX_PDU = 1 << 20


class IntakeError(Exception):
    """The receiver cannot start as configured; the message says what to fix."""


def build_ae(config: IntakeConfig) -> AE:
    """The receiver's Application Entity: Verification and every storage SOP class, in any
    transfer syntax, from the allowed calling AE titles only (the conformance statement is
    generated from this object)."""
    ae = AE(ae_title=config.ae_title)
    ae.maximum_pdu_size = MAX_PDU
    ae.network_timeout = 60
    ae.maximum_associations = config.max_associations
    ae.require_called_aet = True
    ae.require_calling_aet = list(config.allowed_calling_aes)
    ae.add_supported_context(VERIFICATION, ALL_TRANSFER_SYNTAXES)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(str(cx.abstract_syntax), ALL_TRANSFER_SYNTAXES)
    return ae


def job_accession(facts: StudyFacts) -> str:
    """The study's accession number, or a stable stand-in when it has none a job accepts."""
    if re.match(ACCESSION_PATTERN, facts.accession):
        return facts.accession
    # not patient data: a hash of the StudyInstanceUID, 16 characters
    return "I" + hashlib.sha256(facts.study_instance_uid.encode()).hexdigest()[:15]


@dataclass
class _Arrival:
    """A study receiving instances now (in memory until it settles)."""

    last: float
    calling_aes: set[str] = field(default_factory=set)
    instances: int = 0
    #: failed settles so far (the store or the API server was down): each waits longer
    attempts: int = 0


@dataclass
class CleanupReport:
    """What one spool clean-up did (counts only: no UIDs, no patient data)."""

    studies_deleted: int = 0
    instances_deleted: int = 0
    kept_jobs_running: int = 0
    kept_retention: int = 0
    kept_receiving: int = 0
    failed: int = 0


class Intake:
    """Spools instances and settles quiet studies into jobs; no networking here, so the
    logic is tested without sockets (the :class:`Receiver` feeds it)."""

    def __init__(
        self,
        settings: Settings,
        store: ArtifactStore,
        rules: RuleSet,
        submitter: Submitter,
        classifier: Classifier | None = None,
        classifier_note: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.config = settings.intake
        self.store = store
        self.rules = rules
        self.submitter = submitter
        self.classifier = classifier
        self.classifier_note = classifier_note
        self.clock = clock
        self._pending: dict[str, _Arrival] = {}
        self._cleaning: set[str] = set()
        self._lock = threading.Lock()
        self._settle_lock = threading.Lock()

    def prefix(self, study_uid: str) -> str:
        """Store prefix of one spooled study."""
        return f"{self.config.spool_prefix}{study_uid}/"

    # -- arriving ------------------------------------------------------------------------

    def receive(self, data: bytes, calling_ae: str) -> int:
        """Spool one instance's Part-10 bytes; returns the C-STORE status to answer."""
        try:
            header = inspect_instance(data)
        except CorruptInstance as bad:
            log.warning("refused an unusable instance from %s: %s", calling_ae, bad.reason)
            return 0xC000  # Error: cannot understand
        study = header.study_instance_uid
        key = (
            f"{self.prefix(study)}{INSTANCES}{header.series_instance_uid}/"
            f"{header.sop_instance_uid}.dcm"
        )
        with self._lock:
            if study in self._cleaning:  # its spool is being deleted right now: try again
                log.info("asked %s to resend: the study's old spool is being deleted", calling_ae)
                return 0xA700  # Refused: out of resources
            # pending before the write, so the clean-up never deletes what is arriving
            arrival = self._pending.setdefault(study, _Arrival(self.clock()))
            arrival.last = self.clock()
            new_sender = calling_ae not in arrival.calling_aes
            arrival.calling_aes.add(calling_ae)
        try:
            if new_sender:
                sender = hashlib.sha256(calling_ae.encode()).hexdigest()[:16]
                self.store.put_json(
                    f"{self.prefix(study)}{SENDERS}{sender}.json", {"callingAE": calling_ae}
                )
            self.store.put_bytes(key, data)
        except Exception:  # the store is down or full: tell the sender to try again later
            with self._lock:
                if new_sender:  # write its marker with the next instance
                    arrival.calling_aes.discard(calling_ae)
            log.exception("cannot spool an instance")
            return 0xA700  # Refused: out of resources
        with self._lock:  # (settled meanwhile, after a very slow write: pending again)
            arrival = self._pending.setdefault(study, arrival)
            arrival.last = self.clock()
            arrival.instances += 1
        return 0x0000

    def pending(self) -> list[str]:
        """Studies still receiving (not settled yet)."""
        with self._lock:
            return sorted(self._pending)

    def resume(self) -> int:
        """After a restart: studies spooled but never settled (or whose rules could not all
        start their jobs) settle after a quiet period."""
        studies: set[str] = set()
        settled: set[str] = set()
        for key in self.store.list(self.config.spool_prefix):
            rest = key[len(self.config.spool_prefix) :]
            study, _, tail = rest.partition("/")
            (settled if tail == STUDY_RECORD else studies).add(study)
        todo = studies - settled
        for study in settled & studies:
            try:
                if self.read_record(study).get("failedRules"):
                    todo.add(study)
            except Exception:  # an unreadable record: settle again, it is rewritten
                todo.add(study)
        with self._lock:
            for study in todo:
                self._pending.setdefault(study, _Arrival(self.clock()))
        return len(todo)

    # -- settling ------------------------------------------------------------------------

    def settle_due(self) -> list[str]:
        """Settle every study quiet for the quiet period; returns the jobs started. A study
        whose settle failed (or whose rules could not all start their jobs) is tried again
        after a wait that doubles each time."""
        now = self.clock()
        quiet = self.config.quiet_period_seconds
        with self._lock:
            due = {
                study: arrival
                for study, arrival in self._pending.items()
                if now - arrival.last >= quiet * 2 ** min(arrival.attempts, 10)
            }
            for study in due:
                del self._pending[study]
        started: list[str] = []
        for study, arrival in sorted(due.items()):
            try:
                done, failed = self._settle(study, arrival.calling_aes)
                started += done
            except Exception:  # one bad study must not stop the others
                log.exception("settling a study failed")
                failed = ["(settle)"]
            if failed:
                self._retry(study, arrival)
        return started

    def _retry(self, study: str, arrival: _Arrival) -> None:
        attempts = arrival.attempts + 1
        if attempts >= MAX_SETTLE_ATTEMPTS:
            log.error(
                "gave up settling a study after %d attempts; it stays spooled and is tried "
                "again when the receiver restarts or more of it arrives",
                attempts,
            )
            return
        with self._lock:
            again = self._pending.setdefault(study, _Arrival(self.clock()))
            again.calling_aes |= arrival.calling_aes
            again.attempts = max(again.attempts, attempts)
        log.warning(
            "settling a study is tried again in %.0f s (attempt %d of %d)",
            self.config.quiet_period_seconds * 2 ** min(attempts, 10),
            attempts + 1,
            MAX_SETTLE_ATTEMPTS,
        )

    def read_record(self, study_uid: str) -> dict[str, Any]:
        """The study's record (senders, jobs started), or an empty one."""
        try:
            record: dict[str, Any] = self.store.get_json(self.prefix(study_uid) + STUDY_RECORD)
            return record
        except ObjectNotFound:
            return {"studyInstanceUID": study_uid, "callingAEs": [], "jobs": []}

    def settle(self, study_uid: str, calling_aes: set[str] | None = None) -> list[str]:
        """Evaluate the rules on a spooled study and start the jobs they name."""
        return self._settle(study_uid, calling_aes)[0]

    def _settle(
        self, study_uid: str, calling_aes: set[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """(jobs started, rules whose job could not be started)."""
        with self._settle_lock:  # one study at a time: the record is read-modify-write
            record = self.read_record(study_uid)
            senders = sorted(
                set(record.get("callingAEs", []))
                | (calling_aes or set())
                | self._spooled_senders(study_uid)
            )
            samples = samples_from_store(self.store, self.prefix(study_uid))
            if not samples:
                return [], []
            facts = study_facts(
                samples,
                calling_aes=senders,
                classifier=self.classifier,
                classifier_note=self.classifier_note,
            )
            started: list[str] = []
            matched: list[str] = []
            failed: list[str] = []
            for evaluation in self.rules.evaluate(facts):
                if not evaluation.starts:
                    continue
                matched.append(evaluation.rule.name)
                try:
                    uid = self._start(evaluation.rule, facts, record)
                except Exception:  # the API server is down, say: the others still start
                    log.exception(
                        "rule %s could not start app %s", evaluation.rule.name, evaluation.rule.app
                    )
                    failed.append(evaluation.rule.name)
                    continue
                if uid is not None:
                    started.append(uid)
            record.pop("spoolDeletedAt", None)  # new instances: the clean-up looks again
            record.update(
                {
                    "studyInstanceUID": study_uid,
                    "callingAEs": senders,
                    "settledAt": _utcnow().isoformat(timespec="seconds"),
                    "instances": sum(s.instances for s in facts.series),
                    "facts": describe_facts(facts),
                    "matchedRules": matched,
                    "failedRules": failed,
                }
            )
            self.store.put_json(self.prefix(study_uid) + STUDY_RECORD, record)
        log.info(
            "study settled: %d series, %d instances from %s; rules matched: %s; jobs started: %s%s",
            len(facts.series),
            record["instances"],
            ", ".join(senders) or "?",
            ", ".join(matched) or "none",
            ", ".join(started) or "none",
            f"; rules that could not start their job: {', '.join(failed)}" if failed else "",
        )
        return started, failed

    def _spooled_senders(self, study_uid: str) -> set[str]:
        """The calling AE titles recorded in the spool as the instances arrived."""
        found: set[str] = set()
        for key in self.store.list(self.prefix(study_uid) + SENDERS):
            try:
                found.add(str(self.store.get_json(key)["callingAE"]))
            except (ObjectNotFound, KeyError, ValueError):
                continue
        return found

    def _start(self, rule: Rule, facts: StudyFacts, record: dict[str, Any]) -> str | None:
        series_now = sorted(s.series_instance_uid for s in facts.series)
        earlier = [j for j in record.get("jobs", []) if j.get("app") == rule.app]
        if earlier:
            covered = {uid for job in earlier for uid in job.get("series", [])}
            new = [uid for uid in series_now if uid not in covered]
            if rule.on_later_series != "new-job" or not new:
                log.info(
                    "app %s already has job %s for this study; rule %s starts no other",
                    rule.app,
                    earlier[-1].get("job"),
                    rule.name,
                )
                return None
        spec = self._spec(rule, facts)
        uid = self.submitter.submit(
            spec,
            {RULE_ANNOTATION: rule.name, CALLING_AE_ANNOTATION: ",".join(facts.calling_aes)},
            key="\n".join([facts.study_instance_uid, rule.app, *series_now]),
        )
        record.setdefault("jobs", []).append(
            {
                "rule": rule.name,
                "app": rule.app,
                "job": uid,
                "series": series_now,
                "at": _utcnow().isoformat(timespec="seconds"),
            }
        )
        log.info("rule %s started app %s", rule.name, rule.app, extra={"job": uid})
        return uid

    def _spec(self, rule: Rule, facts: StudyFacts) -> JobSpec:
        delivery = rule.delivery
        if delivery is None:
            default = self.settings.default_pacs
            delivery = DeliverySpec(pacs=[default] if default else [])
        return JobSpec(
            accession=job_accession(facts),
            app=rule.app,
            options=dict(rule.options),
            priority=rule.priority,
            source=SourceSpec(store_prefix=self.prefix(facts.study_instance_uid)),
            delivery=delivery,
            study_instance_uid=facts.study_instance_uid,
            review=ReviewSpec(required=rule.review),
        )

    # -- spool clean-up ------------------------------------------------------------------

    def clean_spool(self, now: datetime | None = None) -> CleanupReport:
        """Delete the spooled instances of every study whose jobs have all ended at least
        ``intake.spool_retention_hours`` ago; the study records stay. Logs counts only."""
        now = now or _utcnow()
        retention = timedelta(hours=self.config.spool_retention_hours)
        spool = self.config.spool_prefix
        report = CleanupReport()
        studies = [
            key[len(spool) : -len("/" + STUDY_RECORD)]
            for key, _ in self.store.list_with_info(spool, suffix="/" + STUDY_RECORD)
            if key.count("/", len(spool)) == 1
        ]
        for study in studies:
            try:
                self._clean_study(study, now, retention, report)
            except Exception:  # one study (or an API outage) must not stop the others
                report.failed += 1
                log.exception("spool clean-up of a study failed; it is tried again later")
        log.info(
            "spool clean-up: %d studies deleted (%d instances); kept %d with jobs not ended, "
            "%d within the %g h retention, %d receiving; %d failed",
            report.studies_deleted,
            report.instances_deleted,
            report.kept_jobs_running,
            report.kept_retention,
            self.config.spool_retention_hours,
            report.kept_receiving,
            report.failed,
        )
        return report

    def _clean_study(
        self, study: str, now: datetime, retention: timedelta, report: CleanupReport
    ) -> None:
        record = self.read_record(study)
        if record.get("spoolDeletedAt"):
            # deleted before; instances that arrived since are a new arrival's, settled
            # again (which clears the mark) before they are looked at
            return
        jobs = [str(j["job"]) for j in record.get("jobs", []) if j.get("job")]
        states: dict[str, JobState | None] = self.submitter.job_states(study, jobs) if jobs else {}
        if any(state is not None and not state.phase.is_final for state in states.values()):
            report.kept_jobs_running += 1
            return
        ended = [_parse_time(record.get("settledAt"))]
        ended += [state.finished_at for state in states.values() if state is not None]
        last = max((t for t in ended if t is not None), default=None)
        if last is not None and now - last < retention:
            report.kept_retention += 1
            return
        with self._settle_lock:  # no settle of this study meanwhile
            with self._lock:
                if study in self._pending:  # more of it is arriving: not now
                    report.kept_receiving += 1
                    return
                self._cleaning.add(study)
            try:
                deleted = self.store.delete_prefix(self.prefix(study) + INSTANCES)
                record = self.read_record(study)
                record["spoolDeletedAt"] = _utcnow().isoformat(timespec="seconds")
                record["spoolDeletedInstances"] = deleted
                self.store.put_json(self.prefix(study) + STUDY_RECORD, record)
            finally:
                with self._lock:
                    self._cleaning.discard(study)
        report.studies_deleted += 1
        report.instances_deleted += deleted


def _parse_time(value: Any) -> datetime | None:
    """An ISO time from a study record (UTC when it names no zone), or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_utcnow().tzinfo)


class Receiver:
    """The network side: a pynetdicom Storage SCP feeding an :class:`Intake`, and a
    background thread that settles quiet studies."""

    def __init__(self, intake: Intake) -> None:
        config = intake.config
        if not config.allowed_calling_aes:
            raise IntakeError(
                "intake.allowed_calling_aes is empty, so no sender could connect: list the AE "
                "titles of the modalities and PACS that may push studies to radpipe"
            )
        self.intake = intake
        self.ae = build_ae(config)
        self.port = config.port
        self._server: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _on_store(self, event: evt.Event) -> int:
        calling = str(event.assoc.requestor.ae_title).strip()
        return self.intake.receive(event.encoded_dataset(), calling)

    @staticmethod
    def _on_echo(event: evt.Event) -> int:
        return 0x0000

    def start(self) -> int:
        """Listen and start settling; returns the port (useful with port 0)."""
        config = self.intake.config
        ssl_context = server_context(config.tls) if config.tls else None
        try:
            self._server = self.ae.start_server(
                (config.bind, config.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)],
                ssl_context=ssl_context,
            )
        except OSError as err:
            raise IntakeError(
                f"cannot listen on {config.bind}:{config.port}: {err.strerror}; "
                "set intake.port to a free port"
            ) from err
        self.port = int(self._server.server_address[1])
        resumed = self.intake.resume()
        self._thread = threading.Thread(target=self._settle_loop, name="radpipe-intake-settle")
        self._thread.daemon = True
        self._thread.start()
        log.info(
            "receiver %s listening on %s:%d (quiet period %.1f s%s)",
            config.ae_title,
            config.bind,
            self.port,
            config.quiet_period_seconds,
            f", {resumed} spooled studies to settle" if resumed else "",
        )
        return self.port

    def _settle_loop(self) -> None:
        """Settle quiet studies; clean the spool at start and every cleanup interval."""
        config = self.intake.config
        tick = min(1.0, config.quiet_period_seconds / 4)
        next_cleanup = time.monotonic()  # at start
        while not self._stop.is_set():
            if time.monotonic() >= next_cleanup:
                try:
                    self.intake.clean_spool()
                except Exception:  # the store is down: try again next interval
                    log.exception("spool clean-up failed")
                next_cleanup = time.monotonic() + config.spool_cleanup_interval_seconds
            self.intake.settle_due()
            self._stop.wait(tick)

    def stop(self) -> None:
        """Stop listening and settling (studies still arriving settle after a restart)."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
