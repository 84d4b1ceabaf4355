"""Vendor and protocol catalog: how GE, Siemens, Philips and Canon sites label their series.

The catalog is the one place that knows header habits. It serves two users:

* the study generator (:mod:`radpipe.synth.study`), which draws a :class:`SeriesPlan` per series
  (headers *and* the geometry the pixels are resampled into), and
* the series-classifier corpus (issue 5), which only needs headers:
  :func:`sample_series_headers` returns a dict of DICOM keywords without touching pixels.

Structure
---------
``SCANNERS[vendor][modality]`` lists scanner models (manufacturer string, model name, field
strength, software version habits).

``HABITS[vendor][series_class]`` lists :class:`Habit` entries. A habit is one way a site of that
vendor acquires and names a series of that class: SeriesDescription/ProtocolName variants,
SequenceName, ScanningSequence, SequenceVariant, ScanOptions, ImageType, MRAcquisitionType,
TR/TE/TI/flip ranges (with 3 T overrides), the plane(s) and a geometry preset from
``GEOMETRIES``. Habits carry weights so common protocols dominate, as in a real PACS.

On top of the vendor habits, :func:`sample_series_plan` applies site habits that cut across
vendors: non-English descriptions (German, French, Spanish, Italian, Dutch, Swedish, Portuguese),
empty SeriesDescription and/or ProtocolName, upper/lower-case drift, and missing contrast-agent
tags on post-contrast series.

Series classes (exactly the classifier's labels): ``t1, t1c, t2, flair, dwi, adc, swi, localizer,
perfusion, derived, ct_brain, ct_bone, ct_scout, other``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from radpipe.series.classes import SERIES_CLASSES

VENDORS: tuple[str, ...] = ("ge", "siemens", "philips", "canon")

CT_CLASSES: frozenset[str] = frozenset({"ct_brain", "ct_bone", "ct_scout"})

Range = tuple[float, float]


@dataclass(frozen=True)
class Scanner:
    """One scanner: what goes into the General Equipment module and MagneticFieldStrength."""

    vendor: str
    modality: str
    manufacturer: str
    model: str
    field_strength: float | None
    software_versions: str
    station_name: str = ""


@dataclass(frozen=True)
class Habit:
    """One way a vendor's sites acquire and label a series of one class.

    ``names`` are SeriesDescription variants; ProtocolName is drawn from ``protocol_names`` when
    given (GE and Philips often differ between the two), else from ``names``.
    ``phys`` maps "tr", "te", "ti", "flip", "etl" to (low, high) ranges at 1.5 T; keys with the
    suffix "@3" override them at 3 T. ``contrast`` names the image contrast the generator renders.
    """

    family: str
    names: tuple[str, ...]
    contrast: str
    geometry: str
    protocol_names: tuple[str, ...] = ()
    sequence_names: tuple[str, ...] = ("",)
    scanning_sequence: str = "SE"
    sequence_variant: str = "NONE"
    scan_options: tuple[str, ...] = ("",)
    image_type: tuple[str, ...] = ("ORIGINAL\\PRIMARY\\OTHER",)
    acq: str = "2D"
    planes: tuple[str, ...] = ("ax",)
    phys: dict[str, Range] = field(default_factory=dict)
    kernels: tuple[str, ...] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class Geometry:
    """A geometry preset: matrix, pixel spacing and slice stacking choices."""

    matrix: tuple[int, ...]
    fov_mm: Range
    thickness: tuple[float, ...]
    gap_mm: Range
    n_slices: tuple[int, int]
    slab: str = "mean"  # how sub-slice samples combine: "mean" (slice profile) or "max" (MIP)


GEOMETRIES: dict[str, Geometry] = {
    "loc": Geometry((256, 256, 512), (240, 300), (5.0, 7.0, 8.0, 10.0), (0, 0), (1, 3)),
    "iso3d": Geometry((256, 256, 240), (240, 256), (0.9, 1.0, 1.0, 1.2), (0, 0), (160, 192)),
    "t2ax": Geometry((512, 448, 384, 320), (210, 240), (4.0, 5.0, 5.0), (0.4, 1.5), (22, 30)),
    "ax2d": Geometry((256, 320, 512), (210, 240), (5.0, 5.0, 6.0), (0.5, 1.5), (20, 28)),
    "flair3d": Geometry((256, 256, 240), (240, 256), (1.0, 1.2, 1.3), (0, 0), (150, 180)),
    "dwi": Geometry((128, 192, 256), (220, 250), (4.0, 5.0, 5.0), (0.0, 1.5), (22, 30)),
    "swi": Geometry((256, 320, 384), (210, 230), (1.5, 2.0, 2.0), (0, 0), (56, 80)),
    "perf": Geometry((128, 128), (220, 240), (4.0, 5.0), (0.5, 1.5), (14, 22)),
    "mpr": Geometry((256, 512), (230, 256), (1.0, 2.0, 3.0), (0, 0), (40, 70)),
    "mip": Geometry((256, 512), (220, 240), (10.0, 15.0, 20.0), (-8.0, -5.0), (12, 20), "max"),
    "tof": Geometry((384, 512), (180, 220), (0.5, 0.7), (0, 0), (120, 180)),
    "ct5": Geometry((512,), (200, 250), (5.0, 4.8, 5.0, 4.0), (0, 0), (26, 34)),
    "ctthin": Geometry((512,), (200, 250), (0.625, 0.75, 1.0, 1.25), (0, 0), (100, 260)),
    "ctbone": Geometry((512,), (200, 250), (0.625, 0.75, 1.0, 2.0), (0, 0), (60, 260)),
    "scout": Geometry((512,), (256, 512), (1.0,), (0, 0), (1, 2)),
    "other": Geometry((256, 512), (220, 250), (3.0, 5.0), (0, 0.5), (1, 30)),
}

# ---------------------------------------------------------------------------------------------
# Scanners
# ---------------------------------------------------------------------------------------------

SCANNERS: dict[str, dict[str, tuple[Scanner, ...]]] = {
    "ge": {
        "MR": (
            Scanner("ge", "MR", "GE MEDICAL SYSTEMS", "SIGNA Premier", 3.0, "29\\LX\\MR Software"),
            Scanner(
                "ge", "MR", "GE MEDICAL SYSTEMS", "DISCOVERY MR750", 3.0, "25\\LX\\MR Software"
            ),
            Scanner("ge", "MR", "GE MEDICAL SYSTEMS", "Optima MR450w", 1.5, "25\\LX\\MR Software"),
            Scanner("ge", "MR", "GE MEDICAL SYSTEMS", "SIGNA Artist", 1.5, "28\\LX\\MR Software"),
            Scanner("ge", "MR", "GE MEDICAL SYSTEMS", "Signa HDxt", 1.5, "16\\LX\\MR Software"),
        ),
        "CT": (
            Scanner("ge", "CT", "GE MEDICAL SYSTEMS", "Revolution CT", None, "revo_ct_22ma.36"),
            Scanner("ge", "CT", "GE MEDICAL SYSTEMS", "LightSpeed VCT", None, "07MW18.4"),
            Scanner("ge", "CT", "GE MEDICAL SYSTEMS", "Optima CT660", None, "gmp_vct.42"),
            Scanner("ge", "CT", "GE MEDICAL SYSTEMS", "Discovery CT750 HD", None, "gmp_hde.55"),
        ),
    },
    "siemens": {
        "MR": (
            Scanner("siemens", "MR", "SIEMENS", "Skyra", 3.0, "syngo MR E11"),
            Scanner("siemens", "MR", "SIEMENS", "Prisma", 3.0, "syngo MR E11"),
            Scanner("siemens", "MR", "Siemens Healthineers", "MAGNETOM Vida", 3.0, "syngo MR XA31"),
            Scanner("siemens", "MR", "SIEMENS", "Avanto", 1.5, "syngo MR B17"),
            Scanner("siemens", "MR", "SIEMENS", "Aera", 1.5, "syngo MR E11"),
            Scanner("siemens", "MR", "Siemens Healthineers", "MAGNETOM Sola", 1.5, "syngo MR XA20"),
        ),
        "CT": (
            Scanner("siemens", "CT", "SIEMENS", "SOMATOM Definition AS+", None, "syngo CT VA48A"),
            Scanner("siemens", "CT", "SIEMENS", "SOMATOM Force", None, "syngo CT VB10A"),
            Scanner("siemens", "CT", "Siemens Healthineers", "SOMATOM go.Top", None, "VA30"),
            Scanner("siemens", "CT", "SIEMENS", "Sensation 64", None, "syngo CT 2007S"),
        ),
    },
    "philips": {
        "MR": (
            Scanner("philips", "MR", "Philips Medical Systems", "Ingenia", 3.0, "5.4.1\\5.4.1.0"),
            Scanner("philips", "MR", "Philips", "Ingenia Elition X", 3.0, "5.7.1\\5.7.1.1"),
            Scanner("philips", "MR", "Philips Medical Systems", "Achieva", 1.5, "3.2.3\\3.2.3.1"),
            Scanner("philips", "MR", "Philips Healthcare", "Ingenia", 1.5, "5.3.1\\5.3.1.3"),
            Scanner("philips", "MR", "Philips Medical Systems", "Intera", 1.5, "12.6.1\\12.6.1.3"),
        ),
        "CT": (
            Scanner("philips", "CT", "Philips", "Brilliance 64", None, "4.1.6"),
            Scanner("philips", "CT", "Philips", "iCT 256", None, "4.1.2"),
            Scanner("philips", "CT", "Philips", "IQon - Spectral CT", None, "4.7.2"),
            Scanner("philips", "CT", "Philips", "Ingenuity CT", None, "4.1.3"),
        ),
    },
    "canon": {
        "MR": (
            Scanner("canon", "MR", "TOSHIBA", "Vantage Titan", 1.5, "V4.00*R001"),
            Scanner("canon", "MR", "CANON_MEC", "Vantage Orian", 1.5, "V6.0*R005"),
            Scanner("canon", "MR", "CANON_MEC", "Vantage Galan 3T", 3.0, "V7.0*R003"),
            Scanner("canon", "MR", "TOSHIBA", "Vantage Titan 3T", 3.0, "V3.50*R009"),
        ),
        "CT": (
            Scanner("canon", "CT", "TOSHIBA", "Aquilion ONE", None, "V6.00ER004"),
            Scanner("canon", "CT", "CANON_MEC", "Aquilion Prime SP", None, "V10.2ER002"),
            Scanner("canon", "CT", "TOSHIBA", "Aquilion", None, "V4.86ER010"),
            Scanner("canon", "CT", "CANON_MEC", "Aquilion Lightning", None, "V10.4SP0001"),
        ),
    },
}

# ---------------------------------------------------------------------------------------------
# Physics presets shared by habits (ms / degrees; "@3" keys override at 3 T)
# ---------------------------------------------------------------------------------------------

P_MPRAGE: dict[str, Range] = {
    "tr": (1900, 2200),
    "te": (2.3, 3.9),
    "ti": (900, 1100),
    "flip": (8, 15),
    "tr@3": (2000, 2400),
    "te@3": (2.0, 2.5),
    "ti@3": (900, 1000),
    "flip@3": (8, 9),
}
P_FASTGRE3D: dict[str, Range] = {
    "tr": (6.5, 11.0),
    "te": (2.5, 4.6),
    "ti": (400, 1000),
    "flip": (8, 15),
}
P_TFE: dict[str, Range] = {"tr": (7.0, 9.0), "te": (3.1, 4.6), "flip": (8, 8)}
P_T1SE: dict[str, Range] = {"tr": (400, 700), "te": (8, 15), "flip": (70, 90), "etl": (1, 3)}
P_T1FLAIR: dict[str, Range] = {
    "tr": (1700, 2500),
    "te": (8, 25),
    "ti": (700, 900),
    "flip": (90, 150),
}
P_T2TSE: dict[str, Range] = {
    "tr": (3500, 6500),
    "te": (85, 110),
    "flip": (90, 150),
    "etl": (12, 24),
    "tr@3": (4000, 7000),
}
P_FLAIR2D: dict[str, Range] = {
    "tr": (8000, 11000),
    "te": (90, 140),
    "ti": (2200, 2600),
    "flip": (90, 150),
    "etl": (16, 32),
    "ti@3": (2500, 2900),
}
P_FLAIR3D: dict[str, Range] = {
    "tr": (4800, 7000),
    "te": (90, 400),
    "ti": (1650, 2200),
    "flip": (90, 120),
    "etl": (140, 260),
}
P_DWI: dict[str, Range] = {"tr": (3000, 8000), "te": (60, 100), "flip": (90, 90)}
P_SWI: dict[str, Range] = {"tr": (27, 50), "te": (20, 40), "flip": (12, 20), "te@3": (16, 25)}
P_PERF: dict[str, Range] = {"tr": (1300, 1800), "te": (30, 45), "flip": (60, 90), "te@3": (25, 32)}
P_LOC: dict[str, Range] = {"tr": (5, 10), "te": (1.4, 5), "flip": (20, 40)}
P_TOF: dict[str, Range] = {"tr": (20, 25), "te": (3.4, 7), "flip": (18, 25)}

GE_OPTS_FSE = (
    "FAST_GEMS\\EDR_GEMS\\TRF_GEMS\\FILTERED_GEMS\\ACC_GEMS",
    "FAST_GEMS\\EDR_GEMS\\TRF_GEMS",
)
GE_OPTS_3D = (
    "FAST_GEMS\\EDR_GEMS\\ACC_GEMS\\IR_GEMS",
    "EDR_GEMS\\FAST_GEMS\\ACC_GEMS\\IR_GEMS\\SEQ_GEMS",
)
GE_OPTS_IR = (
    "FAST_GEMS\\EDR_GEMS\\TRF_GEMS\\FILTERED_GEMS\\ACC_GEMS\\IR_GEMS",
    "IR_GEMS\\FAST_GEMS",
)
GE_OPTS_EPI = ("EDR_GEMS\\EPI_GEMS\\ACC_GEMS\\FS", "EPI_GEMS\\ACC_GEMS\\PFF\\FS")

# ---------------------------------------------------------------------------------------------
# Vendor habits
# ---------------------------------------------------------------------------------------------

GE: dict[str, tuple[Habit, ...]] = {
    "localizer": (
        Habit(
            "3plane",
            ("3-Plane Loc", "3 Plane Localizer", "3pl loc", "Loc", "LOCALIZER"),
            "t1",
            "loc",
            sequence_names=("3-plane",),
            scanning_sequence="GR",
            sequence_variant="SS",
            scan_options=("FAST_GEMS",),
            image_type=("ORIGINAL\\PRIMARY\\LOCALIZER",),
            planes=("3plane",),
            phys=P_LOC,
        ),
    ),
    "t1": (
        Habit(
            "bravo",
            (
                "Sag 3D T1 BRAVO",
                "SAG 3D BRAVO",
                "3D T1 BRAVO",
                "Ax 3D T1 BRAVO",
                "BRAVO",
                "Sag BRAVO",
            ),
            "t1",
            "iso3d",
            protocol_names=("BRAIN ROUTINE", "Brain W WO", "TUMOR/BRAIN", "MS BRAIN"),
            sequence_names=("efgre3d",),
            scanning_sequence="GR",
            sequence_variant="SS\\SP",
            scan_options=GE_OPTS_3D,
            acq="3D",
            planes=("sag", "sag", "ax"),
            phys=P_FASTGRE3D,
            weight=3,
        ),
        Habit(
            "spgr",
            ("SAG 3D FSPGR", "Sag 3D FSPGR BRAVO", "3D SPGR", "Ax FSPGR 3D"),
            "t1",
            "iso3d",
            sequence_names=("efgre3d", "fspgr3d"),
            scanning_sequence="GR",
            sequence_variant="SS\\SP",
            scan_options=("FAST_GEMS\\EDR_GEMS\\ACC_GEMS", "FAST_GEMS\\IR_GEMS"),
            acq="3D",
            planes=("sag", "ax"),
            phys=P_FASTGRE3D,
        ),
        Habit(
            "t1flair",
            ("Ax T1 FLAIR", "AX T1 FLAIR", "Sag T1 FLAIR", "Ax T1 FSE", "AX T1 SE"),
            "t1",
            "ax2d",
            sequence_names=("fse-xl", "fse"),
            scanning_sequence="SE\\IR",
            sequence_variant="SK\\OSP",
            scan_options=GE_OPTS_IR,
            planes=("ax", "sag"),
            phys=P_T1FLAIR,
        ),
    ),
    "t2": (
        Habit(
            "fse",
            ("Ax T2 FSE", "AX T2 FSE", "Ax T2", "AX T2 FRFSE", "Ax T2 FRFSE", "Cor T2 FSE"),
            "t2",
            "t2ax",
            sequence_names=("fse-xl", "frfse-xl"),
            scanning_sequence="SE",
            sequence_variant="SK\\OSP",
            scan_options=GE_OPTS_FSE,
            planes=("ax", "ax", "cor"),
            phys=P_T2TSE,
            weight=3,
        ),
        Habit(
            "propeller",
            ("AX T2 PROPELLER", "Ax T2 Propeller", "PROPELLER T2 AX", "Ax T2 PROP"),
            "t2",
            "t2ax",
            sequence_names=("PROPELLER",),
            scanning_sequence="SE",
            sequence_variant="SK\\OSP",
            scan_options=("FAST_GEMS\\EDR_GEMS\\TRF_GEMS\\PROP_GEMS\\ACC_GEMS",),
            phys=P_T2TSE,
        ),
        Habit(
            "cube_t2",
            ("Sag CUBE T2", "3D T2 CUBE", "CUBE T2 SAG"),
            "t2",
            "flair3d",
            sequence_names=("cube",),
            scanning_sequence="SE",
            sequence_variant="SK\\MTC",
            scan_options=("FAST_GEMS\\EDR_GEMS\\ACC_GEMS",),
            acq="3D",
            planes=("sag",),
            phys={"tr": (2500, 3200), "te": (70, 110), "flip": (90, 90), "etl": (90, 140)},
            weight=0.4,
        ),
    ),
    "flair": (
        Habit(
            "flair2d",
            (
                "Ax T2 FLAIR",
                "AX FLAIR",
                "Ax FLAIR",
                "AX T2 FLAIR",
                "Ax T2 FLAIR ASSET",
                "Cor FLAIR",
            ),
            "flair",
            "ax2d",
            sequence_names=("fse-xl", "flair"),
            scanning_sequence="SE\\IR",
            sequence_variant="SK\\SP\\OSP",
            scan_options=GE_OPTS_IR,
            planes=("ax", "ax", "cor"),
            phys=P_FLAIR2D,
            weight=3,
        ),
        Habit(
            "cubeflair",
            ("Sag CUBE FLAIR", "3D FLAIR CUBE", "Sag T2 FLAIR CUBE", "CUBE FLAIR"),
            "flair",
            "flair3d",
            sequence_names=("cube",),
            scanning_sequence="SE\\IR",
            sequence_variant="SK\\MTC\\SP",
            scan_options=GE_OPTS_3D,
            acq="3D",
            planes=("sag",),
            phys=P_FLAIR3D,
        ),
    ),
    "dwi": (
        Habit(
            "epi",
            ("Ax DWI 1000b", "AX DWI", "Ax DWI b1000", "DWI ASSET", "Ax Diffusion", "AX DIFFUSION"),
            "dwi",
            "dwi",
            sequence_names=("epi2", "epi"),
            scanning_sequence="EP",
            sequence_variant="SS\\SP",
            scan_options=GE_OPTS_EPI,
            image_type=("ORIGINAL\\PRIMARY\\OTHER",),
            phys=P_DWI,
        ),
    ),
    "adc": (
        Habit(
            "adc",
            ("Apparent Diffusion Coefficient (mm2/s)", "ADC (10^-6 mm2/s):", "ADC", "Ax DWI ADC"),
            "adc",
            "dwi",
            sequence_names=("epi2",),
            scanning_sequence="EP",
            sequence_variant="SS\\SP",
            scan_options=GE_OPTS_EPI,
            image_type=("DERIVED\\PRIMARY\\ADC\\ADC", "DERIVED\\PRIMARY\\OTHER"),
            phys=P_DWI,
        ),
    ),
    "swi": (
        Habit(
            "swan",
            ("Ax SWAN", "AX SWAN", "SWAN", "Ax SWI", "SWAN mIP"),
            "swi",
            "swi",
            sequence_names=("swan",),
            scanning_sequence="GR",
            sequence_variant="SS\\SP",
            scan_options=("FAST_GEMS\\EDR_GEMS\\FC\\ACC_GEMS",),
            acq="3D",
            phys=P_SWI,
        ),
    ),
    "perfusion": (
        Habit(
            "dsc",
            ("Ax Perfusion", "PERFUSION", "Ax DSC Perf", "BRAIN PERFUSION"),
            "t2",
            "perf",
            sequence_names=("epi",),
            scanning_sequence="EP",
            sequence_variant="SS",
            scan_options=("EPI_GEMS\\ACC_GEMS",),
            phys=P_PERF,
        ),
        Habit(
            "asl",
            ("3D ASL", "Ax 3D pCASL", "Cerebral Blood Flow", "ASL CBF"),
            "t2",
            "perf",
            sequence_names=("3dasl",),
            scanning_sequence="SE",
            sequence_variant="SK",
            image_type=("ORIGINAL\\PRIMARY\\ASL", "DERIVED\\PRIMARY\\CBF\\CBF"),
            acq="3D",
            phys={"tr": (4500, 5000), "te": (10, 11), "flip": (111, 111)},
            weight=0.5,
        ),
    ),
    "derived": (
        Habit(
            "reformat",
            ("Cor 3D BRAVO +C REFORMAT", "Ax REFORMAT", "Cor Reformat", "REFORMAT COR", "Ax MPR"),
            "t1c",
            "mpr",
            sequence_names=("efgre3d",),
            scanning_sequence="GR",
            sequence_variant="SS\\SP",
            image_type=("DERIVED\\SECONDARY\\REFORMATTED\\AVERAGE",),
            acq="3D",
            planes=("cor", "ax"),
            phys=P_FASTGRE3D,
        ),
        Habit(
            "mip",
            ("MIP", "Ax MIP", "Post MIP", "MIP +C"),
            "t1c",
            "mip",
            image_type=("DERIVED\\SECONDARY\\REFORMATTED\\MIP", "DERIVED\\SECONDARY\\PROJECTION"),
            scanning_sequence="GR",
            acq="3D",
            phys=P_FASTGRE3D,
        ),
    ),
    "other": (
        Habit(
            "cal",
            ("ASSET Cal", "Calibration Scan", "PURE Cal"),
            "t1",
            "other",
            sequence_names=("asset_cal",),
            scanning_sequence="GR",
            phys=P_LOC,
        ),
        Habit(
            "tof",
            ("Ax 3D TOF", "3D TOF COW", "TOF Circle of Willis"),
            "t1",
            "tof",
            sequence_names=("tof3d",),
            scanning_sequence="GR",
            acq="3D",
            phys=P_TOF,
        ),
        Habit(
            "gre",
            ("Ax T2* GRE", "AX GRE", "Ax PD"),
            "t2",
            "ax2d",
            sequence_names=("fgre",),
            scanning_sequence="GR",
            phys={"tr": (500, 800), "te": (15, 25), "flip": (20, 25)},
        ),
    ),
}

SIEMENS: dict[str, tuple[Habit, ...]] = {
    "localizer": (
        Habit(
            "scout",
            ("localizer", "AAHead_Scout_32ch-head-coil", "localizer_3plane", "Localizer", "loc"),
            "t1",
            "loc",
            sequence_names=("*fl2d1",),
            scanning_sequence="GR",
            sequence_variant="SP",
            image_type=("ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D", "ORIGINAL\\PRIMARY\\LOCALIZER"),
            planes=("3plane",),
            phys=P_LOC,
        ),
    ),
    "t1": (
        Habit(
            "mprage",
            (
                "t1_mprage_sag_p2_iso",
                "t1_mprage_sag_p2_iso_0.9",
                "t1_mpr_sag_p2_iso",
                "T1 MPRAGE SAG",
                "t1_mprage_tra_p2_iso",
                "MPRAGE",
            ),
            "t1",
            "iso3d",
            sequence_names=("*tfl3d1_16ns", "*tfl3d1", "*tfl3d1_16"),
            scanning_sequence="GR\\IR",
            sequence_variant="SP\\MP",
            scan_options=("IR", "IR\\PFP"),
            image_type=(
                "ORIGINAL\\PRIMARY\\M\\ND\\NORM",
                "ORIGINAL\\PRIMARY\\M\\NORM\\DIS3D\\DIS2D",
            ),
            acq="3D",
            planes=("sag", "sag", "ax"),
            phys=P_MPRAGE,
            weight=3,
        ),
        Habit(
            "t1se",
            ("t1_se_tra", "t1_se_sag", "t1_tse_tra", "T1 SE AX", "t1_fl2d_tra"),
            "t1",
            "ax2d",
            sequence_names=("*se2d1", "*tse2d1_3"),
            scanning_sequence="SE",
            sequence_variant="SP",
            image_type=("ORIGINAL\\PRIMARY\\M\\ND\\NORM", "ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D"),
            planes=("ax", "sag"),
            phys=P_T1SE,
        ),
        Habit(
            "vibe",
            ("t1_vibe_tra", "t1_vibe_fs_tra", "t1_fl3d_tra"),
            "t1",
            "iso3d",
            sequence_names=("*fl3d1",),
            scanning_sequence="GR",
            sequence_variant="SP\\SS",
            scan_options=("PFP\\FS",),
            image_type=("ORIGINAL\\PRIMARY\\M\\ND\\NORM",),
            acq="3D",
            phys={"tr": (4.0, 7.0), "te": (1.5, 2.5), "flip": (9, 12)},
            weight=0.4,
        ),
    ),
    "t2": (
        Habit(
            "tse",
            (
                "t2_tse_tra",
                "t2_tse_tra_512",
                "t2_tse_tra_p2",
                "T2 TSE AX",
                "t2_tse_cor",
                "t2_tse_sag",
            ),
            "t2",
            "t2ax",
            sequence_names=("*tse2d1_15", "*tse2d1_17", "*tse2d1_11"),
            scanning_sequence="SE",
            sequence_variant="SK\\SP\\OSP",
            scan_options=("PFP", "SAT1", ""),
            image_type=("ORIGINAL\\PRIMARY\\M\\ND\\NORM", "ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D"),
            planes=("ax", "ax", "cor", "sag"),
            phys=P_T2TSE,
            weight=3,
        ),
        Habit(
            "blade",
            ("t2_tse_tra_BLADE", "t2_blade_tra", "T2 BLADE AX", "t2_tse_dark-fluid_tra_BLADE"),
            "t2",
            "t2ax",
            sequence_names=("*tseR2d1_26", "*tseR2d1rs26"),
            scanning_sequence="SE",
            sequence_variant="SK\\SP\\OSP",
            image_type=("ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D",),
            phys=P_T2TSE,
        ),
        Habit(
            "space_t2",
            ("t2_spc_sag_p2_iso", "T2 SPACE SAG"),
            "t2",
            "flair3d",
            sequence_names=("*spc_314ns", "*spcR_282ns"),
            scanning_sequence="SE",
            sequence_variant="SK\\SP\\OSP",
            acq="3D",
            planes=("sag",),
            phys={"tr": (3200, 3200), "te": (400, 420), "flip": (120, 120), "etl": (282, 314)},
            weight=0.4,
        ),
    ),
    "flair": (
        Habit(
            "tirm",
            ("t2_tirm_tra_dark-fluid", "t2_tirm_tra_dark-fluid_p2", "t2_flair_tra", "FLAIR TRA"),
            "flair",
            "ax2d",
            sequence_names=("*tir2d1_16", "*tir2d1_21", "*tir2d1_13"),
            scanning_sequence="SE\\IR",
            sequence_variant="SK\\SP\\MP\\OSP",
            scan_options=("IR", "IR\\PFP", "PFP\\IR\\FS"),
            image_type=("ORIGINAL\\PRIMARY\\M\\ND\\NORM", "ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D"),
            planes=("ax", "ax", "cor"),
            phys=P_FLAIR2D,
            weight=3,
        ),
        Habit(
            "spaceflair",
            ("t2_spc_da-fl_sag_p2_iso", "t2_space_dark-fluid_sag_p2_iso", "3D FLAIR SPACE"),
            "flair",
            "flair3d",
            sequence_names=("*spcir_278ns", "*spcir3d1_278"),
            scanning_sequence="SE\\IR",
            sequence_variant="SK\\SP\\MP\\OSP",
            scan_options=("IR\\PFP", "IR"),
            image_type=("ORIGINAL\\PRIMARY\\M\\ND\\NORM",),
            acq="3D",
            planes=("sag",),
            phys=P_FLAIR3D,
        ),
    ),
    "dwi": (
        Habit(
            "ep2d",
            (
                "ep2d_diff_3scan_trace_p2",
                "ep2d_diff_tra",
                "DWI_tra",
                "ep2d_diff_trace",
                "resolve_trace",
            ),
            "dwi",
            "dwi",
            sequence_names=("*ep_b1000t", "*ep_b0_1000"),
            scanning_sequence="EP",
            sequence_variant="SK\\SP",
            scan_options=("PFP\\FS", "FS"),
            image_type=("ORIGINAL\\PRIMARY\\DIFFUSION\\NONE\\ND\\NORM",),
            phys=P_DWI,
        ),
    ),
    "adc": (
        Habit(
            "adc",
            ("ep2d_diff_3scan_trace_p2_ADC", "ep2d_diff_tra_ADC", "DWI_tra_ADC", "ADC"),
            "adc",
            "dwi",
            sequence_names=("*ep_b0_1000",),
            scanning_sequence="EP",
            sequence_variant="SK\\SP",
            scan_options=("PFP\\FS", "FS"),
            image_type=("DERIVED\\PRIMARY\\DIFFUSION\\ADC\\ND\\NORM",),
            phys=P_DWI,
        ),
    ),
    "swi": (
        Habit(
            "swi",
            ("SWI_Images", "swi_tra", "Mag_Images", "mIP_Images(SW)", "t2_swi_tra_p2"),
            "swi",
            "swi",
            sequence_names=("*swi3d1r",),
            scanning_sequence="GR",
            sequence_variant="SP",
            image_type=("DERIVED\\PRIMARY\\SWI\\NONE\\ND\\NORM", "ORIGINAL\\PRIMARY\\M\\SWI\\ND"),
            acq="3D",
            phys=P_SWI,
        ),
    ),
    "perfusion": (
        Habit(
            "perf",
            ("ep2d_perf", "ep2d_perf_p2", "PERFUSION", "perf_DSC"),
            "t2",
            "perf",
            sequence_names=("*epfid2d1_128",),
            scanning_sequence="EP",
            sequence_variant="SK",
            image_type=("ORIGINAL\\PRIMARY\\PERFUSION\\NONE\\ND\\MOSAIC",),
            phys=P_PERF,
        ),
        Habit(
            "relcbv",
            ("relCBV", "relCBF", "TTP", "MTT", "PBP"),
            "t2",
            "perf",
            image_type=("DERIVED\\PRIMARY\\PERFUSION\\RELCBV",),
            scanning_sequence="EP",
            phys=P_PERF,
            weight=0.6,
        ),
    ),
    "derived": (
        Habit(
            "mpr",
            ("t1_mprage_sag_p2_iso_MPR_Cor", "t1_mprage_sag_p2_iso_MPR_Tra", "MPR Cor", "MPR tra"),
            "t1c",
            "mpr",
            sequence_names=("*tfl3d1_16ns",),
            scanning_sequence="GR\\IR",
            sequence_variant="SP\\MP",
            image_type=("DERIVED\\SECONDARY\\MPR\\ND\\NORM", "DERIVED\\SECONDARY\\MPR"),
            acq="3D",
            planes=("cor", "ax"),
            phys=P_MPRAGE,
            weight=2,
        ),
        Habit(
            "mip",
            ("MIP_tra", "t1_mprage_KM_MIP", "MIP_SAG", "TOF_3D_multi-slab_MIP_SAG"),
            "t1c",
            "mip",
            image_type=("DERIVED\\PRIMARY\\MIP\\ND\\NORM",),
            scanning_sequence="GR",
            acq="3D",
            phys=P_FASTGRE3D,
        ),
        Habit(
            "sub",
            ("t1_mprage_sag_p2_iso_SUB", "SUB_t1_mprage", "Subtraktion"),
            "t1c",
            "iso3d",
            image_type=("DERIVED\\PRIMARY\\M\\SUB\\ND\\NORM",),
            scanning_sequence="GR\\IR",
            acq="3D",
            planes=("sag",),
            phys=P_MPRAGE,
            weight=0.6,
        ),
    ),
    "other": (
        Habit(
            "tof",
            ("tof_3d_multi-slab", "TOF_3D_multi-slab", "fl3d_tof_tra"),
            "t1",
            "tof",
            sequence_names=("*fl3d1r_t70",),
            scanning_sequence="GR",
            acq="3D",
            phys=P_TOF,
        ),
        Habit(
            "svs",
            ("svs_se_135", "svs_se_30", "csi_se_135"),
            "t1",
            "other",
            sequence_names=("*svs_se",),
            phys={"tr": (1500, 2000), "te": (30, 135), "flip": (90, 90)},
        ),
        Habit(
            "pd",
            ("pd_tse_tra", "t2_fl2d_tra_hemo", "t2_de2d_tra"),
            "t2",
            "ax2d",
            sequence_names=("*fl2d1", "*tse2d2_7"),
            scanning_sequence="GR",
            phys={"tr": (600, 800), "te": (18, 25), "flip": (20, 20)},
        ),
    ),
}

PHILIPS: dict[str, tuple[Habit, ...]] = {
    "localizer": (
        Habit(
            "survey",
            ("Survey", "SURVEY", "Survey_32ch_HeadCoil", "SmartBrain", "3Pl Loc"),
            "t1",
            "loc",
            sequence_names=("",),
            scanning_sequence="GR",
            sequence_variant="SP",
            image_type=("ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE",),
            planes=("3plane",),
            phys=P_LOC,
        ),
    ),
    "t1": (
        Habit(
            "tfe",
            ("T1W_3D_TFE", "3D T1 TFE", "sT1W_3D_TFE", "T1W_3D_TFE_SENSE", "3D_T1_SAG", "T1 3D"),
            "t1",
            "iso3d",
            protocol_names=("WIP T1W_3D_TFE", "T1W_3D_TFE", "sT1W_3D_ISO"),
            sequence_names=("", "T1TFE"),
            scanning_sequence="GR",
            sequence_variant="SK",
            scan_options=("OTHER", "PFP"),
            image_type=("ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", "ORIGINAL\\PRIMARY\\M\\FFE\\M\\FFE"),
            acq="3D",
            planes=("sag", "ax"),
            phys=P_TFE,
            weight=3,
        ),
        Habit(
            "t1se",
            ("T1W_SE", "T1W_SE_tra", "T1 SE", "T1W_IR_tra"),
            "t1",
            "ax2d",
            sequence_names=("", "SE"),
            scanning_sequence="SE",
            sequence_variant="SK",
            image_type=("ORIGINAL\\PRIMARY\\M_SE\\M\\SE",),
            phys=P_T1SE,
        ),
    ),
    "t2": (
        Habit(
            "tse",
            ("T2W_TSE", "T2W_TSE_tra", "T2_TSE_TRA", "T2W_TSE_SENSE", "sT2W_TSE", "T2 TRA"),
            "t2",
            "t2ax",
            protocol_names=("WIP T2W_TSE", "T2W_TSE"),
            sequence_names=("", "TSE"),
            scanning_sequence="SE",
            sequence_variant="SK",
            scan_options=("OTHER", "PFP\\FS"),
            image_type=("ORIGINAL\\PRIMARY\\M_SE\\M\\SE", "ORIGINAL\\PRIMARY\\M\\SE\\M\\SE"),
            planes=("ax", "ax", "cor"),
            phys=P_T2TSE,
            weight=3,
        ),
        Habit(
            "multivane",
            ("T2W_TSE_MV", "T2 MultiVane", "T2W_MVXD"),
            "t2",
            "t2ax",
            sequence_names=("",),
            scanning_sequence="SE",
            sequence_variant="SK",
            image_type=("ORIGINAL\\PRIMARY\\M_SE\\M\\SE",),
            phys=P_T2TSE,
        ),
    ),
    "flair": (
        Habit(
            "flair2d",
            ("T2W_FLAIR", "FLAIR_longTR", "T2_FLAIR_TRA", "FLAIR", "T2W_FLAIR_SENSE", "FLAIR tra"),
            "flair",
            "ax2d",
            sequence_names=("", "IR"),
            scanning_sequence="SE\\IR",
            sequence_variant="SK",
            scan_options=("IR", "OTHER"),
            image_type=("ORIGINAL\\PRIMARY\\M_IR\\M\\IR",),
            phys=P_FLAIR2D,
            weight=3,
        ),
        Habit(
            "vistaflair",
            ("3D_Brain_VIEW_FLAIR", "3D FLAIR", "VISTA FLAIR", "3D_FLAIR_SAG", "sFLAIR_3D"),
            "flair",
            "flair3d",
            sequence_names=("",),
            scanning_sequence="SE\\IR",
            sequence_variant="SK",
            scan_options=("IR",),
            image_type=("ORIGINAL\\PRIMARY\\M_IR\\M\\IR",),
            acq="3D",
            planes=("sag",),
            phys=P_FLAIR3D,
            weight=1.5,
        ),
    ),
    "dwi": (
        Habit(
            "dwise",
            ("DWI", "DWI_SENSE", "DWI_tra", "sDWI", "DWI_b1000", "Diffusion"),
            "dwi",
            "dwi",
            sequence_names=("", "DwiSE"),
            scanning_sequence="SE",
            sequence_variant="SK",
            scan_options=("FS",),
            image_type=("ORIGINAL\\PRIMARY\\M_SE\\M\\SE", "ORIGINAL\\PRIMARY\\DIFFUSION\\M\\SE"),
            phys=P_DWI,
        ),
    ),
    "adc": (
        Habit(
            "dadc",
            ("dADC", "DWI_SENSE_ADC", "ADC", "dADC_tra", "DWI ADC"),
            "adc",
            "dwi",
            scanning_sequence="SE",
            sequence_variant="SK",
            image_type=("DERIVED\\PRIMARY\\ADC\\ADC", "DERIVED\\PRIMARY\\DIFFUSION\\ADC"),
            phys=P_DWI,
        ),
    ),
    "swi": (
        Habit(
            "swip",
            ("SWIp", "sSWIp", "SWI", "SWIp_tra", "VEN_BOLD"),
            "swi",
            "swi",
            scanning_sequence="GR",
            sequence_variant="SK",
            image_type=("ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", "DERIVED\\PRIMARY\\MINIP\\SWIP"),
            acq="3D",
            phys=P_SWI,
        ),
    ),
    "perfusion": (
        Habit(
            "dsc",
            ("Perfusion", "PERF_DSC", "DSC_perfusion", "pCASL"),
            "t2",
            "perf",
            scanning_sequence="GR",
            sequence_variant="SK",
            image_type=("ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", "ORIGINAL\\PRIMARY\\PERFUSION\\FFE"),
            phys=P_PERF,
        ),
    ),
    "derived": (
        Habit(
            "mpr",
            ("T1W_3D_TFE +C MPR cor", "MPR COR", "3D T1 +C cor MPR", "T1 3D tra MPR"),
            "t1c",
            "mpr",
            scanning_sequence="GR",
            image_type=("DERIVED\\SECONDARY\\MPR", "DERIVED\\PRIMARY\\PROJECTION IMAGE\\MPR"),
            acq="3D",
            planes=("cor", "ax"),
            phys=P_TFE,
            weight=2,
        ),
        Habit(
            "mip",
            ("MIP", "MIP_tra", "MIP +C", "sMIP"),
            "t1c",
            "mip",
            scanning_sequence="GR",
            image_type=("DERIVED\\PRIMARY\\PROJECTION IMAGE\\MIP",),
            acq="3D",
            phys=P_TFE,
        ),
    ),
    "other": (
        Habit(
            "tof",
            ("3D_TOF", "TOF_COW", "Inflow_3D"),
            "t1",
            "tof",
            scanning_sequence="GR",
            acq="3D",
            phys=P_TOF,
        ),
        Habit(
            "ref",
            ("Reference", "Coil_Survey", "SENSE_Ref", "PRESS_SV"),
            "t1",
            "other",
            scanning_sequence="GR",
            phys=P_LOC,
        ),
    ),
}

CANON: dict[str, tuple[Habit, ...]] = {
    "localizer": (
        Habit(
            "locator",
            ("Locator", "LOCATOR", "3-plane Loc", "Scout", "locator 3pl"),
            "t1",
            "loc",
            sequence_names=("FE2D",),
            scanning_sequence="GR",
            sequence_variant="SP",
            image_type=("ORIGINAL\\PRIMARY\\LOCALIZER", "ORIGINAL\\PRIMARY\\OTHER"),
            planes=("3plane",),
            phys=P_LOC,
        ),
    ),
    "t1": (
        Habit(
            "mprage",
            ("3D T1 MPRAGE SAG", "T1W_3D_MPRAGE", "3D_T1 sag", "FE3D T1", "T1 3D MPR SAG"),
            "t1",
            "iso3d",
            sequence_names=("FE3D", "FE3D_MPRAGE"),
            scanning_sequence="GR\\IR",
            sequence_variant="SP\\MP",
            scan_options=("IR", ""),
            acq="3D",
            planes=("sag", "ax"),
            phys=P_FASTGRE3D,
            weight=3,
        ),
        Habit(
            "t1se",
            ("T1W SE AX", "T1_SE_AX", "ax T1", "T1W_FSE_AX"),
            "t1",
            "ax2d",
            sequence_names=("SE2D", "FSE2D"),
            scanning_sequence="SE",
            sequence_variant="SP",
            phys=P_T1SE,
        ),
    ),
    "t2": (
        Habit(
            "fse",
            ("T2W_FSE AX", "T2 FSE AX", "ax T2", "T2W AX", "T2_FSE_COR", "T2W_JET"),
            "t2",
            "t2ax",
            sequence_names=("FSE2D", "FSE_JET"),
            scanning_sequence="SE",
            sequence_variant="SK",
            scan_options=("", "FC"),
            planes=("ax", "ax", "cor"),
            phys=P_T2TSE,
            weight=3,
        ),
    ),
    "flair": (
        Habit(
            "flair2d",
            ("FLAIR AX", "T2 FLAIR ax", "FLAIR_AX", "ax FLAIR", "fluid attenuated IR"),
            "flair",
            "ax2d",
            sequence_names=("FSE2D", "FLAIR"),
            scanning_sequence="SE\\IR",
            sequence_variant="SK",
            scan_options=("IR",),
            phys=P_FLAIR2D,
            weight=3,
        ),
        Habit(
            "flair3d",
            ("3D FLAIR SAG", "mVox FLAIR", "3D_FLAIR"),
            "flair",
            "flair3d",
            sequence_names=("FSE3D",),
            scanning_sequence="SE\\IR",
            sequence_variant="SK",
            scan_options=("IR",),
            acq="3D",
            planes=("sag",),
            phys=P_FLAIR3D,
        ),
    ),
    "dwi": (
        Habit(
            "epi",
            ("DWI AX", "DWI b1000", "ax DWI", "DWI_AX_1000", "Diffusion AX"),
            "dwi",
            "dwi",
            sequence_names=("SE_EPI", "EPI2D"),
            scanning_sequence="EP",
            sequence_variant="SK",
            scan_options=("FS",),
            phys=P_DWI,
        ),
    ),
    "adc": (
        Habit(
            "adc",
            ("ADC", "ADC map", "DWI ADC", "ADC AX"),
            "adc",
            "dwi",
            sequence_names=("SE_EPI",),
            scanning_sequence="EP",
            sequence_variant="SK",
            image_type=("DERIVED\\SECONDARY\\ADC", "DERIVED\\PRIMARY\\OTHER"),
            phys=P_DWI,
        ),
    ),
    "swi": (
        Habit(
            "flair_swi",
            ("FSBB", "SWI AX", "FSBB_3D", "T2*FSBB"),
            "swi",
            "swi",
            sequence_names=("FE3D_FSBB",),
            scanning_sequence="GR",
            sequence_variant="SP",
            acq="3D",
            phys=P_SWI,
        ),
    ),
    "perfusion": (
        Habit(
            "dsc",
            ("Perfusion", "DSC perf", "PERFUSION EPI"),
            "t2",
            "perf",
            sequence_names=("FE_EPI",),
            scanning_sequence="EP",
            sequence_variant="SK",
            phys=P_PERF,
        ),
    ),
    "derived": (
        Habit(
            "mpr",
            ("MPR COR", "T1 3D +C MPR COR", "MPR AX", "3D_T1_CE_MPR"),
            "t1c",
            "mpr",
            image_type=("DERIVED\\SECONDARY\\MPR", "DERIVED\\SECONDARY\\REFORMATTED"),
            scanning_sequence="GR",
            acq="3D",
            planes=("cor", "ax"),
            phys=P_FASTGRE3D,
            weight=2,
        ),
        Habit(
            "mip",
            ("MIP", "MIP AX", "MRA MIP"),
            "t1c",
            "mip",
            image_type=("DERIVED\\SECONDARY\\MIP",),
            scanning_sequence="GR",
            acq="3D",
            phys=P_FASTGRE3D,
        ),
    ),
    "other": (
        Habit(
            "tof",
            ("TOF MRA", "3D TOF", "MRA HEAD"),
            "t1",
            "tof",
            sequence_names=("FE3D_TOF",),
            scanning_sequence="GR",
            acq="3D",
            phys=P_TOF,
        ),
        Habit(
            "map",
            ("PAS map", "Coil map", "SPEEDER map"),
            "t1",
            "other",
            scanning_sequence="GR",
            phys=P_LOC,
        ),
    ),
}

# CT habits: kernels are vendor words; "geometry" picks slice thickness ranges.
CT_HABITS: dict[str, dict[str, tuple[Habit, ...]]] = {
    "ge": {
        "ct_brain": (
            Habit(
                "head5",
                ("HEAD 5mm STD", "5mm Brain", "Head 5.0 STND", "Axial 5mm", "HEAD STD 5"),
                "ct",
                "ct5",
                kernels=("STANDARD", "SOFT", "STND"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
            Habit(
                "headthin",
                ("Head 0.625 STD", "1.25mm STD", "Brain 0.625", "HEAD THIN STD"),
                "ct",
                "ctthin",
                kernels=("STANDARD", "SOFT"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
        ),
        "ct_bone": (
            Habit(
                "bone",
                ("BONE 1.25mm", "Head 0.625 BONE", "Bone Plus", "HEAD BONE", "2.5mm BONE"),
                "ct",
                "ctbone",
                kernels=("BONE", "BONEPLUS", "EDGE"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL", "DERIVED\\SECONDARY\\AXIAL"),
            ),
        ),
        "ct_scout": (
            Habit(
                "scout",
                ("Scout", "SCOUT", "Topo", "scout lat"),
                "ct",
                "scout",
                kernels=("STANDARD",),
                image_type=("ORIGINAL\\PRIMARY\\LOCALIZER",),
            ),
        ),
        "other": (
            Habit(
                "dose",
                ("Dose Report", "Dose Info", "Screen Save"),
                "ct",
                "other",
                image_type=("DERIVED\\SECONDARY\\SCREEN SAVE", "ORIGINAL\\PRIMARY\\DOSE INFO"),
            ),
        ),
    },
    "siemens": {
        "ct_brain": (
            Habit(
                "head5",
                (
                    "Head  5.0  H31s",
                    "Kopf 5.0 H31s",
                    "Head 5.0 J40s",
                    "Cerebrum 5.0 Hr38",
                    "Hirn 4.0",
                ),
                "ct",
                "ct5",
                kernels=("H31s", "H40s", "J40s", "Hr38\\3", "Hr40f\\3"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL\\CT_SOM5 SPI", "ORIGINAL\\PRIMARY\\AXIAL"),
            ),
            Habit(
                "headthin",
                ("Head  0.75  H31s", "Kopf 1.0 J40s", "Head 1.0 Hr38 3", "Cerebrum 0.6 H40s"),
                "ct",
                "ctthin",
                kernels=("H31s", "J40s", "Hr38\\3"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL\\CT_SOM5 SPI",),
            ),
        ),
        "ct_bone": (
            Habit(
                "bone",
                ("Head  1.0  H60s", "Knochen 1.0 H70h", "Bone 0.75 Hr64", "Schädel 2.0 J70h"),
                "ct",
                "ctbone",
                kernels=("H60s", "H70h", "Hr64\\3", "J70h"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL\\CT_SOM5 SPI",),
            ),
        ),
        "ct_scout": (
            Habit(
                "topogram",
                ("Topogram  0.6  T20s", "Topogram  0.6  T80s", "Topogramm", "Topogram"),
                "ct",
                "scout",
                kernels=("T20s", "T80s", "Tr20f"),
                image_type=("ORIGINAL\\PRIMARY\\LOCALIZER\\CT_SOM5 TOP",),
            ),
        ),
        "other": (
            Habit(
                "dose",
                ("Patient Protocol", "Dose Report", "Patientenprotokoll"),
                "ct",
                "other",
                image_type=("DERIVED\\SECONDARY\\OTHER\\CT_SOM5 PROT",),
            ),
        ),
    },
    "philips": {
        "ct_brain": (
            Habit(
                "head5",
                ("Brain 5mm", "Head/Brain 5mm UB", "BRAIN 5.0", "Hersenen 5mm", "iDose Brain 5mm"),
                "ct",
                "ct5",
                kernels=("UB", "UC", "EC"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
            Habit(
                "headthin",
                ("Brain 1mm", "Head 0.9 UB", "Brain thin", "iDose Brain 1mm"),
                "ct",
                "ctthin",
                kernels=("UB", "UC"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
        ),
        "ct_bone": (
            Habit(
                "bone",
                ("Bone 1mm", "Head Bone 0.9 YC", "BONE", "Skull 1mm YD"),
                "ct",
                "ctbone",
                kernels=("YC", "YD", "D"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
        ),
        "ct_scout": (
            Habit(
                "surview",
                ("Surview", "SURVIEW", "Surview lat", "Scanogram"),
                "ct",
                "scout",
                kernels=("",),
                image_type=("ORIGINAL\\PRIMARY\\LOCALIZER",),
            ),
        ),
        "other": (
            Habit(
                "dose",
                ("Dose Info", "Dose Report"),
                "ct",
                "other",
                image_type=("DERIVED\\SECONDARY\\DOSE_INFO",),
            ),
        ),
    },
    "canon": {
        "ct_brain": (
            Habit(
                "head5",
                ("Head 5.0 FC26", "BRAIN 5.0", "Head  5.0  FC64", "AXIAL 5mm", "Brain 5.0 AIDR3D"),
                "ct",
                "ct5",
                kernels=("FC26", "FC64", "FC21", "FC20"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
            Habit(
                "headthin",
                ("Head 0.5 FC26", "Brain 1.0 FC64", "Head  0.5  FC21"),
                "ct",
                "ctthin",
                kernels=("FC26", "FC64"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
        ),
        "ct_bone": (
            Habit(
                "bone",
                ("Bone 1.0 FC30", "Head 0.5 FC35", "BONE 2.0 FC31", "Skull 1.0"),
                "ct",
                "ctbone",
                kernels=("FC30", "FC31", "FC35", "FC81"),
                image_type=("ORIGINAL\\PRIMARY\\AXIAL",),
            ),
        ),
        "ct_scout": (
            Habit(
                "scanogram",
                ("Scanogram", "SCANOGRAM", "Scano lat", "Scout"),
                "ct",
                "scout",
                kernels=("FC10",),
                image_type=("ORIGINAL\\PRIMARY\\LOCALIZER",),
            ),
        ),
        "other": (
            Habit(
                "dose",
                ("Dose Info", "Exam Report", "Dose Summary"),
                "ct",
                "other",
                image_type=("DERIVED\\SECONDARY\\OTHER",),
            ),
        ),
    },
}


def _merge(
    mr: dict[str, tuple[Habit, ...]], ct: dict[str, tuple[Habit, ...]]
) -> dict[str, tuple[Habit, ...]]:
    """One table per vendor; classes both modalities use ("other") keep both habit lists."""
    out = dict(mr)
    for key, habits in ct.items():
        out[key] = out.get(key, ()) + habits
    return out


HABITS: dict[str, dict[str, tuple[Habit, ...]]] = {
    "ge": _merge(GE, CT_HABITS["ge"]),
    "siemens": _merge(SIEMENS, CT_HABITS["siemens"]),
    "philips": _merge(PHILIPS, CT_HABITS["philips"]),
    "canon": _merge(CANON, CT_HABITS["canon"]),
}

# Post-contrast T1 is written by each vendor's T1 habits plus a contrast suffix.
POST_SUFFIXES: dict[str, tuple[str, ...]] = {
    "ge": (" +C", " +C", " POST", " C+", " +GAD", " post"),
    "siemens": ("_KM", "_post", "_+GD", "_KM", " post Gd", "_CE"),
    "philips": (" +C", "_+C", "_GADO", " POST", "_CE", "+Gd"),
    "canon": (" +C", " POST", " CE", " Gd", " post contrast"),
}

# Site habits across vendors: descriptions in the local language (weights are relative).
NON_ENGLISH: dict[str, tuple[str, ...]] = {
    "t1": (
        "T1 3D nativ",
        "T1 sag nativ",
        "T1 3D SIN CONTRASTE",
        "T1 3D sans injection",
        "T1 pre mdc",
    ),
    "t1c": (
        "T1 3D KM",
        "T1 sag nach KM",
        "T1 3D GADO",
        "T1 APRES INJECTION",
        "T1 CON CONTRASTE",
        "T1 POST GADOLINIO",
        "T1 3D post mdc",
        "T1 3D na contrast",
        "T1 efter kontrast",
        "T1 pós-contraste",
        "T1 avec gado",
    ),
    "t2": ("T2 tra", "T2 AXIAL", "T2 axiale", "T2 transversal", "T2 TSE transversaal"),
    "flair": ("FLAIR tra", "FLAIR axial", "FLAIR assiale", "FLAIR transversaal", "FLAIR axiell"),
    "dwi": ("Diffusion", "DIFFUSION", "Diffusion tra", "DIFUSION", "Diffusione", "diffusie"),
    "adc": ("ADC Karte", "Carte ADC", "Mapa ADC", "ADC-kaart", "Mappa ADC"),
    "swi": ("SWI tra", "Suszeptibilität", "SWI axial", "Susceptibilidad"),
    "localizer": ("Lokalisierer", "Localisateur", "Localizador", "Planning", "Übersicht"),
    "perfusion": ("Perfusion", "Perfusión", "Perfusione", "Perfusie"),
    "derived": ("MPR koronar", "Reconstruction coronale", "Reconstrucción coronal", "MIP koronal"),
    "ct_brain": ("Schädel nativ 5mm", "Crâne 5mm", "Cráneo 5mm", "Encefalo 5mm", "Hersenen 5mm"),
    "ct_bone": ("Knochen 1mm", "Os 1mm", "Hueso 1mm", "Osso 1mm", "Bot 1mm"),
    "ct_scout": ("Übersicht", "Radio de repérage", "Topograma", "Scout laterale"),
    "other": ("Dosisbericht", "Rapport de dose", "Informe de dosis", "Rapporto dose"),
}

CONTRAST_AGENTS: tuple[tuple[str, str, float], ...] = (
    # (ContrastBolusAgent, ingredient concentration note, typical volume ml)
    ("Gadovist", "GADOLINIUM", 7.5),
    ("Dotarem", "GADOLINIUM", 15.0),
    ("MultiHance", "GADOLINIUM", 15.0),
    ("ProHance", "GADOLINIUM", 15.0),
    ("Clariscan", "GADOLINIUM", 15.0),
    ("gadobutrol 1 mmol/ml", "GADOLINIUM", 7.0),
    ("Gd", "GADOLINIUM", 10.0),
)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPlan:
    """What the generator needs to produce one series: headers plus acquisition geometry.

    ``plane`` is "ax", "sag", "cor" or "3plane"; ``pixel_spacing`` is (row, column) spacing in
    mm; ``spacing`` is the slice-to-slice distance (thickness + gap). ``slab`` says how the
    through-slice profile is formed ("mean" or "max" for MIP).
    """

    series_class: str
    family: str
    contrast: str
    plane: str
    acq: str
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]
    thickness: float
    spacing: float
    n_slices: int
    slab: str
    kernel: str
    headers: dict[str, Any]


def _choice(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    """Pick one item uniformly (works for tuples of tuples, unlike ``rng.choice``)."""
    return items[int(rng.integers(len(items)))]


def _weighted(rng: np.random.Generator, habits: Sequence[Habit]) -> Habit:
    w = np.array([h.weight for h in habits], dtype=float)
    return habits[int(rng.choice(len(habits), p=w / w.sum()))]


def sample_scanner(vendor: str, modality: str, rng: np.random.Generator) -> Scanner:
    """Draw a scanner of ``vendor`` ("ge", "siemens", "philips", "canon") for "MR" or "CT"."""
    if vendor not in SCANNERS:
        raise ValueError(f"unknown vendor {vendor!r}; choose one of {', '.join(VENDORS)}")
    scanner: Scanner = _choice(rng, SCANNERS[vendor][modality])
    station = f"{vendor[:3].upper()}{modality}{int(rng.integers(1, 9))}"
    return replace(scanner, station_name=station)


def _phys(habit: Habit, field_strength: float | None, key: str, rng: np.random.Generator) -> float:
    ranges = habit.phys
    k3 = f"{key}@3"
    lo, hi = ranges[k3] if (field_strength or 0) >= 2.5 and k3 in ranges else ranges[key]
    return float(rng.uniform(lo, hi))


def _fmt(x: float, digits: int = 2) -> float:
    return float(round(x, digits))


def _describe(
    vendor: str, series_class: str, habit: Habit, rng: np.random.Generator
) -> tuple[str, str]:
    """SeriesDescription and ProtocolName with the cross-vendor site habits applied."""
    desc: str = _choice(rng, habit.names)
    proto: str = _choice(rng, habit.protocol_names) if habit.protocol_names else desc
    if series_class == "t1c":
        suffix: str = _choice(rng, POST_SUFFIXES[vendor])
        desc = desc + suffix
        if not habit.protocol_names:
            proto = desc
    u = rng.random()
    if u < 0.10 and series_class in NON_ENGLISH:
        desc = _choice(rng, NON_ENGLISH[series_class])
        if rng.random() < 0.5:
            proto = desc
    elif u < 0.14:
        desc = desc.upper()
    elif u < 0.16:
        desc = desc.lower()
    v = rng.random()
    if v < 0.03:
        desc = ""  # some sites blank the description and rely on the protocol name
    elif v < 0.045:
        desc, proto = "", ""  # and a few anonymisers blank both
    elif v < 0.07:
        proto = ""
    return desc[:64], proto[:64]


def _plane_iop(plane: str, rng: np.random.Generator, max_tilt_deg: float) -> list[float]:
    """ImageOrientationPatient for a nominal plane, with a small random obliquity."""
    base = {
        "ax": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
        "sag": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
        "cor": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    }[plane]
    r = np.asarray(base[0])
    c = np.asarray(base[1])
    n = np.cross(r, c)
    angle = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg))
    # tilt about the row axis (like an AC-PC angulation)
    c2 = np.cos(angle) * c + np.sin(angle) * n
    return [_fmt(v, 6) for v in (*r, *c2)]


def sample_series_plan(
    scanner: Scanner,
    series_class: str,
    rng: np.random.Generator,
    *,
    family: str | None = None,
    plane: str | None = None,
    small: bool = False,
) -> SeriesPlan:
    """Draw a habit of ``scanner.vendor`` for ``series_class`` and return headers and geometry.

    ``family`` pins one habit family (e.g. "mprage", "flair2d", "headthin"), ``plane`` the plane
    ("ax", "sag", "cor"); ``small`` divides matrices and slice counts so tests run quickly.
    """
    if series_class not in SERIES_CLASSES:
        raise ValueError(f"unknown series class {series_class!r}")
    key = "t1" if series_class == "t1c" else series_class
    # a CT scanner writes only CT habits (and an MR scanner only MR ones), even for "other"
    habits = tuple(
        h for h in HABITS[scanner.vendor][key] if (h.contrast == "ct") == (scanner.modality == "CT")
    )
    if not habits:
        raise ValueError(f"{scanner.modality} scanners write no {series_class!r} series")
    if family is not None:
        pinned = [h for h in habits if h.family == family]
        if not pinned:
            raise ValueError(f"no habit family {family!r} for {scanner.vendor}/{series_class}")
        habits = tuple(pinned)
    habit = _weighted(rng, habits)
    geo = GEOMETRIES[habit.geometry]
    plane = plane or str(_choice(rng, habit.planes))
    fs = scanner.field_strength
    contrast = "t1c" if series_class == "t1c" else habit.contrast
    if series_class == "derived" and habit.contrast == "t1c" and rng.random() < 0.3:
        contrast = "t1"

    matrix = int(_choice(rng, geo.matrix))
    fov = float(rng.uniform(*geo.fov_mm))
    thickness = float(_choice(rng, geo.thickness))
    gap = float(rng.uniform(*geo.gap_mm)) if geo.gap_mm != (0, 0) else 0.0
    if geo.slab == "max":
        gap = -thickness * float(rng.uniform(0.5, 0.8))  # overlapping MIP slabs
    n_slices = int(rng.integers(geo.n_slices[0], geo.n_slices[1] + 1))
    if habit.acq == "3D" and geo.slab == "mean":
        gap = 0.0
    spacing = round(thickness + gap, 3)
    rows = cols = matrix
    if plane == "sag" and habit.acq == "3D" and rng.random() < 0.5:
        cols = round(matrix * 0.9375)  # e.g. 256 x 240 phase FOV reduction
    if small:
        # tests: quarter matrices and at most 24 slices covering the same extent
        f = 2 if series_class in CT_CLASSES or matrix <= 256 else 4
        rows, cols = max(64, rows // f), max(64, cols // f)
        if n_slices > 24 and geo.slab == "mean":
            stretch = n_slices / 24.0
            thickness, spacing, n_slices = thickness * stretch, spacing * stretch, 24
    pix = fov / max(rows, cols)
    pixel_spacing = (_fmt(pix, 6), _fmt(pix, 6))

    desc, proto = _describe(scanner.vendor, series_class, habit, rng)
    image_type: str = _choice(rng, habit.image_type)
    if series_class == "localizer" and rng.random() < 0.5 and "LOCALIZER" not in image_type:
        image_type = "ORIGINAL\\PRIMARY\\LOCALIZER"
    h: dict[str, Any] = {
        "Modality": "CT" if series_class in CT_CLASSES or habit.contrast == "ct" else "MR",
        "Manufacturer": scanner.manufacturer,
        "ManufacturerModelName": scanner.model,
        "SoftwareVersions": scanner.software_versions,
        "StationName": scanner.station_name,
        "SeriesDescription": desc,
        "ProtocolName": proto,
        "ImageType": image_type.split("\\"),
        "Rows": rows,
        "Columns": cols,
        "PixelSpacing": list(pixel_spacing),
        "SliceThickness": _fmt(thickness, 3),
        "ImagesInAcquisition": n_slices * (3 if plane == "3plane" else 1),
    }
    if plane != "3plane":
        h["ImageOrientationPatient"] = _plane_iop(plane, rng, 12.0 if plane == "ax" else 5.0)
    if h["Modality"] == "MR":
        h.update(
            {
                "MagneticFieldStrength": fs,
                "ImagingFrequency": _fmt(42.577 * (fs or 1.5), 6),
                "ImagedNucleus": "1H",
                "MRAcquisitionType": habit.acq,
                "ScanningSequence": habit.scanning_sequence.split("\\"),
                "SequenceVariant": habit.sequence_variant.split("\\"),
                "ScanOptions": [s for s in str(_choice(rng, habit.scan_options)).split("\\") if s],
                "SequenceName": _choice(rng, habit.sequence_names),
                "RepetitionTime": _fmt(_phys(habit, fs, "tr", rng)),
                "EchoTime": _fmt(_phys(habit, fs, "te", rng)),
                "FlipAngle": _fmt(_phys(habit, fs, "flip", rng), 0),
                "SpacingBetweenSlices": _fmt(spacing, 3),
                "NumberOfAverages": float(_choice(rng, (1.0, 1.0, 2.0))),
                "EchoTrainLength": int(_phys(habit, fs, "etl", rng)) if "etl" in habit.phys else 1,
                "PercentSampling": float(_choice(rng, (75.0, 80.0, 100.0, 100.0))),
                "PixelBandwidth": _fmt(float(rng.uniform(120, 400)), 1),
            }
        )
        if "ti" in habit.phys and not (scanner.vendor == "philips" and rng.random() < 0.5):
            h["InversionTime"] = _fmt(_phys(habit, fs, "ti", rng))
        if series_class == "dwi":
            h["DiffusionBValue"] = 1000.0
        if contrast == "t1c" and rng.random() < 0.85:
            agent, ingredient, volume = _choice(rng, CONTRAST_AGENTS)
            h["ContrastBolusAgent"] = agent
            h["ContrastBolusRoute"] = "IV"
            h["ContrastBolusVolume"] = _fmt(volume * float(rng.uniform(0.8, 1.2)), 1)
            h["ContrastBolusIngredient"] = ingredient
    else:
        kernel = str(_choice(rng, habit.kernels or ("STANDARD",)))
        h.update(
            {
                "ConvolutionKernel": kernel.split("\\") if "\\" in kernel else kernel,
                "KVP": float(_choice(rng, (100.0, 120.0, 120.0, 140.0))),
                "XRayTubeCurrent": int(rng.integers(150, 400)),
                "ExposureTime": int(rng.integers(500, 1500)),
                "Exposure": int(rng.integers(150, 450)),
                "FilterType": _choice(rng, ("BODY FILTER", "HEAD FILTER", "FLAT", "WEDGE_2")),
                "GeneratorPower": int(rng.integers(40, 80)),
                "FocalSpots": float(_choice(rng, (0.7, 1.2))),
                "DataCollectionDiameter": 500.0,
                "ReconstructionDiameter": _fmt(fov, 1),
                "DistanceSourceToDetector": 1085.6 if scanner.vendor != "siemens" else 1040.0,
                "DistanceSourceToPatient": 541.0 if scanner.vendor != "siemens" else 595.0,
                "RotationDirection": "CW",
                "CTDIvol": _fmt(float(rng.uniform(35, 65)), 2),
                "SpiralPitchFactor": _fmt(float(_choice(rng, (0.531, 0.6, 0.8, 0.984))), 3),
                "GantryDetectorTilt": 0.0,
            }
        )
        if series_class == "ct_scout":
            h["SliceThickness"] = 0.6 if scanner.vendor == "siemens" else 1.0
            h["XRayTubeCurrent"] = int(rng.integers(20, 80))
        if series_class == "ct_brain" and habit.geometry == "ct5" and rng.random() < 0.5:
            h["GantryDetectorTilt"] = _fmt(float(rng.uniform(-20, 0)), 1)
    return SeriesPlan(
        series_class=series_class,
        family=habit.family,
        contrast=contrast,
        plane=plane,
        acq=habit.acq,
        rows=rows,
        columns=cols,
        pixel_spacing=pixel_spacing,
        thickness=thickness,
        spacing=spacing,
        n_slices=n_slices,
        slab=geo.slab,
        kernel=str(h.get("ConvolutionKernel", "")),
        headers=h,
    )


def sample_series_headers(
    vendor: str,
    series_class: str,
    rng: np.random.Generator,
    *,
    scanner: Scanner | None = None,
) -> dict[str, Any]:
    """Headers (DICOM keyword → value) a ``vendor`` site writes for a ``series_class``.

    No pixels are generated, so this is cheap enough for a classifier corpus of 100k series.
    Values are Python types pydicom accepts (multi-valued attributes as lists). Geometry is
    summarised by Rows/Columns/PixelSpacing/SliceThickness/SpacingBetweenSlices,
    ImagesInAcquisition (number of images) and ImageOrientationPatient (absent for 3-plane
    localizers, whose images mix orientations). Pass ``scanner`` to keep one scanner for a
    whole study; otherwise a scanner of ``vendor`` is drawn.
    """
    if vendor not in VENDORS:
        raise ValueError(f"unknown vendor {vendor!r}; choose one of {', '.join(VENDORS)}")
    if series_class not in SERIES_CLASSES:
        raise ValueError(f"unknown series class {series_class!r}")
    modality = "CT" if series_class in CT_CLASSES else "MR"
    if series_class == "other" and scanner is None and rng.random() < 0.3:
        modality = "CT"
    scn = scanner or sample_scanner(vendor, modality, rng)
    return dict(sample_series_plan(scn, series_class, rng).headers)
