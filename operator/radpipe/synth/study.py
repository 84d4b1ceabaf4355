"""Generate one synthetic study: phantom → pose → one resample per series → DICOM + truth.

The random stream is split per concern (identity, anatomy, pathology, pose, protocol, noise)
with ``numpy.random.SeedSequence.spawn``, so adding a series to a protocol does not change the
pathology drawn for the same seed.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage as ndi

from radpipe import __version__
from radpipe.synth import anatomy as an
from radpipe.synth import contrasts as con
from radpipe.synth import pathology as pa
from radpipe.synth.geometry import (
    BRAIN_CENTRE_MNI,
    Pose,
    SeriesGeometry,
    orientation,
    partial_rotation,
    phantom_image,
    place_stack,
    random_pose,
    resample,
)
from radpipe.synth.protocols import VENDORS, Scanner, SeriesPlan, sample_scanner, sample_series_plan
from radpipe.synth.truth import (
    STUDY_KINDS,
    LesionTruth,
    SeriesTruth,
    StudyTruth,
    TransformTruth,
)
from radpipe.synth.writer import (
    PixelEncoding,
    StudyInfo,
    encoding_for,
    make_uid,
    safe_name,
    write_series,
)

GENERATOR = "radpipe.synth/1"
Progress = Callable[[str], None]

# Which habit family each vendor uses for the 3D T1 (pre and post contrast).
T1_3D_FAMILY = {
    "ge": ("bravo", "spgr"),
    "siemens": ("mprage",),
    "philips": ("tfe",),
    "canon": ("mprage",),
}
T2_AX_FAMILY = {
    "ge": ("fse", "propeller"),
    "siemens": ("tse", "blade"),
    "philips": ("tse", "multivane"),
    "canon": ("fse",),
}
FLAIR_FAMILY = {
    "ge": ("flair2d", "flair2d", "cubeflair"),
    "siemens": ("tirm", "tirm", "spaceflair"),
    "philips": ("flair2d", "vistaflair"),
    "canon": ("flair2d", "flair2d", "flair3d"),
}
STUDY_DESCRIPTIONS = {
    "MR": (
        "MR BRAIN W WO CONTRAST",
        "MRT Schädel nativ + KM",
        "IRM CEREBRALE",
        "MRI HEAD",
        "Brain",
    ),
    "CT": ("CT HEAD WO CONTRAST", "CT Schädel nativ", "CT CEREBRAL", "HEAD ROUTINE", "Head"),
}


@dataclass
class _Acq:
    """One series to produce: its plan and how to render it."""

    plan: SeriesPlan
    series_class: str
    render: str  # contrast key, or "loc", "dwi", "scout"
    truth_labels: bool = False


def _rng(ss: np.random.SeedSequence) -> np.random.Generator:
    return np.random.default_rng(ss)


def _digits(text: str, n: int) -> str:
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return str(h % 10**n).zfill(n)


def _study_info(
    kind: str,
    seed: int,
    vendor: str,
    rng: np.random.Generator,
    patient_id: str | None,
    accession: str | None,
    patient_name: str | None,
    modality: str,
) -> StudyInfo:
    tag = kind.split("-", 1)[1].upper()
    pid = patient_id or f"SYN{_digits(f'{kind}/{seed}/pid', 7)}"
    acc = accession or _digits(f"{kind}/{seed}/{vendor}/acc", 8)
    name = patient_name or f"SYNTH^{tag}^{seed:04d}"
    key = f"{kind}/{seed}/{vendor}/{pid}/{acc}/{name}"
    study_day = date(2016, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 9)))
    age = int(rng.integers(25, 86))
    birth = study_day - timedelta(days=age * 365 + int(rng.integers(0, 365)))
    hh, mm = int(rng.integers(7, 20)), int(rng.integers(0, 60))
    return StudyInfo(
        study_uid=make_uid(key, "study"),
        frame_of_reference_uid=make_uid(key, "frame"),
        patient_id=pid,
        patient_name=name,
        birth_date=birth.strftime("%Y%m%d"),
        sex=str(rng.choice(["F", "M"])),
        age=f"{age:03d}Y",
        weight_kg=float(round(rng.uniform(50, 105), 1)),
        accession=acc,
        study_date=study_day.strftime("%Y%m%d"),
        study_time=f"{hh:02d}{mm:02d}{int(rng.integers(0, 60)):02d}",
        study_id=_digits(key + "/id", 5),
        study_description=str(rng.choice(STUDY_DESCRIPTIONS[modality])),
        institution="RADPIPE SYNTHETIC HOSPITAL",
    )


def _series_numbers(vendor: str, n: int) -> list[int]:
    # vendor numbering habits: Philips 101, 201, …; Canon 100s for some; GE/Siemens 1, 2, …
    if vendor == "philips":
        return [100 * (i + 1) + 1 for i in range(n)]
    if vendor == "canon":
        return [i + 2 for i in range(n)]
    return [i + 1 for i in range(n)]


def _mr_protocol(scanner: Scanner, rng: np.random.Generator, small: bool, kind: str) -> list[_Acq]:
    v = scanner.vendor

    def plan(cls: str, family: str | None = None, plane: str | None = None) -> SeriesPlan:
        return sample_series_plan(scanner, cls, rng, family=family, plane=plane, small=small)

    t1_family = str(rng.choice(T1_3D_FAMILY[v]))
    t1_plane = str(rng.choice(["sag", "sag", "ax"]))
    flair_family = str(rng.choice(FLAIR_FAMILY[v]))
    acqs = [
        _Acq(plan("localizer"), "localizer", "loc"),
        _Acq(plan("t1", t1_family, t1_plane), "t1", "t1"),
        _Acq(plan("t2", str(rng.choice(T2_AX_FAMILY[v])), "ax"), "t2", "t2"),
        _Acq(plan("flair", flair_family, "ax" if "2d" in flair_family else None), "flair", "flair"),
        _Acq(plan("dwi"), "dwi", "dwi"),
    ]
    adc = plan("adc")
    acqs.append(_Acq(adc, "adc", "adc"))
    if rng.random() < 0.35:
        acqs.append(_Acq(plan("swi"), "swi", "swi"))
    t1c = plan("t1c", t1_family, t1_plane)
    acqs.append(_Acq(t1c, "t1c", "t1c", truth_labels=True))
    mpr = "reformat" if v == "ge" else "mpr"
    derived = plan("derived", str(rng.choice([mpr, mpr, "mip"])))
    acqs.append(_Acq(derived, "derived", derived.contrast))
    return acqs


def _ct_protocol(scanner: Scanner, rng: np.random.Generator, small: bool) -> list[_Acq]:
    def plan(cls: str, family: str | None = None) -> SeriesPlan:
        return sample_series_plan(scanner, cls, rng, family=family, plane="ax", small=small)

    scout = sample_series_plan(scanner, "ct_scout", rng, plane="sag", small=small)
    return [
        _Acq(scout, "ct_scout", "scout"),
        _Acq(plan("ct_brain", "head5"), "ct_brain", "ct"),
        _Acq(plan("ct_brain", "headthin"), "ct_brain", "ct", truth_labels=True),
        _Acq(plan("ct_bone", "bone"), "ct_bone", "ct"),
    ]


def _geometry(
    plan: SeriesPlan, pose: Pose, rng: np.random.Generator, modality: str
) -> list[SeriesGeometry]:
    """Place a series on the head: centred on the brain, aligned (MR) or tilted (CT) to it."""
    centre = pose.to_patient(BRAIN_CENTRE_MNI[None])[0] + rng.normal(0, 3.0, size=3)
    if modality == "CT":
        align = np.eye(3)
        tilt = float(plan.headers.get("GantryDetectorTilt", 0.0))
    else:
        align = partial_rotation(pose.rotation, float(rng.uniform(0.3, 1.0)))
        tilt = float(rng.uniform(-4, 4))
    planes = ["sag", "cor", "ax"] if plan.plane == "3plane" else [plan.plane]
    out = []
    for p in planes:
        if plan.plane == "3plane":
            r, c = orientation(p, np.eye(3))
        else:
            r, c = orientation(p, align, tilt)
        out.append(
            place_stack(
                centre,
                r,
                c,
                plan.rows,
                plan.columns,
                plan.pixel_spacing,
                plan.n_slices,
                plan.spacing,
                plan.thickness,
            )
        )
    return out


def _ct_for_patient_tilt(plan: SeriesPlan, geom: SeriesGeometry) -> SeriesPlan:
    tilt = float(np.degrees(np.arcsin(np.clip(-geom.col_dir[2], -1, 1))))
    headers = dict(plan.headers)
    headers["GantryDetectorTilt"] = round(tilt, 1)
    return replace(plan, headers=headers)


class _NoisePool:
    """Gaussian noise from a pre-drawn pool read at random offsets.

    Drawing 100 million normals per study costs seconds; reading a 4-million-sample pool at a
    random offset per slice gives noise no eye or model can tell from fresh draws.
    """

    SIZE = 1 << 22

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.pool = rng.standard_normal(self.SIZE, dtype=np.float32)

    def normal(self, shape: tuple[int, ...], sigma: float) -> NDArray[np.float32]:
        """An array of N(0, sigma²) noise."""
        out = np.empty(shape, dtype=np.float32)
        flat = out.reshape(shape[0], -1) if len(shape) > 1 else out.reshape(1, -1)
        n = flat.shape[1]
        if n >= self.SIZE:
            return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
        for row in flat:
            o = int(self.rng.integers(0, self.SIZE - n))
            np.multiply(self.pool[o : o + n], np.float32(sigma), out=row)
        return out

    def rician(self, img: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
        """Magnitude-image noise: modulus of a noisy real and a noisy imaginary channel."""
        # in place on the noise arrays: the same float32 operations as sqrt(re² + im²),
        # without three more volume-sized temporaries
        re = self.normal(img.shape, sigma)
        re += img
        re *= re
        im = self.normal(img.shape, sigma)
        im *= im
        re += im
        return np.sqrt(re, out=re)


class _SeriesWriter:
    """Writes each series' DICOM files, in a second process when ``parallel``.

    Encoding a few hundred instances is pure-Python work (pydicom) that takes as long as
    rendering them, so one process renders series n+1 while the other writes series n. The
    files are the same bytes either way. The writer is a spawned process (not forked: the
    parent runs SimpleITK's threads), started first so its imports overlap the phantom build.
    """

    def __init__(self, parallel: bool) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future[list[str]]] = []
        if parallel:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(1, mp_context=context)
            self._pool.submit(int)  # start the process now

    def write(self, **series: Any) -> None:
        """``write_series(**series)``, now or in the writer process."""
        if self._pool is None:
            write_series(**series)
        else:
            self._pending.append(self._pool.submit(write_series, **series))

    def __enter__(self) -> _SeriesWriter:
        return self

    def __exit__(self, failed: type[BaseException] | None, *_: object) -> None:
        """Wait for every series (a writer's error is raised here); after an error, stop."""
        if self._pool is None:
            return
        try:
            if failed is None:
                for future in self._pending:
                    future.result()
        finally:
            self._pool.shutdown(cancel_futures=True)


def _ct_post(
    img: NDArray[np.float32],
    plan: SeriesPlan,
    geom: SeriesGeometry,
    noise: _NoisePool,
    vendor: str,
) -> NDArray[np.float32]:
    rng = noise.rng
    bone = plan.series_class == "ct_bone"
    thin = geom.thickness < 2.0
    if bone:
        blur = ndi.uniform_filter(img, size=(1, 3, 3))
        img = img + 1.2 * (img - blur)  # sharp kernel: edge enhancement
    sigma = float(
        rng.uniform(25, 45) if bone else rng.uniform(7, 12) if thin else rng.uniform(3, 5)
    )
    img = img + noise.normal(img.shape, sigma)
    # outside the circular reconstruction field of view
    yy, xx = np.ogrid[: geom.rows, : geom.columns]
    rr = np.hypot(yy - (geom.rows - 1) / 2, xx - (geom.columns - 1) / 2)
    outside = rr > min(geom.rows, geom.columns) / 2
    img[:, outside] = -3024.0 if vendor in ("ge", "canon") else -1024.0
    return img


def _to_nifti(array: NDArray[np.generic], geom: SeriesGeometry, path: Path) -> None:
    import nibabel as nib

    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ geom.affine_lps()  # LPS → RAS for NIfTI
    img = nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def generate_study(
    kind: str,
    out_dir: Path,
    *,
    seed: int = 0,
    vendor: str | None = None,
    patient_id: str | None = None,
    accession: str | None = None,
    patient_name: str | None = None,
    small: bool = False,
    progress: Progress | None = None,
    parallel: bool | None = None,
) -> StudyTruth:
    """Write a complete synthetic DICOM study and its ground truth under ``out_dir``.

    ``kind`` is one of ``mr-glioma``, ``mr-metastasis``, ``ct-hemorrhage``, ``mr-normal``,
    ``ct-normal``. DICOM goes to ``out_dir/dicom/<SeriesNumber>_<desc>/IM0001.dcm…`` and truth
    to ``out_dir/truth/`` (truth.json, labels_mni.nii.gz and label maps in the acquisition space
    of the T1c / thin axial CT series). The same arguments always give the same files.
    ``small`` shrinks matrices and slice counts (for tests); ``progress`` is called with a
    short message as each series is rendered. ``parallel`` writes DICOM in a second process
    while the next series renders (default: for full-size studies on a multi-core machine;
    a corpus already uses every core and passes False).
    """
    if kind not in STUDY_KINDS:
        raise ValueError(f"unknown study kind {kind!r}; choose one of {', '.join(STUDY_KINDS)}")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    streams = np.random.SeedSequence([seed, STUDY_KINDS.index(kind)]).spawn(7)
    r_id, r_anat, r_path, r_pose, r_proto, r_noise, r_vendor = (_rng(s) for s in streams)
    if vendor is None:
        vendor = str(r_vendor.choice(VENDORS))
    if vendor not in VENDORS:
        raise ValueError(f"unknown vendor {vendor!r}; choose one of {', '.join(VENDORS)}")
    modality = "CT" if kind.startswith("ct-") else "MR"
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    (out_dir / "truth").mkdir(parents=True, exist_ok=True)

    if parallel is None:
        # a daemonic process (a multiprocessing.Pool worker) may not start another
        daemon = multiprocessing.current_process().daemon
        parallel = not small and (os.cpu_count() or 1) > 1 and not daemon
    with _SeriesWriter(parallel) as writer:
        info = _study_info(kind, seed, vendor, r_id, patient_id, accession, patient_name, modality)
        say("phantom")
        base = an.base_anatomy()
        layers = an.head_layers(base, r_anat)
        path = pa.for_kind(kind, base, r_path)
        pose = random_pose(r_pose)
        ph = con.Phantom(base, layers, path, r_anat)
        noise = _NoisePool(r_noise)
        scanner = sample_scanner(vendor, modality, r_proto)
        acqs = (
            _ct_protocol(scanner, r_proto, small)
            if modality == "CT"
            else _mr_protocol(scanner, r_proto, small, kind)
        )

        renders: dict[str, sitk.Image] = {}

        def phantom(contrast: str) -> sitk.Image:
            if contrast not in renders:
                arr = ph.render(contrast)
                if modality == "MR" and contrast != "adc":
                    ph.bias(arr)
                renders[contrast] = phantom_image(arr, base.affine)
            return renders[contrast]

        label_img = phantom_image(path.labels, base.affine)
        numbers = _series_numbers(vendor, len(acqs))
        series_truth: list[SeriesTruth] = []
        clock = int(info.study_time[:2]) * 3600 + int(info.study_time[2:4]) * 60 + 120
        for acq, number in zip(acqs, numbers, strict=True):
            plan = acq.plan
            say(f"series {number} {plan.series_class}")
            geoms = _geometry(plan, pose, r_noise, modality)
            if modality == "CT" and plan.series_class == "ct_brain":
                plan = _ct_for_patient_tilt(plan, geoms[0])
            stacks, extra, encoding = _pixels(acq, plan, geoms, pose, phantom, noise, scanner)
            if len(stacks) > len(geoms):  # DWI: b=0 and b=1000 stacks share one geometry
                geoms = geoms * len(stacks)
            series_uid = make_uid(info.study_uid, "series", number)
            desc = str(plan.headers.get("SeriesDescription", ""))
            folder = f"{number}_{safe_name(desc, plan.series_class)}"
            clock += int(r_noise.integers(60, 420))
            hhmmss = f"{clock // 3600 % 24:02d}{clock // 60 % 60:02d}{clock % 60:02d}"
            writer.write(
                out_dir=out_dir / "dicom" / folder,
                study=info,
                series_uid=series_uid,
                series_number=number,
                series_time=hhmmss,
                headers=plan.headers,
                geometries=geoms,
                stacks=stacks,
                encoding=encoding,
                extra_per_image=extra,
            )
            st = SeriesTruth(
                series_instance_uid=series_uid,
                series_number=number,
                description=desc,
                protocol_name=str(plan.headers.get("ProtocolName", "")),
                series_class=acq.series_class,
                family=plan.family,
                plane=plan.plane,
                n_instances=sum(stack.shape[0] for stack in stacks),
                path=f"dicom/{folder}",
            )
            if acq.truth_labels or (modality == "CT" and plan.series_class == "ct_brain"):
                lab = resample(label_img, pose, geoms[0], labels=True).astype(np.uint8)
                if acq.truth_labels:
                    rel = f"truth/labels_{number}_{acq.series_class}.nii.gz"
                    _to_nifti(lab, geoms[0], out_dir / rel)
                    st.labels_path = rel
                    if path.instances is not None:
                        inst_img = phantom_image(path.instances, base.affine)
                        inst = resample(inst_img, pose, geoms[0], labels=True)
                        _to_nifti(
                            inst,
                            geoms[0],
                            out_dir / f"truth/instances_{number}_{acq.series_class}.nii.gz",
                        )
                if path.kind == "hemorrhage" or kind == "ct-normal":
                    st.slice_labels = [
                        sorted(pa.HEMORRHAGE_NAMES[int(c)] for c in np.unique(sl) if c)
                        for sl in lab
                    ]
            series_truth.append(st)

        say("truth")
        truth = _truth(kind, seed, vendor, info, scanner, pose, base, path, series_truth)
        _write_mni_labels(out_dir, base, path)
        if path.instances is not None:
            truth.instances_mni = "truth/instances_mni.nii.gz"
    # truth.json last, once every DICOM file is written: its presence marks a finished study
    truth.save(out_dir / "truth" / "truth.json")
    return truth


def _pixels(
    acq: _Acq,
    plan: SeriesPlan,
    geoms: list[SeriesGeometry],
    pose: Pose,
    phantom: Callable[[str], sitk.Image],
    noise: _NoisePool,
    scanner: Scanner,
) -> tuple[list[NDArray[np.float32]], list[dict[str, Any]] | None, PixelEncoding]:
    """Resample, scale and add noise: real-world values per stack (HU for CT)."""
    vendor = scanner.vendor
    rng = noise.rng
    if acq.render == "scout":
        g = geoms[0]
        # lateral projection radiograph: integrate attenuation across the head (x, 220 mm)
        proj_geom = replace(g, thickness=220.0, spacing=1.0, n_slices=1)
        mean_hu = resample(phantom("ct"), pose, proj_geom, default=-1000.0, sub_mm=2.0)
        path_len = (mean_hu + 1000.0) / 1000.0 * 220.0  # water-equivalent mm
        img = path_len * 12.0 + noise.normal(path_len.shape, 8.0)
        return [img.astype(np.float32)], None, PixelEncoding(False, 12, 0.0)
    if scanner.modality == "CT":
        g = geoms[0]
        img = resample(phantom("ct"), pose, g, default=-1000.0, slab="mean")
        return [_ct_post(img, plan, g, noise, vendor)], None, encoding_for(vendor, "CT")

    encoding = encoding_for(vendor, "MR")
    scale = (
        float(rng.uniform(900, 2400))
        if encoding.bits_stored == 12
        else float(rng.uniform(1200, 6000))
    )
    if acq.render == "adc":
        g = geoms[0]
        adc = resample(phantom("adc"), pose, g)
        b0 = resample(phantom("b0"), pose, g)
        adc = adc + noise.normal(adc.shape, 60.0)
        adc[b0 < 0.08] = 0.0  # vendors mask the background of ADC maps
        return [np.clip(adc, 0, 4000)], None, encoding
    snr = {"t1": 30, "t1c": 30, "t2": 40, "flair": 25, "swi": 20, "dwi": 10, "loc": 15}
    stacks: list[NDArray[np.float32]] = []
    extra: list[dict[str, Any]] | None = None
    if acq.render == "dwi":
        g = geoms[0]
        b0 = resample(phantom("b0"), pose, g)
        b1000 = resample(phantom("dwi"), pose, g)
        s0 = 0.45 * scale / float(rng.uniform(18, 30))
        s1 = 0.45 * scale / float(rng.uniform(8, 14))
        stacks = [noise.rician(b0 * scale, s0), noise.rician(b1000 * scale, s1)]
        n = g.n_slices
        extra = [{"DiffusionBValue": 0.0} for _ in range(n)]
        extra += [{"DiffusionBValue": 1000.0} for _ in range(n)]
        return stacks, extra, encoding
    contrast = "t1" if acq.render == "loc" else acq.render
    sigma_rel = 0.55 / snr.get(acq.render, 25) * float(rng.uniform(0.7, 1.4))
    for g in geoms:
        img = resample(phantom(contrast), pose, g, slab=plan.slab)
        stacks.append(noise.rician(img * scale, sigma_rel * scale))
    return stacks, extra, encoding


def _truth(
    kind: str,
    seed: int,
    vendor: str,
    info: StudyInfo,
    scanner: Scanner,
    pose: Pose,
    base: an.BaseAnatomy,
    path: pa.Pathology,
    series: list[SeriesTruth],
) -> StudyTruth:
    voxel_cm3 = pose.scale**3 / 1000.0  # MNI voxels are 1 mm³ before head-size scaling
    labels = path.labels
    counts = np.bincount(labels.ravel(), minlength=6)
    inst_counts = (
        np.bincount(path.instances.ravel()) if path.instances is not None else np.zeros(1, int)
    )
    volumes: dict[str, float] = {}
    codes: dict[str, int] = {}
    subtypes: list[str] = []
    if path.kind in ("glioma", "metastasis"):
        codes = {"NCR": pa.NCR, "ED": pa.ED, "ET": pa.ET}
        ncr, ed, et = (float(counts[c]) * voxel_cm3 for c in (pa.NCR, pa.ED, pa.ET))
        volumes = {"ET": et, "NCR": ncr, "ED": ed, "TC": et + ncr, "WT": et + ncr + ed}
    elif path.kind == "hemorrhage" or kind == "ct-normal":
        codes = dict(pa.HEMORRHAGE_CODES)
        for name, c in pa.HEMORRHAGE_CODES.items():
            volumes[name] = float(counts[c]) * voxel_cm3
        subtypes = [n for n, c in pa.HEMORRHAGE_CODES.items() if counts[c] > 0]
        volumes["any"] = float(sum(counts[c] for c in pa.HEMORRHAGE_CODES.values())) * voxel_cm3
    volumes = {k: round(v, 4) for k, v in volumes.items()}
    lesions: list[LesionTruth] = []
    for les in path.lesions:
        if path.kind == "metastasis" and path.instances is not None:
            n_vox = int(inst_counts[les.index]) if les.index < inst_counts.size else 0
            vol = n_vox * voxel_cm3
            diameter = (6.0 * vol * 1000.0 / np.pi) ** (1 / 3)
        elif path.kind == "hemorrhage":
            code = pa.HEMORRHAGE_CODES[les.subtype or ""]
            vol = float(counts[code]) * voxel_cm3
            diameter = les.nominal_diameter_mm * pose.scale
        else:
            vol = volumes.get("TC", 0.0)
            diameter = les.nominal_diameter_mm * pose.scale
        if vol <= 0:
            continue
        centre = np.asarray(les.centre_mni)
        lesions.append(
            LesionTruth(
                label=les.label,
                subtype=les.subtype,
                index=les.index,
                volume_cm3=round(vol, 5),
                diameter_mm=round(float(diameter), 2),
                centre=[round(float(v), 2) for v in centre],
                centre_patient=[round(float(v), 2) for v in pose.to_patient(centre[None])[0]],
            )
        )
    return StudyTruth(
        study_instance_uid=info.study_uid,
        accession=info.accession,
        patient_id=info.patient_id,
        patient_name=info.patient_name,
        kind=kind,
        vendor=vendor,
        seed=seed,
        modality=scanner.modality,
        manufacturer=scanner.manufacturer,
        model=scanner.model,
        field_strength=scanner.field_strength,
        series=series,
        lesions=lesions,
        lesion_count=len(lesions),
        volumes_cm3=volumes,
        brain_cm3=round(float(np.count_nonzero(base.brain)) * voxel_cm3, 3),
        hemorrhage_subtypes=subtypes,
        label_codes=codes,
        transform=TransformTruth(
            matrix=[[round(float(v), 8) for v in row] for row in pose.matrix],
            angles_deg=[round(a, 4) for a in pose.angles_deg],
            scale=round(pose.scale, 6),
            translation_mm=[round(t, 4) for t in pose.translation],
        ),
        generator=f"{GENERATOR} radpipe {__version__}",
    )


def _write_mni_labels(out_dir: Path, base: an.BaseAnatomy, path: pa.Pathology) -> None:
    """Label maps on nilearn's own MNI152 1 mm grid (the padding below is cropped off)."""
    import nibabel as nib

    affine = base.affine.copy()
    affine[:3, 3] += affine[:3, 2] * an.PAD_BELOW
    crop = (slice(None), slice(None), slice(an.PAD_BELOW, None))
    nib.save(
        nib.Nifti1Image(np.ascontiguousarray(path.labels[crop]), affine),
        str(out_dir / "truth" / "labels_mni.nii.gz"),
    )
    if path.instances is not None:
        nib.save(
            nib.Nifti1Image(np.ascontiguousarray(path.instances[crop]), affine),
            str(out_dir / "truth" / "instances_mni.nii.gz"),
        )


def read_truth(study_dir: Path) -> StudyTruth:
    """Load ``truth/truth.json`` of a generated study."""
    return StudyTruth.load(Path(study_dir))


def truth_summary(truth: StudyTruth) -> str:
    """One-line human summary (for the CLI)."""
    parts = [f"{truth.kind} {truth.vendor} {truth.model}", f"{len(truth.series)} series"]
    if truth.volumes_cm3:
        parts.append(json.dumps({k: round(v, 1) for k, v in truth.volumes_cm3.items()}))
    if truth.lesion_count and truth.kind == "mr-metastasis":
        parts.append(f"{truth.lesion_count} lesions")
    return ", ".join(parts)
