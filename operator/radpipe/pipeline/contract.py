"""The stage contract: what a stage is, what it may touch, and what it leaves behind.

A stage is a named step with declared inputs (the upstream stages whose outputs it reads)
and outputs. It reads and writes only through the artifact store, under
``jobs/<job-uid>/<stage>/``, and finishes by writing ``result.json`` there: state, outputs
(with sizes and checksums), metrics, a small structured ``data`` document, provenance and
timings. ``result.json`` is written last, so its presence with state ``succeeded`` is the
commit of the whole stage.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from radpipe.api.models import AnalysisJob, AppSpec, Phase, StageSpec
from radpipe.store import ArtifactStore, ObjectInfo, ObjectNotFound

if TYPE_CHECKING:
    from radpipe.config import Settings

RESULT_FILE = "result.json"
RESULT_SCHEMA_VERSION = 1

ProgressCallback = Callable[[float, str], None]


class StageError(Exception):
    """A stage failure that retrying will not fix (bad input, missing series...).

    ``message`` says what went wrong; ``hint`` says what a person can do about it.
    """

    retryable = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class TransientStageError(StageError):
    """A failure that may go away by itself (a server down, a timeout): retried."""

    retryable = True


class HoldJob(StageError):
    """The stage cannot finish now, and the job should wait in ``phase`` until released.

    Nothing is lost and nothing is recomputed: the stage runs again from its start when
    a person (or a later retry) releases the job, e.g. ``radpipe release JOB``.
    """

    phase: ClassVar[Phase]


class DeliveryPending(HoldJob):
    """A delivery destination stayed down: the job waits in DeliveryPending."""

    phase = Phase.DELIVERY_PENDING


class AwaitingReview(HoldJob):
    """Results are held until a radiologist accepts them: the job waits in AwaitingReview."""

    phase = Phase.AWAITING_REVIEW


def stage_prefix(job_uid: str, stage: str) -> str:
    """The store prefix that holds everything one stage of one job wrote."""
    return f"jobs/{job_uid}/{stage}/"


def job_prefix(job_uid: str) -> str:
    """The store prefix of a whole job."""
    return f"jobs/{job_uid}/"


class Timings(BaseModel):
    """When a stage ran."""

    started_at: str
    finished_at: str
    seconds: float


class StageResult(BaseModel):
    """The ``result.json`` a stage leaves behind."""

    schema_version: int = RESULT_SCHEMA_VERSION
    job: str
    stage: str
    state: Literal["succeeded", "failed", "held"]
    attempt: int
    message: str | None = None
    retryable: bool = False
    #: With state "held": the phase the job waits in (DeliveryPending, AwaitingReview).
    hold: Phase | None = None
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    timings: Timings | None = None

    @property
    def complete(self) -> bool:
        """Whether the stage finished well (a re-run would do nothing)."""
        return self.state == "succeeded"


@dataclass
class StageOutcome:
    """What a stage's ``run`` returns besides the artifacts it wrote through the context."""

    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


@dataclass
class StageContext:
    """Everything a running stage may use. Artifacts go through the ``put_*`` methods."""

    job: AnalysisJob
    app: AppSpec
    spec: StageSpec
    store: ArtifactStore
    settings: Settings
    attempt: int
    workdir: Path
    progress_callback: ProgressCallback | None = None
    outputs: dict[str, ObjectInfo] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        """This stage's name."""
        return self.spec.name

    @property
    def prefix(self) -> str:
        """Store prefix of this stage's artifacts."""
        return stage_prefix(self.job.uid, self.stage)

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that tags every line with job uid and stage (never patient data)."""
        return logging.LoggerAdapter(
            logging.getLogger(f"radpipe.stages.{self.stage}"),
            {"job": self.job.uid, "stage": self.stage},
        )

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0..1) to whoever runs the stage (progress bar, status)."""
        if self.progress_callback is not None:
            self.progress_callback(max(0.0, min(1.0, fraction)), message)

    # -- writing this stage's outputs ---------------------------------------------------

    def _record(self, name: str, info: ObjectInfo) -> ObjectInfo:
        self.outputs[name] = info
        return info

    def put_bytes(self, name: str, data: bytes) -> ObjectInfo:
        """Write an output artifact ``name`` (a relative path) from bytes."""
        return self._record(name, self.store.put_bytes(self.prefix + name, data))

    def put_file(self, name: str, path: Path) -> ObjectInfo:
        """Write an output artifact ``name`` by streaming a local file."""
        return self._record(name, self.store.put_file(self.prefix + name, path))

    def put_json(self, name: str, value: Any) -> ObjectInfo:
        """Write an output artifact ``name`` as JSON."""
        return self._record(name, self.store.put_json(self.prefix + name, value))

    # -- reading upstream results -------------------------------------------------------

    def result_of(self, stage: str) -> StageResult:
        """The committed result of an upstream stage; StageError when it is missing."""
        result = read_result(self.store, self.job.uid, stage)
        if result is None or not result.complete:
            raise StageError(
                f"stage {self.stage} needs the result of stage {stage}, which has not succeeded",
                hint=f"run stage {stage} first (radpipe stage run --job {self.job.uid} "
                f"--stage {stage})",
            )
        return result

    def input_key(self, stage: str, name: str) -> str:
        """The store key of output ``name`` of an upstream stage."""
        return stage_prefix(self.job.uid, stage) + name

    def read_input(self, stage: str, name: str) -> bytes:
        """Read an upstream output, verifying the checksum that stage recorded."""
        output = self.result_of(stage).outputs.get(name)
        if output is None:
            raise StageError(f"stage {stage} recorded no output named {name!r}")
        return self.store.get_bytes(self.input_key(stage, name), output["sha256"])

    def fetch_input(self, stage: str, name: str, dest: Path) -> Path:
        """Stream an upstream output to a local file, verifying its checksum."""
        output = self.result_of(stage).outputs.get(name)
        if output is None:
            raise StageError(f"stage {stage} recorded no output named {name!r}")
        self.store.get_file(self.input_key(stage, name), dest, output["sha256"])
        return dest


class Stage(ABC):
    """Base class of every pipeline stage. Subclasses set ``name`` and implement ``run``."""

    #: The stage's name as used in app definitions and store prefixes.
    name: ClassVar[str]
    #: Bumped when the stage's outputs change meaning; recorded in provenance.
    version: ClassVar[str] = "1"
    #: Upstream stages whose results this stage reads.
    requires: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def run(self, ctx: StageContext) -> StageOutcome:
        """Do the work: read inputs, write outputs through ``ctx``, return the outcome.

        Raise :class:`StageError` for hopeless failures and :class:`TransientStageError`
        for ones worth retrying; both messages reach the person who asked for the job.
        """


def result_key(job_uid: str, stage: str) -> str:
    """Store key of a stage's ``result.json``."""
    return stage_prefix(job_uid, stage) + RESULT_FILE


def read_result(store: ArtifactStore, job_uid: str, stage: str) -> StageResult | None:
    """The stage's ``result.json``, or None when it has not been written."""
    try:
        return StageResult.model_validate(store.get_json(result_key(job_uid, stage)))
    except ObjectNotFound:
        return None
