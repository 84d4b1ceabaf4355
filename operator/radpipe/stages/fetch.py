"""The fetch stage: accession (or StudyInstanceUID) → the study's instances in the store.

Outputs, under ``jobs/<uid>/fetch/``:

* ``instances/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` — every instance, written as it
  arrives (C-GET, C-MOVE or WADO-RS, several series in parallel);
* ``corrupt/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` — instances that arrived but are
  unusable (kept for inspection, listed in the manifest's ``problems``);
* ``manifest.json`` — the study manifest (:mod:`radpipe.dicom.manifest`), also in
  ``result.json`` as ``data.manifest``.

Outcomes: an unknown accession or an ambiguous one fails the job at once (StageError, with
the candidates listed); a PACS that is down, turns the association away, or goes away
mid-transfer is retried — first inside this attempt, resuming with only the missing
instances, then by the runner (TransientStageError). A series that stays incomplete fails
the attempt naming the series. A corrupt instance does not fail the fetch: its series is
marked ``complete: false`` and the series classifier leaves it out.
"""

from __future__ import annotations

import time
from typing import ClassVar

from radpipe.dicom.errors import (
    AmbiguousStudy,
    NodeConfigError,
    PacsError,
    StudyNotFound,
)
from radpipe.dicom.instances import StudySink
from radpipe.dicom.manifest import build_manifest
from radpipe.dicom.models import NON_IMAGE_MODALITIES
from radpipe.dicom.nodes import resolve_node
from radpipe.dicom.retrieve import StudyRetriever
from radpipe.logs import accession_hash
from radpipe.pipeline.contract import (
    Stage,
    StageContext,
    StageError,
    StageOutcome,
    TransientStageError,
)


def _stage_error(err: PacsError) -> StageError:
    """The stage error a PACS error becomes: retryable ones are retried by the runner."""
    if err.retryable:
        return TransientStageError(err.message, err.hint)
    return StageError(err.message, err.hint)


def refuse_mixed_patients(sink: StudySink) -> None:
    """Fail (for good) when the study holds instances of more than one patient.

    A study filed under two patients is a PACS data-quality problem; analysing it would
    put one patient's images in another patient's report. Only series numbers are named.
    """
    if len(sink.patients) <= 1:
        return
    groups = []
    for series_uids in sorted(sink.patients.values(), key=lambda uids: sorted(uids)):
        numbers = sorted(
            str(sink.series[uid].fields.get("SeriesNumber", "?")) if uid in sink.series else "?"
            for uid in series_uids
        )
        groups.append("series " + ", ".join(numbers))
    raise StageError(
        f"the study holds images of {len(sink.patients)} different patients "
        f"({'; '.join(groups)}): radpipe analyses one patient's study only",
        hint="ask the PACS team to correct the study (images filed under the wrong patient "
        "or accession), then run the job again",
    )


class FetchStage(Stage):
    """Pull the job's study from its PACS node into the artifact store."""

    name: ClassVar[str] = "fetch"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()

    def run(self, ctx: StageContext) -> StageOutcome:
        """Locate the study, retrieve every series, write the manifest."""
        from radpipe.dicom.client import open_client
        from radpipe.dicom.locate import locate_study

        spec = ctx.job.spec
        if spec.source.store_prefix:  # pushed to radpipe's receiver: no PACS to query
            return self._from_store(ctx, spec.source.store_prefix)
        try:
            node = resolve_node(ctx.settings, spec.source.pacs)
        except NodeConfigError as err:
            raise StageError(err.message, err.hint) from err
        client = open_client(node)
        cfg = node.config
        clock = time.perf_counter()
        ctx.progress(0.0, f"querying {node.name}")
        try:
            study = locate_study(
                client,
                accession=spec.accession,
                study_uid=spec.study_instance_uid,
                modality=ctx.app.modality,
            )
            series = client.find_series(study.study_instance_uid)
        except (StudyNotFound, AmbiguousStudy) as err:
            raise StageError(err.message, err.hint) from err
        except PacsError as err:
            raise _stage_error(err) from err
        if not series:
            raise StageError(
                f"study {study.study_instance_uid} on PACS {node.name} has no series",
                hint="the study may still be arriving at the PACS; run the job again later",
            )
        # Segmentations, reports and documents already in the study (radpipe's own results
        # from an earlier run among them) are not inputs: leave them on the PACS.
        not_images = [s for s in series if s.modality.upper() in NON_IMAGE_MODALITIES]
        series = [s for s in series if s.modality.upper() not in NON_IMAGE_MODALITIES]
        if not series:
            raise StageError(
                f"study {study.study_instance_uid} on PACS {node.name} holds no image series, "
                f"only {', '.join(sorted({s.modality for s in not_images}))} objects",
                hint="check the accession: it may name a report or results-only study",
            )
        ctx.log.info(
            "fetching study %s (%s) from %s: %d image series (%d non-image left), %s instances, "
            "by %s",
            study.study_instance_uid,
            accession_hash(spec.accession),
            node.name,
            len(series),
            len(not_images),
            study.num_instances if study.num_instances is not None else "?",
            node.retrieve_method,
        )
        total = sum(s.num_instances or 0 for s in series) or study.num_instances or 0

        def progress(count: int) -> None:
            if total and (count % 10 == 0 or count == total):
                ctx.progress(count / total, f"{count}/{total} instances")

        sink = StudySink(ctx.put_bytes, study.study_instance_uid, on_instance=progress)
        retriever = StudyRetriever(
            client,
            parallel=cfg.max_associations,
            attempts=cfg.retrieve_attempts,
            backoff_seconds=cfg.retry_backoff_seconds,
        )
        try:
            outcomes = retriever.retrieve(study.study_instance_uid, series, sink)
        except PacsError as err:
            raise _stage_error(err) from err
        seconds = time.perf_counter() - clock
        refuse_mixed_patients(sink)
        manifest = build_manifest(
            study,
            series,
            outcomes,
            sink,
            node=node.name,
            transport=node.transport,
            method=node.retrieve_method,
            prefix=ctx.prefix,
        )
        if not manifest["instance_count"]:
            raise StageError(
                f"no usable instance arrived from study {study.study_instance_uid}: "
                + "; ".join(manifest["problems"][:5]),
                hint="the study on the PACS is damaged; ask the PACS team to check it",
            )
        ctx.put_json("manifest.json", manifest)
        ctx.progress(1.0, f"{manifest['instance_count']} instances")
        megabytes = sink.bytes_received / 1e6
        message = (
            f"{manifest['instance_count']} instances in {len(series)} series "
            f"({megabytes:.1f} MB) from {node.name} by {node.retrieve_method} in {seconds:.1f} s"
        )
        if manifest["problems"]:
            message += f"; {len(manifest['problems'])} problem(s): " + "; ".join(
                manifest["problems"][:3]
            )
        return StageOutcome(
            data={"manifest": manifest},
            metrics={
                "instances": float(manifest["instance_count"]),
                "series": float(len(series)),
                "corrupt_instances": float(manifest["corrupt_count"]),
                "megabytes": round(megabytes, 3),
                "seconds": round(seconds, 3),
                "instances_per_second": round(manifest["instance_count"] / max(seconds, 1e-6), 1),
                "megabytes_per_second": round(megabytes / max(seconds, 1e-6), 2),
                "duplicates_ignored": float(sink.duplicates),
                "non_image_series_skipped": float(len(not_images)),
            },
            provenance={
                "pacs_node": node.name,
                "transport": node.transport,
                "retrieve": node.retrieve_method,
                "study_instance_uid": study.study_instance_uid,
                "parallel_associations": cfg.max_associations,
            },
            message=message,
        )

    # -- a study pushed to radpipe (radpipe receive) ------------------------------------

    def _from_store(self, ctx: StageContext, prefix: str) -> StageOutcome:
        """Copy a spooled study (``prefix``/instances/...) as if it had been retrieved, so
        the instances, manifest and result look exactly like a PACS fetch's."""
        from io import BytesIO

        from pydicom import dcmread

        from radpipe.dicom.models import SeriesMatch, StudyMatch

        clock = time.perf_counter()
        keys = sorted(k for k in ctx.store.list(prefix + "instances/") if k.endswith(".dcm"))
        if not keys:
            raise StageError(
                f"no received instances under {prefix} in the artifact store",
                hint="the pushed study was removed from the intake spool; push it again",
            )
        sink = StudySink(ctx.put_bytes, ctx.job.spec.study_instance_uid or None)
        for count, key in enumerate(keys, start=1):
            sink.receive(ctx.store.get_bytes(key))
            if count % 10 == 0 or count == len(keys):
                ctx.progress(count / len(keys), f"{count}/{len(keys)} instances")
        usable = [i for state in sink.series.values() for i in state.instances.values()]
        if not usable:
            raise StageError(f"no usable instance among the {len(keys)} received under {prefix}")
        refuse_mixed_patients(sink)
        # study-level attributes from one instance (they are the same in all)
        ds = dcmread(
            BytesIO(ctx.store.get_bytes(ctx.prefix + usable[0].key)), stop_before_pixels=True
        )
        study_uid = str(ds.StudyInstanceUID)
        study = StudyMatch(
            study_instance_uid=study_uid,
            accession_number=str(ds.get("AccessionNumber", "") or ""),
            study_date=str(ds.get("StudyDate", "") or ""),
            study_time=str(ds.get("StudyTime", "") or ""),
            study_description=str(ds.get("StudyDescription", "") or ""),
            num_instances=sink.instance_count,
        )
        series = sorted(
            (
                SeriesMatch(
                    series_instance_uid=uid,
                    modality=str(state.fields.get("Modality", "")),
                    series_number=state.fields.get("SeriesNumber"),
                    series_description=str(state.fields.get("SeriesDescription", "")),
                    num_instances=len(state.received()),
                )
                for uid, state in sink.series.items()
            ),
            key=lambda m: (m.series_number or 0, m.series_instance_uid),
        )
        manifest = build_manifest(
            study,
            series,
            [],
            sink,
            node="intake",
            transport="push",
            method="c-store",
            prefix=ctx.prefix,
        )
        ctx.put_json("manifest.json", manifest)
        seconds = time.perf_counter() - clock
        return StageOutcome(
            data={"manifest": manifest},
            metrics={
                "instances": float(manifest["instance_count"]),
                "series": float(len(series)),
                "corrupt_instances": float(manifest["corrupt_count"]),
                "megabytes": round(sink.bytes_received / 1e6, 3),
                "seconds": round(seconds, 3),
                "duplicates_ignored": float(sink.duplicates),
            },
            provenance={
                "source": "intake",
                "store_prefix": prefix,
                "study_instance_uid": study_uid,
            },
            message=f"{manifest['instance_count']} instances in {len(series)} series from the "
            f"intake spool in {seconds:.1f} s",
        )
