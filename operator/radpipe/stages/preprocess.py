"""The preprocess stage: the series classify chose → what the app's model reads.

Inputs: ``classify``'s ``data.roles`` (role → SeriesInstanceUID or null) and ``fetch``'s
``data.manifest`` (per series, the store keys of its instances). The workflow is the app's
``preprocess.workflow``:

* ``mr-brain-brats`` (glioma, metastasis) — :mod:`radpipe.preprocessing.mr_workflow`.
  Outputs: ``input.npy`` float32 (4, 240, 240, 155) in ``grid.MR_CHANNELS`` order;
  ``mask.nii.gz`` (uint8, grid); ``transforms/<role>_to_mni.tfm`` per acquired role (grid
  point → native point, see :data:`radpipe.preprocessing.provenance.TRANSFORM_DIRECTION`)
  plus the registration parts ``transforms/<anchor>_affine_to_mni.tfm`` and
  ``transforms/<role>_to_<anchor>.tfm``; ``reference/<role>.json`` (the native DICOM
  geometry and its SOP Instance UIDs); ``qc.json``; ``provenance.json``.
* ``ct-head-windows`` (hemorrhage) — :mod:`radpipe.preprocessing.ct`. Outputs:
  ``input.npy`` float32 (N, 3, 256, 256); ``slices.json``; ``hu.nii.gz``; ``qc.json``;
  ``provenance.json``.

Unusable input (a localizer, too few slices, a non-brain field of view, a failed
registration) fails the stage with the reason; a poor but usable result continues with
``reviewRecommended`` set and the reasons in ``qc.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import SimpleITK as sitk

from radpipe.pipeline.contract import Stage, StageContext, StageError, StageOutcome
from radpipe.preprocessing import grid
from radpipe.preprocessing.dicom_io import (
    StackGeometry,
    UnusableSeries,
    dicom_files,
    read_headers,
    stack_geometry,
)
from radpipe.preprocessing.provenance import (
    TRANSFORM_DIRECTION,
    PeakMemory,
    instances_fingerprint,
    matrix_list,
    sha256_array,
    versions,
)
from radpipe.preprocessing.registration import affine_matrix
from radpipe.preprocessing.templates import mni_template

MR_WORKFLOW = "mr-brain-brats"
CT_WORKFLOW = "ct-head-windows"
CT_ROLE = "ct_brain"


def _manifest_entry(manifest: dict[str, Any], uid: str, role: str) -> dict[str, Any]:
    for entry in manifest.get("series", []):
        if entry.get("series_instance_uid") == uid:
            return entry
    raise StageError(
        f"the {role} series chosen by classify ({uid}) is not in the fetch manifest",
        hint="re-run fetch and classify for this job",
    )


def download_series(ctx: StageContext, entry: dict[str, Any], dest: Path) -> Path:
    """Copy a series' instances from the fetch stage's outputs to ``dest``, checksums verified.

    The fetch result is read once (it lists every instance's checksum) rather than once
    per instance, as ``ctx.fetch_input`` would.
    """
    fetch = ctx.result_of("fetch")
    prefix = ctx.input_key("fetch", "")
    dest.mkdir(parents=True, exist_ok=True)
    for k, item in enumerate(entry.get("instances", [])):
        key = str(item["key"])
        name = key[len(prefix) :] if key.startswith(prefix) else key
        output = fetch.outputs.get(name)
        if output is None:
            raise StageError(
                f"instance {item.get('sop_instance_uid', name)} of series "
                f"{entry.get('series_instance_uid')} is in the manifest but not among the "
                "fetch stage's outputs",
                hint="re-run fetch for this job",
            )
        ctx.store.get_file(ctx.input_key("fetch", name), dest / f"{k:05d}.dcm", output["sha256"])
    return dest


def _geometry(folder: Path, role: str) -> StackGeometry:
    try:
        return stack_geometry(read_headers(dicom_files(folder)), role)
    except UnusableSeries as err:
        raise StageError(err.message, err.hint) from err


class PreprocessStage(Stage):
    """Turn the selected series into the app model's input on its grid."""

    name: ClassVar[str] = "preprocess"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("fetch", "classify")

    def run(self, ctx: StageContext) -> StageOutcome:
        """Download the selected series and run the app's preprocessing workflow."""
        workflow = str(ctx.app.preprocess.get("workflow", ""))
        roles: dict[str, str | None] = ctx.result_of("classify").data.get("roles", {})
        manifest: dict[str, Any] = ctx.result_of("fetch").data.get("manifest", {})
        with PeakMemory() as memory:
            if workflow == MR_WORKFLOW:
                outcome = self._mr(ctx, roles, manifest)
            elif workflow == CT_WORKFLOW:
                outcome = self._ct(ctx, roles, manifest)
            else:
                raise StageError(
                    f"app {ctx.app.title!r} asks for preprocessing workflow {workflow!r}, "
                    f"which radpipe does not have (known: {MR_WORKFLOW}, {CT_WORKFLOW})",
                    hint="fix preprocess.workflow in the AnalysisApp",
                )
        outcome.metrics["peak_memory_mb"] = memory.peak_mb
        outcome.metrics["children_peak_memory_mb"] = memory.children_peak_mb()
        return outcome

    # -- MR ------------------------------------------------------------------------------

    def _mr(
        self, ctx: StageContext, roles: dict[str, str | None], manifest: dict[str, Any]
    ) -> StageOutcome:
        from radpipe.preprocessing.mr_workflow import MRConfig, dcm2niix_version, run_mr_workflow

        clock = time.perf_counter()
        required = set(ctx.app.series.required)
        present = {r: uid for r in grid.MR_CHANNELS if (uid := roles.get(r))}
        missing_required = sorted(required - set(present))
        if missing_required:
            raise StageError(
                f"no series was chosen for required role(s) {', '.join(missing_required)}",
                hint="check the classify stage's reasons, or override the series choice",
            )
        if not present:
            raise StageError(
                f"classify chose none of the MR roles {', '.join(grid.MR_CHANNELS)}",
                hint="check that the study is a brain MR",
            )
        series_dirs: dict[str, Path] = {}
        geometries: dict[str, StackGeometry] = {}
        for i, (role, uid) in enumerate(present.items()):
            entry = _manifest_entry(manifest, uid, role)
            series_dirs[role] = download_series(ctx, entry, ctx.workdir / "dicom" / role)
            geometries[role] = _geometry(series_dirs[role], role)
            ctx.progress(0.1 * (i + 1) / len(present), f"downloaded {role}")
        download_s = time.perf_counter() - clock

        fill = str(ctx.app.preprocess.get("fillMissing", "zeros"))
        if fill not in ("zeros", "anchor"):
            raise StageError(
                f"preprocess.fillMissing {fill!r} is not one of zeros, anchor",
                hint="fix the AnalysisApp",
            )
        cfg = MRConfig(fill_missing=fill)  # type: ignore[arg-type]
        ctx.progress(0.15, "running the MR workflow")
        try:
            result = run_mr_workflow(series_dirs, ctx.workdir / "nipype", cfg)
        except RuntimeError as err:  # nipype wraps node failures; the crash file has the rest
            raise StageError(
                f"the MR preprocessing workflow failed: {err}",
                hint="see the stage log and the nipype crash file in the stage's working "
                "directory; check the selected series are brain MR images",
            ) from err
        ctx.progress(0.9, "writing outputs")

        report = result.qc
        report.metrics["channels"] = {
            role: stats.get("source", "") for role, stats in result.channel_stats.items()
        }
        ctx.put_json("qc.json", report.as_dict())
        if report.status == "fail":
            raise StageError(
                "preprocessing refused this input: " + "; ".join(report.reasons),
                hint="check the series chosen for each role (override the classifier's "
                "choice if it picked the wrong one); qc.json has the measures",
            )

        array = np.load(result.input_npy)
        ctx.put_file("input.npy", result.input_npy)
        ctx.put_file("mask.nii.gz", result.mask)
        transforms: dict[str, Any] = {}
        for role, path in result.transforms.items():
            ctx.put_file(f"transforms/{role}_to_mni.tfm", path)
            matrix = affine_matrix(sitk.ReadTransform(str(path)))
            transforms[role] = {
                "file": f"transforms/{role}_to_mni.tfm",
                "gridToNative": matrix_list(matrix),
                "volumeScale": float(abs(np.linalg.det(matrix[:3, :3]))),
            }
        for key, path in result.registration_transforms.items():
            name = key.replace("_to_mni", "_affine_to_mni")
            ctx.put_file(f"transforms/{name}.tfm", path)
        for role, geometry in geometries.items():
            ctx.put_json(f"reference/{role}.json", geometry.reference())

        software = versions(dcm2niix_version())
        inputs = {
            role: {
                "SeriesInstanceUID": uid,
                "instances": len(geometries[role].slices),
                "instancesSha256": instances_fingerprint(
                    [s.sop_instance_uid for s in geometries[role].slices]
                ),
                "sliceThickness": geometries[role].thickness,
                "sliceSpacing": round(geometries[role].spacing, 4),
            }
            for role, uid in present.items()
        }
        node_seconds = {"download": round(download_s, 3), **result.node_seconds}
        template = mni_template()
        provenance_doc: dict[str, Any] = {
            "workflow": MR_WORKFLOW,
            "engine": f"nipype {cfg.plugin} ({cfg.processes} processes)",
            "inputs": inputs,
            "anchor": result.anchor,
            "software": software,
            "template": {"source": template.source, "sha256": template.sha256},
            "parameters": cfg.as_dict(),
            "transformDirection": TRANSFORM_DIRECTION,
            "transforms": transforms,
            "registration": result.registration,
            "channels": result.channel_stats,
            "outputs": {"input.npy": sha256_array(array)},
            "graph": result.graph,
            "timings": {"nodes": node_seconds, "workflowSeconds": result.seconds},
            "determinism": "fixed SimpleITK thread count and metric-sampling seed: the same "
            "input and software versions give bit-identical input.npy and mask",
        }
        ctx.put_json("provenance.json", provenance_doc)
        summary = {
            "anchor": result.anchor,
            "series": dict(present),
            "channels": report.metrics["channels"],
            "brainVolumeCm3Template": report.metrics.get("brainVolumeCm3"),
            "inputSha256": sha256_array(array),
        }
        metrics = {f"seconds_{k}": float(v) for k, v in node_seconds.items()}
        metrics["seconds_workflow"] = float(result.seconds)
        metrics["seconds_total"] = round(time.perf_counter() - clock, 3)
        message = f"MR preprocessing: QC {report.status}"
        if report.reasons:
            message += " — " + "; ".join(report.reasons[:2])
        return StageOutcome(
            data={
                "workflow": MR_WORKFLOW,
                "qc": report.as_dict(),
                "reviewRecommended": report.review_recommended,
                "summary": summary,
                "parameters": {"fillMissing": cfg.fill_missing, "anchor": result.anchor},
            },
            metrics=metrics,
            provenance={
                "preprocessing": {
                    "workflow": MR_WORKFLOW,
                    "software": software,
                    "series": dict(present),
                    "template": template.sha256,
                }
            },
            message=message,
        )

    # -- CT ------------------------------------------------------------------------------

    def _ct(
        self, ctx: StageContext, roles: dict[str, str | None], manifest: dict[str, Any]
    ) -> StageOutcome:
        from radpipe.preprocessing import ct

        clock = time.perf_counter()
        uid = roles.get(CT_ROLE)
        if not uid:
            raise StageError(
                f"no series was chosen for role {CT_ROLE}",
                hint="check the classify stage's reasons, or override the series choice",
            )
        entry = _manifest_entry(manifest, uid, CT_ROLE)
        folder = download_series(ctx, entry, ctx.workdir / "dicom" / CT_ROLE)
        geometry = _geometry(folder, CT_ROLE)
        download_s = time.perf_counter() - clock
        ctx.progress(0.3, "HU volume and windows")
        try:
            result = ct.run_ct_workflow(geometry)
        except UnusableSeries as err:
            raise StageError(err.message, err.hint) from err
        ctx.put_json("qc.json", result.qc.as_dict())
        npy = ctx.workdir / "input.npy"
        np.save(npy, result.inputs)
        ctx.put_file("input.npy", npy)
        hu_path = ctx.workdir / "hu.nii.gz"
        ct.save_hu_nifti(result, hu_path)
        ctx.put_file("hu.nii.gz", hu_path)
        ctx.put_json(
            "slices.json",
            {
                "SeriesInstanceUID": uid,
                "order": result.parameters["sliceOrder"],
                "slices": result.slices,
            },
        )
        node_seconds = {"download": round(download_s, 3), **result.node_seconds}
        software = versions()
        provenance_doc: dict[str, Any] = {
            "workflow": CT_WORKFLOW,
            "inputs": {
                CT_ROLE: {
                    "SeriesInstanceUID": uid,
                    "instances": len(geometry.slices),
                    "instancesSha256": instances_fingerprint(
                        [s.sop_instance_uid for s in geometry.slices]
                    ),
                }
            },
            "software": software,
            "parameters": result.parameters,
            "huAffineRAS": matrix_list(result.hu_affine_ras),
            "outputs": {"input.npy": sha256_array(result.inputs)},
            "timings": {"nodes": node_seconds},
        }
        ctx.put_json("provenance.json", provenance_doc)
        metrics = {f"seconds_{k}": float(v) for k, v in node_seconds.items()}
        metrics["seconds_total"] = round(time.perf_counter() - clock, 3)
        metrics["slices"] = float(len(result.slices))
        return StageOutcome(
            data={
                "workflow": CT_WORKFLOW,
                "qc": result.qc.as_dict(),
                "reviewRecommended": result.qc.review_recommended,
                "summary": {
                    "series": {CT_ROLE: uid},
                    "slices": len(result.slices),
                    "inputShape": list(result.inputs.shape),
                    "inputSha256": sha256_array(result.inputs),
                },
                "parameters": result.parameters,
            },
            metrics=metrics,
            provenance={"preprocessing": {"workflow": CT_WORKFLOW, "software": software}},
            message=f"CT preprocessing: {len(result.slices)} slices, QC {result.qc.status}",
        )
