"""The postprocess stage: model output → findings, native label map, warehouse record.

Reads fetch (manifest + the source series' instances), classify (roles), preprocess
(``transforms/<role>_to_mni.tfm``, ``mask.nii.gz``) and infer (``prediction.npy``,
``modelVersions``). Writes, under ``jobs/<uid>/postprocess/``:

* ``findings.json`` — the versioned results document (:mod:`radpipe.results.schema`);
* ``segmentation.npz`` — the label map in the source series' space (slice, row, column;
  values = segment numbers) and the segment table, for the SEG and the report figures.

Then records the document in the warehouse, compares with the patient's most recent prior
for the same app, and queues QC-flagged or low-confidence cases for retraining.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydicom import dcmread
from pydicom.dataset import Dataset

from radpipe.pipeline.contract import (
    Stage,
    StageContext,
    StageError,
    StageOutcome,
    TransientStageError,
)
from radpipe.results import findings as F
from radpipe.results.native import GridMapping, NativeGeometry, affine_of
from radpipe.results.schema import (
    QualityControl,
    ResultsDocument,
    SeriesUsed,
    StudyRef,
)
from radpipe.results.uids import derived_uid

#: The role whose series the findings are mapped back to, per modality.
SOURCE_ROLE = {"MR": "t1c", "CT": "ct_brain"}
#: Plausible brain volumes (cm³); outside means the mask or registration went wrong.
BRAIN_RANGE = (700.0, 2300.0)
#: Glioma segment numbers in segmentation.npz: (BraTS label, kind, label shown).
GLIOMA_SEGMENTS = (
    (4, "ET", "Enhancing tumour"),
    (1, "NCR", "Necrosis / non-enhancing"),
    (2, "ED", "Edema"),
)


def source_series(ctx: StageContext, role: str) -> tuple[dict[str, Any], str]:
    """The manifest entry of the series classify chose for ``role``, and its UID."""
    roles: dict[str, str] = ctx.result_of("classify").data.get("roles", {})
    uid = roles.get(role)
    if uid is None:
        raise StageError(
            f"classify chose no {role} series, which postprocess maps the findings onto",
            hint="check the study has that series and re-run classify",
        )
    manifest = ctx.result_of("fetch").data.get("manifest", {})
    for entry in manifest.get("series", []):
        if entry["series_instance_uid"] == uid:
            return entry, uid
    raise StageError(f"series {uid} ({role}) is not in the fetch manifest")


def read_instances(ctx: StageContext, entry: dict[str, Any], *, pixels: bool) -> list[Dataset]:
    """The series' instances from the store (headers only unless ``pixels``)."""
    return [
        dcmread(io.BytesIO(ctx.store.get_bytes(item["key"])), stop_before_pixels=not pixels)
        for item in entry["instances"]
    ]


def study_ref(ds: Dataset, accession: str) -> StudyRef:
    """The study block of the results document, from a source instance."""

    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return "" if value is None else str(value)

    return StudyRef(
        study_instance_uid=text("StudyInstanceUID"),
        accession=text("AccessionNumber") or accession,
        patient_id=text("PatientID"),
        patient_name=text("PatientName"),
        patient_birth_date=text("PatientBirthDate"),
        patient_sex=text("PatientSex"),
        study_date=text("StudyDate"),
        study_time=text("StudyTime"),
        study_description=text("StudyDescription"),
        referring_physician=text("ReferringPhysicianName"),
        institution=text("InstitutionName"),
    )


def _load_npy(ctx: StageContext, stage: str, name: str) -> NDArray[Any]:
    path = ctx.fetch_input(stage, name, ctx.workdir / stage / name)
    return np.load(path, allow_pickle=False)


def _segments_json(specs: list[dict[str, Any]]) -> str:
    return json.dumps(specs)


class PostprocessStage(Stage):
    """Turn the model output into findings, a native label map and a warehouse record."""

    name: ClassVar[str] = "postprocess"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("fetch", "classify", "preprocess", "infer")

    def run(self, ctx: StageContext) -> StageOutcome:
        """Compute findings; see the module docstring for inputs and outputs."""
        app = ctx.job.spec.app
        modality = ctx.app.modality
        role = str(ctx.spec.settings.get("sourceRole", SOURCE_ROLE[modality]))
        entry, series_uid = source_series(ctx, role)
        datasets = read_instances(ctx, entry, pixels=modality == "CT")
        geometry, datasets = NativeGeometry.from_datasets(datasets)
        infer = ctx.result_of("infer")
        doc = ResultsDocument(
            job=ctx.job.uid,
            app=app,
            app_title=ctx.app.title,
            options=dict(ctx.job.spec.options),
            study=study_ref(datasets[0], ctx.job.spec.accession),
            series=self._series_used(ctx),
            model_versions=dict(infer.data.get("modelVersions", {})),
            preprocessing=self._preprocessing(ctx),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        ctx.progress(0.2, "mapping labels to the source series")
        if modality == "CT":
            labels, segments = self._hemorrhage(ctx, doc, datasets, geometry)
        else:
            labels, segments = self._mr(ctx, doc, geometry, role)
        doc.qc = self._qc(doc, infer.data)
        ctx.progress(0.7, "comparing with priors")
        self._warehouse(ctx, doc, series_uid)
        ctx.put_json("findings.json", doc.wire())
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            labels=labels,
            segments=np.array(_segments_json(segments)),
            geometry=np.array(json.dumps(geometry.as_json())),
        )
        ctx.put_bytes("segmentation.npz", buffer.getvalue())
        summary = doc.summary()
        return StageOutcome(
            data={"results": summary, "findings": doc.wire()},
            metrics={k: float(v) for k, v in summary["volumesCm3"].items()},
            provenance={"resultsSchema": doc.schema_version, "sourceSeries": series_uid},
            message="; ".join(f.text for f in doc.findings[:2]),
        )

    # -- per modality --------------------------------------------------------------------

    def _mr(
        self, ctx: StageContext, doc: ResultsDocument, geometry: NativeGeometry, role: str
    ) -> tuple[NDArray[Any], list[dict[str, Any]]]:
        import nibabel as nib
        import SimpleITK as sitk

        tfm_path = ctx.fetch_input(
            "preprocess", f"transforms/{role}_to_mni.tfm", ctx.workdir / "mni.tfm"
        )
        # preprocess's "<role>_to_mni" maps grid (MNI) points to native points (ITK's
        # resampling convention), so native → grid is its inverse.
        grid_to_native = affine_of(sitk.ReadTransform(str(tfm_path)))
        mapping = GridMapping(geometry, np.linalg.inv(grid_to_native))
        prediction = _load_npy(ctx, "infer", "prediction.npy")
        if prediction.ndim == 4:  # (C, X, Y, Z) probabilities: take the label channel
            prediction = prediction.argmax(axis=0).astype(np.uint8)
        brain = None
        if "mask.nii.gz" in ctx.result_of("preprocess").outputs:
            mask_path = ctx.fetch_input("preprocess", "mask.nii.gz", ctx.workdir / "mask.nii.gz")
            brain = np.asarray(nib.load(mask_path).dataobj) > 0  # type: ignore[attr-defined]
        if doc.app == "metastasis":
            return self._metastasis(ctx, doc, mapping, prediction)
        include_edema = bool(ctx.job.spec.options.get("includeEdema", True))
        doc.measurements, doc.brain_volume_cm3 = F.glioma_measurements(
            prediction, mapping, brain, include_edema=include_edema
        )
        doc.findings = F.glioma_findings(doc.measurements)
        native = mapping.to_native(prediction.astype(np.uint8))
        labels = np.zeros(native.shape, dtype=np.uint16)
        segments = []
        for number, (code, kind, label) in enumerate(GLIOMA_SEGMENTS, start=1):
            if kind == "ED" and not include_edema:
                continue
            labels[native == code] = number
            segments.append(
                {
                    "number": number,
                    "kind": kind,
                    "label": label,
                    "trackingUID": derived_uid(doc.job, "segment", kind),
                    "trackingID": label,
                }
            )
        return labels, segments

    def _metastasis(
        self,
        ctx: StageContext,
        doc: ResultsDocument,
        mapping: GridMapping,
        prediction: NDArray[Any],
    ) -> tuple[NDArray[Any], list[dict[str, Any]]]:
        min_mm = float(ctx.job.spec.options.get("minDiameterMm", 2.0))
        lesions, components = F.metastasis_lesions(
            prediction, mapping, doc.job, min_diameter_mm=min_mm
        )
        doc.lesions = lesions
        doc.measurements = F.metastasis_measurements(lesions)
        doc.findings = F.metastasis_findings(lesions)
        labels = mapping.to_native(components).astype(np.uint16)
        segments = [
            {
                "number": lesion.id,
                "kind": "metastasis",
                "label": f"Lesion {lesion.id}",
                "trackingUID": lesion.tracking_uid,
                "trackingID": f"Lesion {lesion.id}",
            }
            for lesion in lesions
        ]
        return labels, segments

    def _hemorrhage(
        self,
        ctx: StageContext,
        doc: ResultsDocument,
        datasets: list[Dataset],
        geometry: NativeGeometry,
    ) -> tuple[NDArray[Any], list[dict[str, Any]]]:
        probs = _load_npy(ctx, "infer", "prediction.npy").astype(np.float32)
        slices = self._slices(ctx, datasets)
        if len(slices) != len(probs):
            raise StageError(
                f"infer gave {len(probs)} slice predictions for {len(slices)} slices",
                hint="re-run preprocess and infer for this job",
            )
        # predictions follow slices.json; put them in the series' slice order
        row_of = {s.sop_instance_uid: i for i, s in enumerate(slices)}
        order = [row_of.get(str(ds.SOPInstanceUID), i) for i, ds in enumerate(datasets)]
        probs, slices = probs[order], [slices[i] for i in order]
        threshold = float(ctx.spec.settings.get("threshold", 0.5))
        study = F.hemorrhage_probabilities(probs)
        hu = np.stack(
            [
                ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1)
                + float(ds.get("RescaleIntercept", 0) or 0)
                for ds in datasets
            ]
        )
        flagged = probs[:, 0] >= threshold
        volume, blood = F.bleed_volume(hu, geometry.spacing, flagged)
        present = study["any"] >= threshold
        doc.key_slices = F.key_slices(probs, slices, int(ctx.job.spec.options.get("keySlices", 3)))
        doc.measurements = F.hemorrhage_measurements(study, volume if present else None)
        doc.findings = F.hemorrhage_findings(study, threshold, volume if present else None)
        labels = blood.astype(np.uint16)
        segments = []
        if present and labels.any():
            segments.append(
                {
                    "number": 1,
                    "kind": "hemorrhage",
                    "label": "Hemorrhage (estimated)",
                    "trackingUID": derived_uid(doc.job, "segment", "hemorrhage"),
                    "trackingID": "Hemorrhage (estimated)",
                }
            )
        else:
            labels[:] = 0
        return labels, segments

    def _slices(self, ctx: StageContext, datasets: list[Dataset]) -> list[F.SliceRef]:
        if "slices.json" in ctx.result_of("preprocess").outputs:
            raw = json.loads(ctx.read_input("preprocess", "slices.json"))
            items = raw.get("slices", raw) if isinstance(raw, dict) else raw
            return [F.SliceRef.from_json(item) for item in items]
        return [
            F.SliceRef(str(ds.SOPInstanceUID), int(ds.get("InstanceNumber", 0) or 0))
            for ds in datasets
        ]

    # -- shared --------------------------------------------------------------------------

    def _series_used(self, ctx: StageContext) -> list[SeriesUsed]:
        roles: dict[str, str] = ctx.result_of("classify").data.get("roles", {})
        manifest = ctx.result_of("fetch").data.get("manifest", {})
        by_uid = {e["series_instance_uid"]: e for e in manifest.get("series", [])}
        return [
            SeriesUsed(
                role=role,
                series_instance_uid=uid,
                description=str(by_uid.get(uid, {}).get("series_description", "")),
                modality=str(by_uid.get(uid, {}).get("modality", "")),
            )
            for role, uid in roles.items()
        ]

    def _preprocessing(self, ctx: StageContext) -> dict[str, Any]:
        data = ctx.result_of("preprocess").data
        out: dict[str, Any] = {"workflow": str(ctx.app.preprocess.get("workflow", ""))}
        for key in ("summary", "workflow", "parameters"):
            if key in data:
                out[key] = data[key]
        return out

    def _qc(self, doc: ResultsDocument, infer: dict[str, Any]) -> QualityControl:
        from radpipe.results.retraining import LOW_CONFIDENCE

        flags = []
        brain = doc.brain_volume_cm3
        if brain is not None and not BRAIN_RANGE[0] <= brain <= BRAIN_RANGE[1]:
            flags.append(f"brain volume {brain:.0f} cm³ is implausible (check registration)")
        whole = doc.measurement("WT")
        if whole and whole.percent_of_brain and whole.percent_of_brain > 40:
            flags.append(f"tumour covers {whole.percent_of_brain:.0f} % of the brain")
        confidence = infer.get("confidence")
        if confidence is not None and float(confidence) < LOW_CONFIDENCE:
            flags.append(f"low model confidence ({float(confidence):.2f})")
        return QualityControl(
            passed=not flags,
            confidence=None if confidence is None else float(confidence),
            flags=flags,
        )

    def _warehouse(self, ctx: StageContext, doc: ResultsDocument, series_uid: str) -> None:
        from sqlalchemy.exc import OperationalError

        from radpipe.results import priors, retraining
        from radpipe.results.warehouse import open_warehouse

        try:
            warehouse = open_warehouse(ctx.settings.warehouse.url)
        except OperationalError as err:
            raise TransientStageError(
                f"the results warehouse cannot be reached: {err.orig}",
                hint="check warehouse.url and that the database server is up; the job retries",
            ) from err
        try:
            doc.prior = priors.find_prior(warehouse, doc)
            warehouse.record(
                doc,
                provenance={
                    "modelVersions": doc.model_versions,
                    "sourceSeries": series_uid,
                    "series": [s.wire() for s in doc.series],
                    "preprocessing": doc.preprocessing,
                },
            )
            if not doc.qc.passed:
                low = (
                    doc.qc.confidence is not None and doc.qc.confidence < retraining.LOW_CONFIDENCE
                )
                retraining.queue_case(
                    ctx.store,
                    warehouse,
                    job_uid=doc.job,
                    app=doc.app,
                    reason="low-confidence" if low else "qc",
                    detail="; ".join(doc.qc.flags),
                    images=retraining.job_images(doc.job),
                    labels={"prediction.npy": ctx.input_key("infer", "prediction.npy")},
                )
        finally:
            warehouse.close()
