"""The report stage: the branded PDF and every DICOM object the job delivers.

The DICOM objects are made here, not in deliver, so that deliver only transmits: a
resend after a failure sends the very files (same UIDs, same bytes) that were made once.
UIDs derive from the job uid, and content dates from the job's creation time, so even a
re-run of this stage makes the same objects.

Outputs under ``jobs/<uid>/report/``: ``report.pdf``, ``figures/<plane>.png``, and
``dicom/seg.dcm``, ``dicom/sr.dcm``, ``dicom/pdf.dcm`` (those the job's ``delivery`` flags
ask for) plus ``dicom/overlay-<n>.dcm`` when the stage setting ``overlaySeries`` is true.
``data.dicomObjects`` lists them with their UIDs for deliver.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from pydicom.dataset import Dataset

from radpipe.dicom.writers.common import OutputInfo
from radpipe.dicom.writers.documents import make_encapsulated_pdf, make_overlay_images
from radpipe.dicom.writers.seg import SEGMENT_COLOURS, SegmentSpec, make_segmentation
from radpipe.dicom.writers.sr import make_report
from radpipe.pipeline.contract import Stage, StageContext, StageOutcome
from radpipe.report.figures import ORIENTATION, Overlay, native_image, render_planes
from radpipe.report.pdf import FigureImage, LegendItem, ReportContent, build_report
from radpipe.results.native import NativeGeometry
from radpipe.results.schema import ResultsDocument, load_document
from radpipe.stages.postprocess import SOURCE_ROLE, read_instances, source_series

#: CT brain window (centre, width) for hemorrhage figures.
CT_BRAIN_WINDOW = (40.0, 80.0)


def job_created(ctx: StageContext) -> datetime:
    """When the job was created (pins the DICOM content date/time)."""
    stamp = ctx.job.metadata.annotations.get("radpipe.io/created")
    if stamp:
        try:
            return datetime.fromisoformat(stamp).astimezone(UTC)
        except ValueError:
            pass
    return datetime(2000, 1, 1, tzinfo=UTC)


def model_identity(doc: ResultsDocument, ctx: StageContext) -> tuple[str, str]:
    """(model name, version) for algorithm identification."""
    if doc.model_versions:
        name, version = next(iter(doc.model_versions.items()))
        return name, version
    if ctx.app.models:
        return ctx.app.models[0].inference_service, ctx.app.models[0].version
    return doc.app, "unknown"


def output_dataset_name(kind: str, number: int = 1) -> str:
    """Store name of an output object."""
    return f"dicom/{kind}.dcm" if kind != "overlay" else f"dicom/overlay-{number}.dcm"


class ReportStage(Stage):
    """Render the PDF report and make the SEG, SR and Encapsulated PDF objects."""

    name: ClassVar[str] = "report"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("postprocess",)

    def run(self, ctx: StageContext) -> StageOutcome:
        """See the module docstring."""
        doc = load_document(ctx.result_of("postprocess").data["findings"])
        with np.load(io.BytesIO(ctx.read_input("postprocess", "segmentation.npz"))) as npz:
            labels = npz["labels"]
            segments = [SegmentSpec.from_json(s) for s in json.loads(str(npz["segments"]))]
        role = str(
            ctx.app.stage("postprocess").settings.get("sourceRole", SOURCE_ROLE[ctx.app.modality])
        )
        entry, _ = source_series(ctx, role)
        geometry, source = NativeGeometry.from_datasets(read_instances(ctx, entry, pixels=True))
        ctx.progress(0.1, "figures")
        overlays = [
            Overlay(s.number, SEGMENT_COLOURS.get(s.kind, (230, 57, 70)), s.label) for s in segments
        ]
        window = CT_BRAIN_WINDOW if ctx.app.modality == "CT" else None
        figures = render_planes(
            native_image(source, geometry), labels, geometry, overlays, window=window
        )
        for fig in figures:
            ctx.put_bytes(f"figures/{fig.plane}.png", fig.png())
        legend = _legend(doc, segments)
        ctx.progress(0.4, "PDF")
        pdf = build_report(
            ReportContent(
                doc=doc,
                branding=ctx.settings.branding,
                figures=[FigureImage(f.jpeg(), f.plane.title()) for f in figures],
                legend=legend,
                generated_at=datetime.now(UTC),
                title=doc.app_title or doc.app,
            )
        )
        report_info = ctx.put_bytes("report.pdf", pdf)
        ctx.progress(0.6, "DICOM objects")
        model, version = model_identity(doc, ctx)
        info = OutputInfo(
            job_uid=ctx.job.uid,
            app=doc.app,
            model_name=model,
            model_version=version,
            institution=ctx.settings.branding.institution,
            department=ctx.settings.branding.department,
            content_datetime=job_created(ctx),
        )
        objects = self._dicom(ctx, info, doc, source, labels, segments, pdf, figures)
        return StageOutcome(
            data={
                "dicomObjects": objects,
                "results": {"reportObject": report_info.key},
            },
            metrics={"pdfBytes": float(len(pdf)), "dicomObjects": float(len(objects))},
            message=f"report ({len(pdf) // 1024} KiB) and {len(objects)} DICOM objects",
        )

    def _dicom(
        self,
        ctx: StageContext,
        info: OutputInfo,
        doc: ResultsDocument,
        source: list[Dataset],
        labels: Any,
        segments: list[SegmentSpec],
        pdf: bytes,
        figures: list[Any],
    ) -> list[dict[str, Any]]:
        wanted = ctx.job.spec.delivery
        made: list[tuple[str, Dataset]] = []
        seg = make_segmentation(info, source, labels, segments) if wanted.seg else None
        if seg is not None:
            made.append(("seg", seg))
        if wanted.sr:
            sr = make_report(info, doc, source, seg, segments, modality=ctx.app.modality)
            made.append(("sr", sr))
        if wanted.report:
            title = f"{doc.app_title or doc.app} report"
            made.append(
                ("pdf", make_encapsulated_pdf(info, source[0], pdf, title=title, source=source))
            )
        if ctx.spec.settings.get("overlaySeries", False):
            images = [(f.rgb, ORIENTATION[f.plane]) for f in figures]
            for number, ds in enumerate(make_overlay_images(info, source[0], images), start=1):
                made.append((f"overlay-{number}", ds))
        objects = []
        for kind, ds in made:
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            name = f"dicom/{kind}.dcm"
            ctx.put_bytes(name, buffer.getvalue())
            objects.append(
                {
                    "name": name,
                    "kind": kind.split("-")[0],
                    "sopClassUID": str(ds.SOPClassUID),
                    "sopInstanceUID": str(ds.SOPInstanceUID),
                    "seriesInstanceUID": str(ds.SeriesInstanceUID),
                    "studyInstanceUID": str(ds.StudyInstanceUID),
                }
            )
        return objects


def _legend(doc: ResultsDocument, segments: list[SegmentSpec]) -> list[LegendItem]:
    if doc.app == "metastasis":
        return [LegendItem(SEGMENT_COLOURS["metastasis"], "Lesion")] if segments else []
    return [LegendItem(SEGMENT_COLOURS.get(s.kind, (230, 57, 70)), s.label) for s in segments]
