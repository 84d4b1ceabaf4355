"""Training corpus for the series classifier: header sets of whole synthetic studies.

Vendor habits (how GE, Siemens, Philips and Canon scanners name and acquire each series
class) come from the synth catalog, :func:`radpipe.synth.protocols.sample_series_headers`.
On top of it this module adds what varies from *site* to site and study to study:

* study structure: a realistic MR brain or CT head series list, in acquisition order, with
  vendor-style SeriesNumbers (Philips 301, 401, ...; reformats numbered after their source);
* site renaming: each site has its own house names for some classes ("VOL T1 GD",
  "T1W_3D POST"), prefixes and suffixes ("WIP ", "NEURO_", " REPEAT"), descriptions in
  other languages and scripts, empty descriptions/protocol names, and typing errors;
* missing tags: optional attributes (ImagesInAcquisition, InversionTime, SequenceName,
  contrast agent, orientation, field strength...) dropped as anonymisers and old
  software do.

Everything is drawn from one ``numpy`` Generator, so a seed fixes the corpus exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radpipe.series.features import study_features
from radpipe.series.headers import SeriesHeader

VENDORS: tuple[str, ...] = ("ge", "siemens", "philips", "canon")

# (class, probability the study has it, (min, max) count). Order = acquisition order, roughly.
MR_PROTOCOL: tuple[tuple[str, float, tuple[int, int]], ...] = (
    ("localizer", 0.97, (1, 2)),
    ("t1", 0.85, (1, 2)),
    ("t2", 0.95, (1, 2)),
    ("flair", 0.93, (1, 2)),
    ("dwi", 0.9, (1, 1)),
    ("adc", 0.85, (1, 1)),
    ("swi", 0.5, (1, 1)),
    ("other", 0.35, (1, 2)),
    ("perfusion", 0.25, (1, 2)),
    ("t1c", 0.8, (1, 3)),
    ("derived", 0.55, (1, 3)),
)
CT_PROTOCOL: tuple[tuple[str, float, tuple[int, int]], ...] = (
    ("ct_scout", 0.97, (1, 2)),
    ("ct_brain", 0.98, (1, 2)),
    ("ct_bone", 0.8, (1, 2)),
    ("other", 0.5, (1, 1)),
)

#: Site house names per class: a site adopts some of them for its whole protocol.
SITE_NAMES: dict[str, tuple[str, ...]] = {
    "t1": (
        "T1W 3D",
        "VOL T1",
        "T1 VOLUME",
        "SAG T1 3D",
        "T1 MPR SAG",
        "T1_3D_ISO",
        "3D T1 pre",
        "T1 PRE",
        "T1 SE AX",
        "AX T1",
        "T1 native",
        "T1W_IR",
        "t1 pre gad",
        "T1 WO",
    ),
    "t1c": (
        "T1W 3D GD",
        "VOL T1 GD",
        "T1 VOLUME POST",
        "SAG T1 3D C+",
        "AX T1 +C",
        "T1 POST",
        "POST T1 MPR",
        "T1_3D_ISO_CE",
        "T1 Gd AX",
        "T1 postcontrast",
        "T1W_IR_GD",
        "AX T1 POST GAD",
        "t1 post gad",
        "T1 W",
        "T1 +GAD delayed",
        "T1 enhanced",
    ),
    "t2": (
        "T2W AX",
        "AX T2",
        "T2 TSE",
        "T2 FSE AX",
        "T2W_TSE",
        "T2 axial",
        "TRA T2",
        "T2 HR",
        "COR T2",
    ),
    "flair": (
        "FLAIR",
        "AX FLAIR",
        "T2 FLAIR",
        "T2W_FLAIR",
        "3D FLAIR",
        "FLAIR VOL",
        "dark fluid",
        "T2 DARKFLUID",
        "FLAIR SAG 3D",
    ),
    "dwi": ("DWI", "DIFF", "DWI b1000", "AX DIFFUSION", "TRACEW", "EPI DWI", "DWI TRACE"),
    "adc": ("ADC", "ADC MAP", "Apparent Diffusion Coefficient", "dADC", "DWI ADC"),
    "swi": ("SWI", "SWI mIP", "SUSCEPTIBILITY", "AX SWI", "VEN_BOLD"),
    "localizer": ("LOC", "SCOUT", "SURVEY", "LOCALIZER", "3 PLANE", "tri-plane"),
    "perfusion": ("PERFUSION", "DSC", "PWI", "BOLUS PERF", "rCBV", "ASL"),
    "derived": ("MPR", "MIP", "REFORMAT", "COR REFORMAT", "MPR AX", "SUB", "SUBTRACTION"),
    "ct_brain": ("HEAD", "BRAIN", "HEAD 5mm", "ROUTINE HEAD", "AX BRAIN", "BRAIN STD"),
    "ct_bone": ("BONE", "HEAD BONE", "AX BONE", "BONE 1mm", "SKULL", "OSSEOUS", "BONE WINDOW"),
    "ct_scout": ("SCOUT", "TOPO", "TOPOGRAM", "SURVIEW", "LOCATOR"),
    "other": ("DOSE REPORT", "SCREEN SAVE", "PD", "TOF", "ANGIO", "SPECTRO", "PHOENIX"),
}

#: Descriptions in other scripts (East-Asian sites), added to the catalog's European ones.
SITE_FOREIGN: dict[str, tuple[str, ...]] = {
    "t1": ("T1 単純", "T1 平扫", "T1 조영전"),
    "t1c": ("T1 造影", "T1 增强", "T1 조영후", "造影 T1 3D"),
    "t2": ("T2 横断", "T2 轴位", "T2 축상"),
    "flair": ("FLAIR 横断", "FLAIR 轴位"),
    "dwi": ("拡散強調", "弥散"),
    "ct_brain": ("頭部 単純", "头颅平扫"),
}

_PREFIXES: tuple[str, ...] = ("WIP ", "NEURO_", "BR_", "1_", "MS_", "+ ", "ROUTINE ")
_SUFFIXES: tuple[str, ...] = (" REPEAT", "_2", " (2)", " MOCO", "_ND", " NEW", " RPT", " SENSE")

#: (keyword, probability of being dropped) for the site's anonymiser or old software.
_DROPPABLE: tuple[tuple[str, float], ...] = (
    ("ImagesInAcquisition", 0.35),
    ("SpacingBetweenSlices", 0.1),
    ("InversionTime", 0.1),
    ("EchoTrainLength", 0.15),
    ("SequenceName", 0.15),
    ("ScanOptions", 0.15),
    ("MagneticFieldStrength", 0.05),
    ("ImageOrientationPatient", 0.03),
    ("ProtocolName", 0.05),
    ("Manufacturer", 0.03),
    ("ConvolutionKernel", 0.05),
    ("SequenceVariant", 0.05),
    ("FlipAngle", 0.03),
    ("PixelSpacing", 0.02),
    ("ContrastBolusAgent", 0.05),
    ("DiffusionBValue", 0.4),
)


@dataclass(frozen=True)
class Site:
    """One site's naming habits, fixed for all its studies."""

    vendor: str
    house_names: dict[str, str]
    rename_rate: float
    prefix: str
    foreign_rate: float
    typo_rate: float
    blank_rate: float
    opaque_rate: float
    drop_scale: float


@dataclass
class LabelledSeries:
    """One series of a corpus study: its header and its true class."""

    header: SeriesHeader
    label: str


@dataclass
class LabelledStudy:
    """One synthetic study: its vendor and its series in acquisition order."""

    vendor: str
    modality: str
    series: list[LabelledSeries] = field(default_factory=list)


@dataclass
class Corpus:
    """Feature rows with labels, vendors and study ids (one row per series)."""

    rows: list[list[Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    vendors: list[str] = field(default_factory=list)
    studies: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def sample_site(vendor: str, rng: np.random.Generator) -> Site:
    """Draw one site of ``vendor`` with its house names and sloppiness."""
    house = {cls: _pick(rng, names) for cls, names in SITE_NAMES.items() if rng.random() < 0.35}
    return Site(
        vendor=vendor,
        house_names=house,
        rename_rate=float(rng.uniform(0.3, 0.9)),
        prefix=_pick(rng, _PREFIXES) if rng.random() < 0.15 else "",
        foreign_rate=0.08 if rng.random() < 0.15 else 0.0,
        typo_rate=float(rng.uniform(0.0, 0.06)),
        blank_rate=float(rng.choice([0.0, 0.02, 0.1])),
        opaque_rate=float(rng.choice([0.0, 0.04, 0.12])),
        drop_scale=float(rng.choice([0.3, 1.0, 2.0])),
    )


def _opaque_name(rng: np.random.Generator) -> str:
    """A made-up house name that says nothing ("SEQ 7", "KXQ_2"), so physics must decide."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    word = "".join(letters[int(rng.integers(26))] for _ in range(int(rng.integers(2, 6))))
    style = rng.random()
    if style < 0.3:
        return f"SEQ {int(rng.integers(1, 30))}"
    if style < 0.6:
        return f"{word}_{int(rng.integers(1, 9))}"
    return word


def _typo(text: str, rng: np.random.Generator) -> str:
    if len(text) < 4:
        return text
    i = int(rng.integers(1, len(text) - 1))
    kind = rng.random()
    if kind < 0.4:
        return text[:i] + text[i + 1 :]
    if kind < 0.8:
        return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]


def _site_description(
    text: str, label: str, site: Site, rng: np.random.Generator, field_name: str
) -> str:
    if label in site.house_names and rng.random() < site.rename_rate:
        text = site.house_names[label]
    if label in SITE_FOREIGN and rng.random() < site.foreign_rate:
        text = _pick(rng, SITE_FOREIGN[label])
    if text and site.prefix and field_name == "ProtocolName":
        text = site.prefix + text
    if text and rng.random() < 0.04:
        text = text + _pick(rng, _SUFFIXES)
    if text and rng.random() < site.typo_rate:
        text = _typo(text, rng)
    if rng.random() < site.blank_rate:
        text = ""
    return text[:64]


def apply_site(
    headers: dict[str, Any], label: str, site: Site, rng: np.random.Generator
) -> dict[str, Any]:
    """Site-level variation on one series' vendor headers (renames, blanks, missing tags)."""
    out = dict(headers)
    for name in ("SeriesDescription", "ProtocolName"):
        out[name] = _site_description(str(out.get(name) or ""), label, site, rng, name)
    if rng.random() < site.opaque_rate:
        # a protocol named in a way nobody else does, on a sequence no catalog knows: the
        # classifier must fall back on physics (TR/TE/TI/flip, sequence type, geometry)
        out["SeriesDescription"] = _opaque_name(rng)
        out["ProtocolName"] = _opaque_name(rng) if rng.random() < 0.5 else ""
        out.pop("SequenceName", None)
        out.pop("ScanOptions", None)
    for keyword, rate in _DROPPABLE:
        if keyword in out and rng.random() < rate * site.drop_scale:
            del out[keyword]
    if "ContrastBolusAgent" not in out:
        for keyword in ("ContrastBolusRoute", "ContrastBolusVolume", "ContrastBolusIngredient"):
            out.pop(keyword, None)
    return out


def _series_numbers(vendor: str, count: int, rng: np.random.Generator) -> list[int]:
    if vendor == "philips":
        return [(i + 1) * 100 + 1 for i in range(count)]
    step = 1 if rng.random() < 0.7 else 100
    start = 1 if step == 1 else 100
    return [start + i * step for i in range(count)]


def _plan(
    protocol: Sequence[tuple[str, float, tuple[int, int]]], rng: np.random.Generator
) -> list[str]:
    classes: list[str] = []
    for cls, probability, (low, high) in protocol:
        if rng.random() < probability:
            classes.extend([cls] * int(rng.integers(low, high + 1)))
    middle = [i for i, c in enumerate(classes) if c in ("t2", "flair", "dwi", "swi", "other")]
    if len(middle) > 1 and rng.random() < 0.5:  # sites order the non-contrast block freely
        shuffled = [classes[i] for i in middle]
        rng.shuffle(shuffled)
        for i, cls in zip(middle, shuffled, strict=True):
            classes[i] = cls
    return classes


def generate_study(vendor: str, site: Site, rng: np.random.Generator) -> LabelledStudy:
    """One synthetic study (MR brain 3 in 4, CT head 1 in 4) of ``site``."""
    from radpipe.synth.protocols import sample_scanner, sample_series_headers

    modality = "CT" if rng.random() < 0.25 else "MR"
    scanner = sample_scanner(vendor, modality, rng)
    classes = _plan(CT_PROTOCOL if modality == "CT" else MR_PROTOCOL, rng)
    numbers = _series_numbers(vendor, len(classes), rng)
    study = LabelledStudy(vendor=vendor, modality=modality)
    for number, cls in zip(numbers, classes, strict=True):
        raw = sample_series_headers(vendor, cls, rng, scanner=scanner)
        raw = apply_site(raw, cls, site, rng)
        raw["SeriesNumber"] = number
        n_images = raw.get("ImagesInAcquisition")
        count = int(n_images) if n_images is not None else int(rng.integers(1, 200))
        if rng.random() < 0.1:  # partial transfers, multi-echo or per-b-value instances
            count = max(1, int(count * float(rng.choice([0.5, 2.0, 3.0]))))
        study.series.append(LabelledSeries(SeriesHeader.from_mapping(raw, count), cls))
    return study


def iter_studies(
    n_studies: int, seed: int, vendors: Sequence[str] = VENDORS
) -> Iterator[LabelledStudy]:
    """``n_studies`` studies spread over ``vendors`` and over sites (about 8 studies a site)."""
    rng = np.random.default_rng(seed)
    sites: list[Site] = []
    for index in range(n_studies):
        if index % 8 == 0 or not sites:
            sites = [sample_site(v, rng) for v in vendors]
        site = sites[index % len(vendors)]
        yield generate_study(site.vendor, site, rng)


def generate_corpus(n_studies: int, seed: int, vendors: Sequence[str] = VENDORS) -> Corpus:
    """Feature rows and labels of ``n_studies`` synthetic studies (deterministic per seed)."""
    corpus = Corpus()
    for index, study in enumerate(iter_studies(n_studies, seed, vendors)):
        rows = study_features([s.header for s in study.series])
        corpus.rows.extend(rows)
        corpus.labels.extend(s.label for s in study.series)
        corpus.vendors.extend([study.vendor] * len(rows))
        corpus.studies.extend([index] * len(rows))
    return corpus
