"""One machine-readable document describing a job and everything it produced.

``radpipe run --json`` and ``radpipe status --json`` print it, so scripts can drive radpipe:
phase, per-stage state and timings, selected series, findings, model versions, every
artifact (store key, size, checksum) and, for DICOM outputs, SOP Class/Instance UIDs and
where they were delivered.
"""

from __future__ import annotations

from typing import Any

from radpipe.api.models import AnalysisJob
from radpipe.pipeline.contract import read_result
from radpipe.store import ArtifactStore

#: Version of this document's layout; bumped when a key changes meaning.
DOCUMENT_VERSION = 1


def _stage_entry(job: AnalysisJob, store: ArtifactStore, name: str) -> dict[str, Any]:
    status = job.status.stage(name)
    entry: dict[str, Any] = {
        "name": name,
        "state": status.state.value,
        "attempts": status.attempts,
        "startedAt": status.started_at.isoformat() if status.started_at else None,
        "finishedAt": status.finished_at.isoformat() if status.finished_at else None,
        "seconds": None,
        "message": status.message,
    }
    result = read_result(store, job.uid, name)
    if result is not None:
        entry["seconds"] = result.timings.seconds if result.timings else None
        entry["metrics"] = result.metrics
        entry["outputs"] = {
            output: {"key": info["key"], "size": info["size"], "sha256": info["sha256"]}
            for output, info in sorted(result.outputs.items())
        }
    return entry


def _dicom_outputs(job: AnalysisJob, store: ArtifactStore) -> list[dict[str, Any]]:
    report = read_result(store, job.uid, "report") if _has_stage(job, "report") else None
    if report is None or not report.complete:
        return []
    deliver = read_result(store, job.uid, "deliver") if _has_stage(job, "deliver") else None
    delivered_to: list[str] = []
    if deliver is not None and deliver.complete:
        delivered_to = [
            target
            for target in deliver.data.get("results", {}).get("deliveredTo", [])
            if not str(target).startswith("mailto:")
        ]
    objects = []
    for item in report.data.get("dicomObjects", []):
        objects.append(
            {
                "kind": item.get("kind"),
                "key": f"jobs/{job.uid}/report/{item.get('name')}",
                "sopClassUID": item.get("sopClassUID"),
                "sopInstanceUID": item.get("sopInstanceUID"),
                "seriesInstanceUID": item.get("seriesInstanceUID"),
                "studyInstanceUID": item.get("studyInstanceUID"),
                "deliveredTo": delivered_to,
            }
        )
    return objects


def _has_stage(job: AnalysisJob, name: str) -> bool:
    return any(stage.name == name for stage in job.status.stages)


def job_document(job: AnalysisJob, store: ArtifactStore) -> dict[str, Any]:
    """The job as one JSON-ready document (see the module docstring)."""
    stages = [_stage_entry(job, store, stage.name) for stage in job.status.stages]
    report_key = job.status.results.get("reportObject")
    return {
        "documentVersion": DOCUMENT_VERSION,
        "job": job.uid,
        "app": job.spec.app,
        "accession": job.spec.accession,
        "phase": job.status.phase.value,
        "message": job.status.message,
        "startedAt": job.status.started_at.isoformat() if job.status.started_at else None,
        "finishedAt": job.status.finished_at.isoformat() if job.status.finished_at else None,
        "stages": stages,
        "selectedSeries": job.status.selected_series,
        "findings": {k: v for k, v in job.status.results.items() if k != "reportObject"},
        "modelVersions": job.status.model_versions,
        "report": {"key": report_key, "location": f"{store.location.rstrip('/')}/{report_key}"}
        if report_key
        else None,
        "dicomOutputs": _dicom_outputs(job, store),
        "store": store.location,
    }
