"""Running one stage of one job under the contract: idempotent and crash-safe.

The same function runs a stage in-process (local runner), inside a Kubernetes Job pod
(``radpipe stage run``) and in tests.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from radpipe.api.models import AnalysisJob, AppSpec, utcnow
from radpipe.pipeline.contract import (
    HoldJob,
    ProgressCallback,
    StageContext,
    StageError,
    StageResult,
    Timings,
    read_result,
    result_key,
    stage_prefix,
)
from radpipe.pipeline.provenance import base_provenance
from radpipe.pipeline.registry import get_stage
from radpipe.store import ArtifactStore, StoreError

if TYPE_CHECKING:
    from radpipe.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRun:
    """The outcome of :func:`execute_stage`: the result, and whether work was done."""

    result: StageResult
    reused: bool


def execute_stage(
    job: AnalysisJob,
    app: AppSpec,
    stage_name: str,
    store: ArtifactStore,
    settings: Settings,
    *,
    attempt: int = 1,
    progress: ProgressCallback | None = None,
) -> StageRun:
    """Run ``stage_name`` of ``job`` unless its committed result already exists.

    - A succeeded ``result.json`` means the stage is done: nothing runs (idempotent).
    - Anything else under the stage's prefix is left from a crashed or failed attempt and
      is deleted first, so every attempt starts cleanly.
    - ``result.json`` is written last; a failed attempt writes one with state ``failed``
      and the message, which the next attempt clears.
    """
    existing = read_result(store, job.uid, stage_name)
    if existing is not None and existing.complete:
        log.info("stage already complete, reusing its result", extra=_tags(job, stage_name))
        return StageRun(existing, reused=True)

    removed = store.delete_prefix(stage_prefix(job.uid, stage_name))
    if removed:
        log.info(
            "cleared %d objects left by an earlier attempt", removed, extra=_tags(job, stage_name)
        )

    spec = app.stage(stage_name)
    stage = get_stage(stage_name)()
    started = utcnow()
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"radpipe-{stage_name}-") as workdir:
        ctx = StageContext(
            job=job,
            app=app,
            spec=spec,
            store=store,
            settings=settings,
            attempt=attempt,
            workdir=Path(workdir),
            progress_callback=progress,
        )
        provenance = base_provenance(stage_name, stage.version, attempt)
        try:
            for upstream in stage.requires:
                ctx.result_of(upstream)
            outcome = stage.run(ctx)
        except HoldJob as err:
            log.info(
                "stage holds the job in %s: %s", err.phase.value, err, extra=_tags(job, stage_name)
            )
            result = StageResult(
                job=job.uid,
                stage=stage_name,
                state="held",
                attempt=attempt,
                message=str(err),
                hold=err.phase,
                provenance=provenance,
            )
        except StageError as err:
            result = _failure(job, stage_name, attempt, str(err), err.retryable, provenance)
        except StoreError as err:
            # The artifact store itself failing is worth retrying (MinIO restarting...).
            result = _failure(job, stage_name, attempt, str(err), True, provenance)
        except Exception as err:  # a bug: keep the job, say where, keep the traceback in logs
            log.exception("stage raised unexpectedly", extra=_tags(job, stage_name))
            message = f"internal error in stage {stage_name}: {type(err).__name__}: {err}"
            result = _failure(job, stage_name, attempt, message, True, provenance)
        else:
            provenance.update(outcome.provenance)
            result = StageResult(
                job=job.uid,
                stage=stage_name,
                state="succeeded",
                attempt=attempt,
                message=outcome.message,
                outputs={name: info.as_dict() for name, info in ctx.outputs.items()},
                metrics=outcome.metrics,
                data=outcome.data,
                provenance=provenance,
            )
    result.timings = Timings(
        started_at=started.isoformat(),
        finished_at=utcnow().isoformat(),
        seconds=round(time.perf_counter() - clock, 3),
    )
    # The commit point of the stage.
    store.put_json(result_key(job.uid, stage_name), result.model_dump(mode="json"))
    return StageRun(result, reused=False)


def _failure(
    job: AnalysisJob,
    stage: str,
    attempt: int,
    message: str,
    retryable: bool,
    provenance: dict[str, object],
) -> StageResult:
    log.warning("stage failed: %s", message, extra=_tags(job, stage))
    return StageResult(
        job=job.uid,
        stage=stage,
        state="failed",
        attempt=attempt,
        message=message,
        retryable=retryable,
        provenance=provenance,
    )


def _tags(job: AnalysisJob, stage: str) -> dict[str, str]:
    return {"job": job.uid, "stage": stage}
