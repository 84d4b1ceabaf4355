"""nipype interfaces for the MR brain workflow, one per step.

Each interface is a thin :class:`nipype.interfaces.base.SimpleInterface` over a function of
:mod:`radpipe.preprocessing.registration` / :mod:`~radpipe.preprocessing.normalise`:
typed inputs and outputs (so nipype hashes the parameters for its cache and records
them in each node's report), files passed between nodes as uncompressed NIfTI (cheap to
write and read), and SimpleITK's thread count set from the inputs in every node.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("NIPYPE_NO_ET", "1")  # never phone home for nipype's version check

import numpy as np
import SimpleITK as sitk
from nipype import config as nipype_config
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from radpipe.preprocessing import normalise, qc, registration
from radpipe.preprocessing.templates import array_xyz, grid_reference, template_on_grid

nipype_config.set("execution", "check_version", "false")


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a parameter dataclass from its JSON form (lists back to tuples)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _path(runtime: Any, name: str) -> str:
    return str(Path(runtime.cwd) / name)


def _write(img: sitk.Image, path: str) -> str:
    sitk.WriteImage(img, path, useCompression=False)
    return path


class _ThreadsInputSpec(BaseInterfaceInputSpec):
    threads = traits.Int(2, usedefault=True, desc="SimpleITK threads (fixed: results depend)")


# -- reorientation ------------------------------------------------------------------------


class ReorientInputSpec(_ThreadsInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True, desc="dcm2niix outputs")


class ReorientOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="float32 image re-indexed to LPS axes")
    n_outputs = traits.Int(desc="volumes dcm2niix wrote (more than one: it split the series)")


class Reorient(SimpleInterface):
    """Pick the converted volume and re-index it to LPS axes (a common frame)."""

    input_spec = ReorientInputSpec
    output_spec = ReorientOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        registration.set_threads(self.inputs.threads)
        files = [f for f in self.inputs.in_files if str(f).endswith((".nii", ".nii.gz"))]
        # dcm2niix splits a series it cannot stack as one volume: keep the largest part.
        sizes = {f: int(np.prod(sitk.ReadImage(f).GetSize())) for f in files}  # header only
        chosen = max(files, key=lambda f: (sizes[f], f))
        img = sitk.ReadImage(chosen, sitk.sitkFloat32)
        if img.GetDimension() == 4:  # multi-volume series: the first volume
            img = img[:, :, :, 0]
        self._results["out_file"] = _write(registration.reorient(img), _path(runtime, "lps.nii"))
        self._results["n_outputs"] = len(files)
        return runtime


# -- N4 -----------------------------------------------------------------------------------


class BiasCorrectInputSpec(_ThreadsInputSpec):
    in_file = File(exists=True, mandatory=True)
    params = traits.Dict(mandatory=True, desc="N4Params as a dict")
    registration_spacing_mm = traits.Float(registration.REGISTRATION_SPACING_MM, usedefault=True)


class BiasCorrectOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="bias-corrected image, full resolution")
    out_reg_file = File(exists=True, desc="bias-corrected copy at the registration voxel size")
    bias_range = traits.List(traits.Float, desc="min and max of the multiplicative field")


class BiasCorrect(SimpleInterface):
    """N4 bias-field correction (SimpleITK), plus the copy registration works on."""

    input_spec = BiasCorrectInputSpec
    output_spec = BiasCorrectOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        registration.set_threads(self.inputs.threads)
        params = from_dict(registration.N4Params, self.inputs.params)
        img = sitk.ReadImage(self.inputs.in_file, sitk.sitkFloat32)
        corrected, log_field = registration.n4_correct(img, params)
        field = np.exp(sitk.GetArrayViewFromImage(log_field))
        self._results["bias_range"] = [float(field.min()), float(field.max())]
        self._results["out_file"] = _write(corrected, _path(runtime, "n4.nii"))
        small = registration.registration_copy(corrected, self.inputs.registration_spacing_mm)
        self._results["out_reg_file"] = _write(small, _path(runtime, "n4_reg.nii"))
        return runtime


# -- registration -------------------------------------------------------------------------


class _RegistrationOutputSpec(TraitedSpec):
    out_transform = File(exists=True, desc="ITK transform: fixed point → moving point (LPS mm)")
    metric = traits.Float(desc="final Mattes MI (more negative is better)")
    iterations = traits.Int(desc="optimiser iterations at the last level")
    stop = traits.Str(desc="why the optimiser stopped")
    dense_metrics = traits.Dict(desc="co-registration: dense metric at scanner and fitted pose")


def _registration_results(
    results: dict[str, Any], runtime: Any, fit: registration.RegistrationResult
) -> None:
    results["out_transform"] = _path(runtime, "transform.tfm")
    sitk.WriteTransform(fit.transform, results["out_transform"])
    results["metric"] = fit.metric
    results["iterations"] = fit.iterations
    results["stop"] = fit.stop
    results["dense_metrics"] = {k: float(v) for k, v in fit.extra.items()}


class RegisterToTemplateInputSpec(_ThreadsInputSpec):
    in_file = File(exists=True, mandatory=True, desc="anchor image at the registration spacing")
    params = traits.Dict(mandatory=True, desc="RegistrationParams as a dict")
    registration_spacing_mm = traits.Float(registration.REGISTRATION_SPACING_MM, usedefault=True)


class RegisterToTemplate(SimpleInterface):
    """Affine registration of the anchor image to the MNI152 template (Mattes MI)."""

    input_spec = RegisterToTemplateInputSpec
    output_spec = _RegistrationOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        registration.set_threads(self.inputs.threads)
        params = from_dict(registration.RegistrationParams, self.inputs.params)
        template, mask = registration.template_for_registration(self.inputs.registration_spacing_mm)
        moving = sitk.ReadImage(self.inputs.in_file, sitk.sitkFloat32)
        fit = registration.register_to_template(moving, template, mask, params)
        _registration_results(self._results, runtime, fit)
        return runtime


class CoRegisterInputSpec(_ThreadsInputSpec):
    fixed_file = File(exists=True, mandatory=True, desc="anchor at the registration spacing")
    moving_file = File(exists=True, mandatory=True, desc="channel at the registration spacing")
    params = traits.Dict(mandatory=True, desc="RegistrationParams as a dict")


class CoRegister(SimpleInterface):
    """Rigid registration of one channel to the anchor (Mattes MI)."""

    input_spec = CoRegisterInputSpec
    output_spec = _RegistrationOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        registration.set_threads(self.inputs.threads)
        params = from_dict(registration.RegistrationParams, self.inputs.params)
        fixed = sitk.ReadImage(self.inputs.fixed_file, sitk.sitkFloat32)
        moving = sitk.ReadImage(self.inputs.moving_file, sitk.sitkFloat32)
        fit = registration.register_rigid(fixed, moving, params)
        _registration_results(self._results, runtime, fit)
        return runtime


# -- resampling to the grid ---------------------------------------------------------------


class ResampleToGridInputSpec(_ThreadsInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected native image")
    grid_transform = File(exists=True, mandatory=True, desc="grid (MNI) point → anchor point")
    coreg_transform = File(exists=True, desc="anchor point → this channel's point (absent: anchor)")


class ResampleToGridOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the image on the model grid (float32)")
    fov_file = File(exists=True, desc="grid voxels inside the image's field of view (uint8)")
    out_transform = File(exists=True, desc="composed transform: grid point → native point")
    coverage = traits.Float(desc="fraction of the template brain inside the field of view")


class ResampleToGrid(SimpleInterface):
    """Compose grid→anchor→channel into one affine and resample the native image once."""

    input_spec = ResampleToGridInputSpec
    output_spec = ResampleToGridOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        registration.set_threads(self.inputs.threads)
        transform: sitk.Transform = sitk.ReadTransform(self.inputs.grid_transform)
        if self.inputs.coreg_transform:
            transform = registration.compose(
                transform, sitk.ReadTransform(self.inputs.coreg_transform)
            )
        else:
            transform = registration.as_affine(registration.affine_matrix(transform))
        img = sitk.ReadImage(self.inputs.in_file, sitk.sitkFloat32)
        # NaN marks grid voxels outside the native field of view (MR intensities are finite).
        out = sitk.Resample(
            img, grid_reference(), transform, sitk.sitkLinear, float("nan"), sitk.sitkFloat32
        )
        arr = sitk.GetArrayFromImage(out)
        outside = np.isnan(arr)
        arr[outside] = 0.0
        clean = sitk.GetImageFromArray(arr)
        clean.CopyInformation(out)
        fov = sitk.GetImageFromArray((~outside).astype(np.uint8))
        fov.CopyInformation(out)
        _, tmask = template_on_grid()
        inside = ~outside.transpose(2, 1, 0)
        brain = tmask > 0
        self._results["coverage"] = float(np.count_nonzero(inside & brain) / brain.sum())
        self._results["out_file"] = _write(clean, _path(runtime, "grid.nii"))
        self._results["fov_file"] = _write(fov, _path(runtime, "fov.nii"))
        self._results["out_transform"] = _path(runtime, "grid_to_native.tfm")
        sitk.WriteTransform(transform, self._results["out_transform"])
        return runtime


# -- brain mask -----------------------------------------------------------------------------


class BrainMaskInputSpec(_ThreadsInputSpec):
    anchor_file = File(exists=True, mandatory=True, desc="anchor on the grid")
    fov_file = File(exists=True, mandatory=True, desc="anchor's field of view on the grid")
    params = traits.Dict(mandatory=True, desc="MaskParams as a dict")


class BrainMaskOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="brain mask on the grid (uint8, gzipped NIfTI)")
    template_nmi = traits.Float(desc="NMI of the registered anchor and the template")
    template_corr = traits.Float(desc="correlation of the registered anchor and the template")
    volume_cm3 = traits.Float(desc="mask volume")


class BrainMask(SimpleInterface):
    """Template brain mask refined on the registered anchor; template-similarity QC."""

    input_spec = BrainMaskInputSpec
    output_spec = BrainMaskOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        params = from_dict(normalise.MaskParams, self.inputs.params)
        anchor = array_xyz(sitk.ReadImage(self.inputs.anchor_file, sitk.sitkFloat32))
        fov = array_xyz(sitk.ReadImage(self.inputs.fov_file, sitk.sitkUInt8)) > 0
        t1, tmask = template_on_grid()
        mask = normalise.refine_mask(tmask, anchor, fov, params)
        brain = (tmask > 0) & fov
        self._results["template_nmi"] = qc.nmi(anchor, t1, brain)
        self._results["template_corr"] = qc.correlation(anchor, t1, brain)
        self._results["volume_cm3"] = float(mask.sum()) / 1000.0
        img = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0)))
        img.CopyInformation(grid_reference(sitk.sitkUInt8))
        self._results["out_file"] = _path(runtime, "mask.nii.gz")
        sitk.WriteImage(img, self._results["out_file"], useCompression=True)
        return runtime


# -- normalisation and stacking -----------------------------------------------------------


class NormaliseInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True, desc="channels on the grid")
    roles = traits.List(traits.Str, mandatory=True, desc="role of each file in in_files")
    channels = traits.List(traits.Str, mandatory=True, desc="output channel order")
    anchor = traits.Str(mandatory=True, desc="role every channel was registered to")
    fill_missing = traits.Enum("zeros", "anchor", usedefault=True, desc="missing channels")
    mask_file = File(exists=True, mandatory=True)
    params = traits.Dict(mandatory=True, desc="NormaliseParams as a dict")


class NormaliseOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="(C, X, Y, Z) float32 .npy")
    stats_file = File(exists=True, desc="JSON: per-channel statistics, fills, NMI to anchor")


class Normalise(SimpleInterface):
    """Z-score each channel inside the brain and stack them channels-first."""

    input_spec = NormaliseInputSpec
    output_spec = NormaliseOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        params = from_dict(normalise.NormaliseParams, self.inputs.params)
        mask = array_xyz(sitk.ReadImage(self.inputs.mask_file, sitk.sitkUInt8))
        images = {
            role: array_xyz(sitk.ReadImage(path, sitk.sitkFloat32))
            for role, path in zip(self.inputs.roles, self.inputs.in_files, strict=True)
        }
        anchor = images[self.inputs.anchor]
        brain = mask > 0
        stack = np.zeros((len(self.inputs.channels), *mask.shape), dtype=np.float32)
        stats: dict[str, Any] = {"channels": {}, "channelNMI": {}}
        for c, role in enumerate(self.inputs.channels):
            source = role
            if role not in images:
                if self.inputs.fill_missing == "zeros":
                    stats["channels"][role] = {"source": "missing: zero-filled"}
                    continue
                source = self.inputs.anchor
            stack[c], channel_stats = normalise.zscore(images[source], mask, params)
            channel_stats["source"] = "acquired" if source == role else f"missing: copy of {source}"
            stats["channels"][role] = channel_stats
            if source == role and role != self.inputs.anchor:
                stats["channelNMI"][role] = qc.nmi(images[role], anchor, brain)
        self._results["out_file"] = _path(runtime, "input.npy")
        np.save(self._results["out_file"], stack)
        self._results["stats_file"] = _path(runtime, "stats.json")
        Path(self._results["stats_file"]).write_text(json.dumps(stats, indent=1))
        return runtime
