"""The classify stage: find, for each role the app needs, the series that fills it.

Reads the fetch stage's manifest, opens one instance per series from the artifact store
(header only), predicts every series' class in one model call, applies the app's selection
rules (``spec.series``) and records, in ``result.json`` ``data`` and in
``classification.json``: every series with its class and probability, the series chosen
for each role and why, and ``selectedSeries`` (copied into the job status by the runner).

A required role that no series fills with enough confidence fails the job here, with a
message naming the missing contrast and the series that came closest.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from radpipe.pipeline.contract import Stage, StageContext, StageError, StageOutcome
from radpipe.series.headers import SeriesHeader
from radpipe.store import ArtifactStore, StoreError

OUTPUT_FILE = "classification.json"


def read_series_header(store: ArtifactStore, entry: dict[str, Any]) -> SeriesHeader:
    """The header of one manifest series: its first instance, else the manifest's copy."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    count = int(entry.get("instance_count") or 0) or None
    fallback = dict(entry.get("headers") or {})
    fallback.setdefault("SeriesInstanceUID", entry.get("series_instance_uid"))
    fallback.setdefault("SeriesNumber", entry.get("series_number"))
    fallback.setdefault("SeriesDescription", entry.get("series_description"))
    fallback.setdefault("Modality", entry.get("modality"))
    for instance in (entry.get("instances") or [])[:3]:
        try:
            # one whole instance in memory: S3 streams cannot seek, which pydicom needs
            with store.open(instance["key"]) as stream:
                dataset = dcmread(io.BytesIO(stream.read()), stop_before_pixels=True)
        except (InvalidDicomError, StoreError, OSError, KeyError, ValueError, EOFError):
            continue
        header = SeriesHeader.from_dataset(dataset, count)
        for keyword, value in SeriesHeader.from_mapping(fallback).attrs.items():
            header.attrs.setdefault(keyword, value)
        return header
    return SeriesHeader.from_mapping(fallback, count)


class ClassifyStage(Stage):
    """Classify every series of the fetched study and pick the app's series."""

    name: ClassVar[str] = "classify"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("fetch",)

    def run(self, ctx: StageContext) -> StageOutcome:
        """Read headers, predict, select; fail with a clear message when a role is missing."""
        from radpipe.series.model import ModelNotFound, SeriesClassifier
        from radpipe.series.selection import SelectionError
        from radpipe.series.study import classify_study

        manifest = ctx.result_of("fetch").data.get("manifest") or {}
        entries = list(manifest.get("series") or [])
        usable = [e for e in entries if e.get("complete", True)]
        skipped = [e for e in entries if not e.get("complete", True)]
        if not usable:
            raise StageError(
                "the fetched study has no complete series to classify",
                hint="check the fetch stage's manifest problems and fetch the study again",
            )
        try:
            classifier = SeriesClassifier.load(ctx.settings)
        except ModelNotFound as err:
            raise StageError(str(err), hint="install the series-classifier model") from err

        headers = []
        for index, entry in enumerate(usable):
            headers.append(read_series_header(ctx.store, entry))
            ctx.progress((index + 1) / (len(usable) + 1), f"read {index + 1} series headers")
        for header in headers:
            if not header.study_uid and manifest.get("study_instance_uid"):
                header.attrs["StudyInstanceUID"] = manifest["study_instance_uid"]
        try:
            outcome = classify_study(headers, classifier, ctx.app.series, app=ctx.job.spec.app)
        except SelectionError as err:
            raise StageError(
                f"app {ctx.job.spec.app} has invalid series rules: {err}",
                hint="fix spec.series.prefer in the app definition",
            ) from err
        document = outcome.document()
        document["skipped"] = [
            {
                "seriesInstanceUID": e.get("series_instance_uid"),
                "seriesNumber": e.get("series_number"),
                "description": e.get("series_description"),
                "reason": "incomplete or corrupt at fetch",
            }
            for e in skipped
        ]
        document["modelVersions"] = {"series-classifier": classifier.version}
        ctx.put_json(OUTPUT_FILE, document)
        ctx.progress(1.0, "classified")
        if not outcome.ok:
            message = outcome.failure_message()
            if skipped:
                message += (
                    " (left out as incomplete: "
                    + ", ".join(
                        f"series {e.get('series_number')} '{e.get('series_description') or ''}'"
                        for e in skipped
                    )
                    + ")"
                )
            raise StageError(message, hint=outcome.failure_hint())
        chosen = ", ".join(
            f"{s['role']}=series {s['seriesNumber']}" for s in document["selectedSeries"]
        )
        return StageOutcome(
            data=document,
            metrics={
                "series": float(len(headers)),
                "roles_filled": float(len(document["selectedSeries"])),
                "min_selected_probability": min(
                    (s["probability"] for s in document["selectedSeries"]), default=0.0
                ),
            },
            provenance={
                "series_classifier": classifier.version,
                "selected_series": {
                    s["role"]: s["seriesInstanceUID"] for s in document["selectedSeries"]
                },
            },
            message=f"{len(headers)} series classified; {chosen}",
        )
