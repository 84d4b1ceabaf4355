"""Findings from model output: volumes, lesions, hemorrhage probabilities and key slices.

Pure functions of arrays; the postprocess stage feeds them what earlier stages wrote.

* glioma: BraTS labels on the model grid (1 necrosis/non-enhancing core, 2 edema,
  4 enhancing tumour) → ET, NCR, ED, TC = ET + NCR, WT = TC + ED in cm³ and % of brain.
* metastasis: a lesion label or probability map on the grid → connected lesions with
  volume, longest diameter (in the patient's space) and coarse MNI location.
* hemorrhage: per-slice probabilities (N × 6) → per-subtype study probability (max over
  slices), key slices, and a bleed volume estimated from HU on the flagged slices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from radpipe.results import atlas
from radpipe.results.native import GridMapping, mni_of_grid_index
from radpipe.results.schema import Finding, Lesion, Measurement, SliceFinding
from radpipe.results.uids import derived_uid

NCR, ED, ET = 1, 2, 4

#: Glioma compartments: key → (label shown to people, BraTS labels included).
GLIOMA_REGIONS: dict[str, tuple[str, tuple[int, ...]]] = {
    "ET": ("Enhancing tumour", (ET,)),
    "NCR": ("Necrosis / non-enhancing core", (NCR,)),
    "ED": ("Peritumoral edema", (ED,)),
    "TC": ("Tumour core (ET + NCR)", (ET, NCR)),
    "WT": ("Whole tumour (TC + ED)", (ET, NCR, ED)),
}

#: Output order of the hemorrhage model.
HEMORRHAGE_CLASSES = (
    "any",
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
)
HEMORRHAGE_LABELS = {
    "any": "Any intracranial hemorrhage",
    "epidural": "Epidural",
    "intraparenchymal": "Intraparenchymal",
    "intraventricular": "Intraventricular",
    "subarachnoid": "Subarachnoid",
    "subdural": "Subdural",
}

#: Hounsfield range of acute blood used by the bleed-volume estimate.
BLOOD_HU = (50.0, 95.0)


def glioma_measurements(
    labels: NDArray[Any],
    mapping: GridMapping,
    brain_mask: NDArray[Any] | None = None,
    *,
    include_edema: bool = True,
) -> tuple[list[Measurement], float | None]:
    """Compartment volumes (cm³, % of brain) of a BraTS label map on the model grid.

    Returns the measurements and the brain volume (cm³) when a brain mask is given.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.uint8).ravel(), minlength=5)
    voxel = mapping.grid_voxel_cm3
    brain_cm3 = float(np.count_nonzero(brain_mask)) * voxel if brain_mask is not None else None
    out: list[Measurement] = []
    for key, (label, codes) in GLIOMA_REGIONS.items():
        if not include_edema and key in ("ED", "WT"):
            continue
        volume = float(sum(int(counts[c]) for c in codes)) * voxel
        percent = 100.0 * volume / brain_cm3 if brain_cm3 else None
        out.append(
            Measurement(
                name=key,
                label=label,
                value=round(volume, 3),
                unit="cm3",
                percent_of_brain=None if percent is None else round(percent, 3),
            )
        )
    return out, None if brain_cm3 is None else round(brain_cm3, 2)


def glioma_findings(measurements: Sequence[Measurement], min_cm3: float = 0.1) -> list[Finding]:
    """The sentences a report lists for a glioma segmentation."""
    volumes = {m.name: m.value for m in measurements}
    whole = volumes.get("WT", volumes.get("TC", 0.0))
    if whole < min_cm3:
        return [Finding(code="glioma", text="No tumour segmented.", present=False)]
    parts = [f"tumour core {volumes.get('TC', 0.0):.1f} cm³"]
    if "ET" in volumes:
        parts.append(f"enhancing {volumes['ET']:.1f} cm³")
    if "ED" in volumes:
        parts.append(f"edema {volumes['ED']:.1f} cm³")
    text = "Tumour segmented: " + ", ".join(parts) + "."
    return [Finding(code="glioma", text=text, present=True)]


def _longest_diameter(points: NDArray[np.float64]) -> float:
    """Largest distance between two points (mm), over the convex hull when it has one."""
    if len(points) < 2:
        return 0.0
    if len(points) > 4:
        with contextlib.suppress(QhullError):  # flat or degenerate: keep all points
            points = points[ConvexHull(points).vertices]
    return float(pdist(points).max())


def _as_lesion_mask(prediction: NDArray[Any], threshold: float) -> NDArray[np.bool_]:
    """A lesion mask from a label map (any non-zero label) or a probability map."""
    if np.issubdtype(prediction.dtype, np.floating):
        return np.asarray(prediction >= threshold)
    return np.asarray(prediction > 0)


def metastasis_lesions(
    prediction: NDArray[Any],
    mapping: GridMapping,
    job_uid: str,
    *,
    min_diameter_mm: float = 2.0,
    threshold: float = 0.5,
    core_labels: tuple[int, ...] | None = (NCR, ET),
) -> tuple[list[Lesion], NDArray[np.uint16]]:
    """Connected lesions of a metastasis prediction on the grid, largest first.

    A uint16/int instance map (infer's output: lesions numbered 1..N) is taken as it is; a
    uint8 BraTS-style label map counts only the core (ET + NCR) as lesion, so surrounding
    edema does not merge neighbours; a binary or probability map counts every voxel. Lesions
    whose longest diameter is below ``min_diameter_mm`` are dropped as noise. Also returns
    the grid map of the kept lesions, numbered by lesion id.
    """
    pred = np.asarray(prediction)
    if pred.dtype.kind in "iu" and pred.dtype.itemsize > 1:
        # an instance map (infer's uint16 lesions 1..N): the model already separated them
        components, count = pred.astype(np.int32), int(pred.max(initial=0))
    else:
        if core_labels and pred.dtype == np.uint8 and pred.max(initial=0) > 1:
            mask = np.isin(pred, core_labels)  # BraTS labels: the core, not the edema
        else:
            mask = _as_lesion_mask(pred, threshold)
        components, count = ndi.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    numbered = np.zeros(pred.shape, dtype=np.uint16)
    if count == 0:
        return [], numbered
    objects = ndi.find_objects(components)
    edge_mm = mapping.volume_scale ** (1.0 / 3.0)  # one grid voxel's edge in patient mm
    found: list[dict[str, Any]] = []
    for index, box in enumerate(objects, start=1):
        if box is None:
            continue
        local = components[box] == index
        offset = np.array([s.start for s in box])
        voxels = np.argwhere(local) + offset
        surface = np.argwhere(local & ~ndi.binary_erosion(local)) + offset
        native = mapping.grid_index_to_native_lps(surface)
        # centre-to-centre distance misses half a voxel at each end
        diameter = _longest_diameter(native) + edge_mm
        if diameter < min_diameter_mm:
            continue
        centre_grid = voxels.mean(axis=0)
        centre_native = mapping.grid_index_to_native_lps(centre_grid[None])[0]
        centre_mni = mni_of_grid_index(centre_grid[None])[0]
        slice_index = round(float(mapping.native_lps_to_index(centre_native[None])[0][2]))
        found.append(
            {
                "volume": float(len(voxels)) * mapping.grid_voxel_cm3,
                "diameter": diameter,
                "native": centre_native,
                "mni": centre_mni,
                "slice": slice_index,
                "component": index,
            }
        )
    found.sort(key=lambda item: -item["volume"])
    lesions = []
    lookup = np.zeros(count + 1, dtype=np.uint16)
    for number, item in enumerate(found, start=1):
        lookup[item["component"]] = number
        side, where = atlas.describe(item["mni"])
        lesions.append(
            Lesion(
                id=number,
                tracking_uid=derived_uid(job_uid, "lesion", number),
                label="Metastasis",
                volume_cm3=round(item["volume"], 4),
                longest_diameter_mm=round(item["diameter"], 1),
                centre_patient_mm=[round(float(v), 1) for v in item["native"]],
                centre_mni_mm=[round(float(v), 1) for v in item["mni"]],
                hemisphere=side,
                location=where,
                slice_index=item["slice"],
            )
        )
    numbered = lookup[components]
    return lesions, numbered


def metastasis_measurements(lesions: Sequence[Lesion]) -> list[Measurement]:
    """Study-level numbers of a metastasis result."""
    total = sum(lesion.volume_cm3 for lesion in lesions)
    largest = max((lesion.longest_diameter_mm for lesion in lesions), default=0.0)
    return [
        Measurement(name="lesionCount", label="Lesions", value=len(lesions), unit="count"),
        Measurement(
            name="totalVolume", label="Total lesion volume", value=round(total, 3), unit="cm3"
        ),
        Measurement(
            name="largestDiameter", label="Largest diameter", value=round(largest, 1), unit="mm"
        ),
    ]


def metastasis_findings(lesions: Sequence[Lesion]) -> list[Finding]:
    """Sentences for a metastasis result."""
    if not lesions:
        return [Finding(code="metastasis", text="No enhancing lesion detected.", present=False)]
    noun = "lesion" if len(lesions) == 1 else "lesions"
    largest = lesions[0]
    text = (
        f"{len(lesions)} enhancing {noun} detected; largest {largest.longest_diameter_mm:.1f} mm "
        f"({largest.location})."
    )
    return [Finding(code="metastasis", text=text, present=True)]


@dataclass(frozen=True)
class SliceRef:
    """A CT slice as preprocess lists it in ``slices.json``."""

    sop_instance_uid: str | None = None
    instance_number: int | None = None
    z: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SliceRef:
        """Tolerates camelCase and the header keyword spelling."""
        return cls(
            sop_instance_uid=data.get("sopInstanceUID") or data.get("SOPInstanceUID"),
            instance_number=data.get("instanceNumber", data.get("InstanceNumber")),
            z=data.get("z"),
        )


def hemorrhage_probabilities(probabilities: NDArray[Any]) -> dict[str, float]:
    """Per-subtype study probability: the highest slice probability of each class."""
    probs = np.asarray(probabilities, dtype=float).reshape(-1, len(HEMORRHAGE_CLASSES))
    if len(probs) == 0:
        return dict.fromkeys(HEMORRHAGE_CLASSES, 0.0)
    top = probs.max(axis=0)
    return {name: round(float(p), 4) for name, p in zip(HEMORRHAGE_CLASSES, top, strict=True)}


def key_slices(
    probabilities: NDArray[Any], slices: Sequence[SliceRef], count: int = 3
) -> list[SliceFinding]:
    """The ``count`` slices with the highest 'any' probability, in slice order."""
    probs = np.asarray(probabilities, dtype=float).reshape(-1, len(HEMORRHAGE_CLASSES))
    order = np.argsort(-probs[:, 0], kind="stable")[: max(0, count)]
    out = []
    for index in sorted(int(i) for i in order):
        ref = slices[index] if index < len(slices) else SliceRef()
        out.append(
            SliceFinding(
                index=index,
                instance_number=ref.instance_number,
                sop_instance_uid=ref.sop_instance_uid,
                probabilities={
                    name: round(float(p), 4)
                    for name, p in zip(HEMORRHAGE_CLASSES, probs[index], strict=True)
                },
            )
        )
    return out


def bleed_volume(
    hu: NDArray[Any],
    spacing_mm: Sequence[float],
    flagged: NDArray[np.bool_],
    *,
    hu_range: tuple[float, float] = BLOOD_HU,
) -> tuple[float, NDArray[np.bool_]]:
    """Estimated acute blood volume (cm³) and its mask, from HU on the flagged slices.

    ``hu`` is (slice, row, column) in Hounsfield units and ``spacing_mm`` (column, row,
    slice). Voxels in the blood HU range after in-plane smoothing, inside the skull, on
    slices the model flagged, with speckle removed. An estimate (reported as such): calcium,
    beam hardening and partial volume move it by a few cm³.
    """
    volume = np.asarray(hu, dtype=np.float32)
    smooth = ndi.uniform_filter(volume, size=(1, 3, 3))
    bone = volume > 300
    # inside the skull: fill the bone ring slice by slice, then take the bone itself away
    inside = np.zeros_like(bone)
    for k in range(bone.shape[0]):
        inside[k] = ndi.binary_fill_holes(ndi.binary_closing(bone[k], iterations=2))
    inside &= ~ndi.binary_dilation(bone, iterations=1)
    blood = (smooth >= hu_range[0]) & (smooth <= hu_range[1]) & inside
    blood &= np.asarray(flagged, dtype=bool)[:, None, None]
    blood = ndi.binary_opening(blood, structure=np.ones((1, 3, 3), dtype=bool))
    voxel_cm3 = float(np.prod(spacing_mm)) / 1000.0
    components, count = ndi.label(blood)
    if count:
        sizes = np.bincount(components.ravel())
        keep = sizes * voxel_cm3 >= 0.05
        keep[0] = False
        blood = keep[components]
    return round(float(np.count_nonzero(blood)) * voxel_cm3, 3), blood


def hemorrhage_findings(
    study_probs: dict[str, float], threshold: float = 0.5, volume_cm3: float | None = None
) -> list[Finding]:
    """One finding per subtype, 'any' first."""
    out = []
    for name in HEMORRHAGE_CLASSES:
        p = study_probs.get(name, 0.0)
        present = p >= threshold
        label = HEMORRHAGE_LABELS[name]
        if name == "any":
            if present:
                vol = f", estimated volume {volume_cm3:.1f} cm³" if volume_cm3 is not None else ""
                text = f"Intracranial hemorrhage likely (p = {p:.2f}{vol})."
            else:
                text = f"No intracranial hemorrhage detected (p = {p:.2f})."
        else:
            text = f"{label} hemorrhage {'likely' if present else 'not detected'} (p = {p:.2f})."
        out.append(Finding(code=name, text=text, present=present, probability=p))
    return out


def hemorrhage_measurements(
    study_probs: dict[str, float], volume_cm3: float | None
) -> list[Measurement]:
    """Study-level numbers of a hemorrhage result."""
    out = [
        Measurement(name=f"p_{name}", label=HEMORRHAGE_LABELS[name], value=p, unit="1")
        for name, p in study_probs.items()
    ]
    if volume_cm3 is not None:
        out.append(
            Measurement(
                name="bleedVolume", label="Estimated bleed volume", value=volume_cm3, unit="cm3"
            )
        )
    return out
