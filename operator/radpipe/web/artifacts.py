"""Finding what the job page shows from the artifact store: the PDF report and overlay
images. Only these are served to the browser; raw DICOM and model inputs never are."""

from __future__ import annotations

from radpipe.api.models import AnalysisJob
from radpipe.pipeline.contract import stage_prefix
from radpipe.store import ArtifactStore

#: Stages whose outputs are inputs (DICOM, volumes), never shown on the page.
_HIDDEN_STAGES = frozenset({"fetch", "classify", "preprocess", "infer"})
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
MAX_IMAGES = 12


def _store_key(reference: str, uid: str) -> str | None:
    """Turn ``reportObject`` (a key, or s3://bucket/prefix/jobs/...) into a store key."""
    marker = f"jobs/{uid}/"
    at = reference.find(marker)
    return reference[at:] if at >= 0 else None


def report_key(store: ArtifactStore, job: AnalysisJob) -> str | None:
    """The store key of the job's PDF report, or None when there is none (yet)."""
    reference = job.status.results.get("reportObject")
    if isinstance(reference, str):
        key = _store_key(reference, job.uid)
        if key and key.endswith(".pdf") and store.exists(key):
            return key
    default = stage_prefix(job.uid, "report") + "report.pdf"
    if store.exists(default):
        return default
    pdfs = [k for k in store.list(stage_prefix(job.uid, "report")) if k.endswith(".pdf")]
    return pdfs[0] if pdfs else None


def image_keys(store: ArtifactStore, job: AnalysisJob) -> list[str]:
    """Overlay/figure images the result stages wrote, in stage order (at most 12)."""
    keys: list[str] = []
    for stage in job.status.stages:
        if stage.name in _HIDDEN_STAGES:
            continue
        for key in store.list(stage_prefix(job.uid, stage.name)):
            if any(key.lower().endswith(ext) for ext in IMAGE_TYPES):
                keys.append(key)
    return keys[:MAX_IMAGES]


def image_type(key: str) -> str:
    """The media type of an image key."""
    for ext, media in IMAGE_TYPES.items():
        if key.lower().endswith(ext):
            return media
    return "application/octet-stream"
