"""Generate the bad-input corpus under tests/data/bad/ (git-ignored; made reproducibly).

Every case is a study directory derived from one small synthetic glioma study (GE, seed 1,
``radpipe.synth``; cached in ~/.cache/radpipe/studies) with one thing wrong, plus
``cases.json`` naming each case, what is wrong and what radpipe must do with it:

==================  ==========================================================================
case                what is wrong
==================  ==========================================================================
truncated_header    one FLAIR file cut off inside its header
truncated_pixels    one FLAIR file whose pixel data is cut in half
jpeg2000            the T1 post-contrast series JPEG 2000 lossless compressed (pylibjpeg)
jpegls              the T1 post-contrast series JPEG-LS lossless compressed (dcmtk dcmcjpls)
undecodable         the T1 post-contrast series in a transfer syntax no installed decoder reads
no_pixels           the T1 post-contrast series without Pixel Data
geometry_mixed      the T1 series with half its slices in another orientation
geometry_missing    one T1 slice without ImagePositionPatient / ImageOrientationPatient
mixed_patients      the T2 series belongs to another patient
duplicate_sop       two different T2 files carry the same SOP Instance UID
non_ascii           UTF-8 (ISO_IR 192) descriptions and patient name in Cyrillic, CJK, Greek
latin1              ISO_IR 100 descriptions and patient name (ü, é, ñ)
no_brain            a chest CT: no brain series at all
malicious           HTML/script in SeriesDescription, StudyDescription and the patient name
large_series        (``--large`` only) one series of 5000 instances, for tests/bench
==================  ==========================================================================

UIDs are derived from the case name and the source UIDs, so a case is the same every run
and no two cases share a study. Run: ``.venv/bin/python tests/data/make_bad_corpus.py
[--out DIR] [--large]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "bad"
#: Bumped whenever the cases change, so a stale corpus is made again.
CORPUS_VERSION = 3
#: A transfer syntax pydicom knows but no installed pixel handler decodes (JPEG XL).
UNDECODABLE_SYNTAX = "1.2.840.10008.1.2.4.100"
MALICIOUS = '<script>alert("rp")</script><img src=x onerror=alert(1)>&amp;"\'</b>'

#: Series folders of the base study by role.
T1, T2, FLAIR, T1C = (
    "2_Sag_3D_FSPGR_BRAVO",
    "3_Ax_T2_PROP",
    "4_Ax_T2_FLAIR_ASSET",
    "8_sag_3d_fspgr_post",
)


@dataclass(frozen=True)
class Case:
    """One corpus case and the behaviour radpipe owes it."""

    name: str
    problem: str
    #: "succeeded" (a correct result) or "failed" (a clear error); at which stage.
    outcome: str
    stage: str
    #: Words the failure message must contain (lower case).
    message: tuple[str, ...] = ()


CASES: tuple[Case, ...] = (
    # Pushed without a count to check against, an unreadable file cannot be told to belong
    # to a series: it is set aside under corrupt/ and named in the manifest's problems.
    Case("truncated_header", "one FLAIR file cut off in its header", "succeeded", "classify"),
    Case(
        "truncated_pixels",
        "one FLAIR file with half its pixel data",
        "failed",
        "classify",
        ("flair", "incomplete"),
    ),
    Case("jpeg2000", "T1c series JPEG 2000 lossless", "succeeded", "classify"),
    Case("jpegls", "T1c series JPEG-LS lossless", "succeeded", "classify"),
    Case("undecodable", "T1c series in MPEG-2 (no decoder)", "succeeded", "classify"),
    Case("no_pixels", "T1c series without Pixel Data", "failed", "classify", ("t1c", "incomplete")),
    Case("geometry_mixed", "T1 series in two orientations", "succeeded", "classify"),
    Case("geometry_missing", "a T1 slice without position", "succeeded", "classify"),
    Case(
        "mixed_patients",
        "T2 series of another patient",
        "failed",
        "fetch",
        ("2 different patients",),
    ),
    Case("duplicate_sop", "two T2 files with one SOP Instance UID", "succeeded", "classify"),
    Case("non_ascii", "UTF-8 Cyrillic/CJK/Greek descriptions", "succeeded", "classify"),
    Case("latin1", "ISO_IR 100 descriptions", "succeeded", "classify"),
    Case("no_brain", "a chest CT study", "failed", "classify", ("missing required series", "t1")),
    Case("malicious", "HTML/script in descriptions and name", "succeeded", "classify"),
)


def base_study() -> Path:
    """The small synthetic glioma study every case starts from (generated once, cached)."""
    from radpipe.results.synthetic import cached_study

    return cached_study("mr-glioma", 1) / "dicom"


def _uid(case: str, old: str) -> str:
    return str(generate_uid(entropy_srcs=[f"radpipe-bad/{CORPUS_VERSION}", case, old]))


def _renumber(case: str, ds: Dataset) -> None:
    """New study/series/instance UIDs for this case (deterministic)."""
    for keyword in (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "FrameOfReferenceUID",
    ):
        if keyword in ds:
            setattr(ds, keyword, _uid(case, str(getattr(ds, keyword))))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.AccessionNumber = "BAD-" + case.upper().replace("_", "")[:12]


Mutator = Callable[[str, int, Dataset], Dataset | None]


def _copy_case(case: str, out: Path, mutate: Mutator | None = None) -> list[Path]:
    """Copy the base study into ``out`` with fresh UIDs; ``mutate(series, index, ds)`` may
    change a dataset in place or return None to drop it."""
    written = []
    for series_dir in sorted(base_study().iterdir()):
        for index, path in enumerate(sorted(series_dir.glob("*.dcm"))):
            ds = pydicom.dcmread(path)
            _renumber(case, ds)
            if mutate is not None and mutate(series_dir.name, index, ds) is None:
                continue
            dest = out / series_dir.name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(dest, enforce_file_format=True)
            written.append(dest)
    return written


def _keep(series: str, index: int, ds: Dataset) -> Dataset:
    return ds


def make_truncated_header(out: Path) -> None:
    _copy_case("truncated_header", out)
    target = sorted((out / FLAIR).glob("*.dcm"))[3]
    target.write_bytes(target.read_bytes()[:300])


def make_truncated_pixels(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == FLAIR and index == 3:
            ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
        return ds

    _copy_case("truncated_pixels", out, mutate)


def make_jpeg2000(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == T1C:
            ds.compress(JPEG2000Lossless)
        return ds

    _copy_case("jpeg2000", out, mutate)


def make_jpegls(out: Path) -> None:
    _copy_case("jpegls", out)
    tool = shutil.which("dcmcjpls")
    if tool is None:
        raise SystemExit("dcmcjpls (dcmtk) is needed for the JPEG-LS case: apt-get install dcmtk")
    for path in sorted((out / T1C).glob("*.dcm")):
        subprocess.run([tool, "--encode-lossless", str(path), str(path)], check=True)


def make_undecodable(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == T1C:
            ds.PixelData = encapsulate([b"\xff\x0a" + bytes(range(200))])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = UNDECODABLE_SYNTAX
        return ds

    _copy_case("undecodable", out, mutate)


def make_no_pixels(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == T1C:
            del ds.PixelData
        return ds

    _copy_case("no_pixels", out, mutate)


def make_geometry_mixed(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == T1 and index % 2:
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        return ds

    _copy_case("geometry_mixed", out, mutate)


def make_geometry_missing(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == T1 and index == 5:
            del ds.ImagePositionPatient
            del ds.ImageOrientationPatient
        return ds

    _copy_case("geometry_missing", out, mutate)


def make_mixed_patients(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == T2:
            ds.PatientID = "OTHER-PATIENT-7"
            ds.PatientName = "Other^Person"
        return ds

    _copy_case("mixed_patients", out, mutate)


def make_duplicate_sop(out: Path) -> None:
    files = _copy_case("duplicate_sop", out)
    t2 = sorted(p for p in files if p.parent.name == T2)
    first = pydicom.dcmread(t2[0])
    twin = pydicom.dcmread(t2[1])
    twin.SOPInstanceUID = first.SOPInstanceUID
    twin.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
    twin.save_as(t2[1], enforce_file_format=True)


def _describe(mapping: dict[str, str], charset: str, name: str) -> Mutator:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        if series in mapping:
            ds.SeriesDescription = mapping[series]
        ds.StudyDescription = mapping.get("study", str(ds.get("StudyDescription", "")))
        return ds

    return mutate


def make_non_ascii(out: Path) -> None:
    mapping = {
        T1: "Sag 3D FSPGR BRAVO Т1 сагиттальный",
        T2: "Ax T2 PROP 横断 T2強調",
        FLAIR: "Ax T2 FLAIR ASSET — αξονική",
        T1C: "sag 3d fspgr post κ+ 造影後",
        "study": "МРТ головного мозга 頭部MRI",
    }
    _copy_case("non_ascii", out, _describe(mapping, "ISO_IR 192", "Łukasiewicz^Zoë=山田^太郎"))


def make_latin1(out: Path) -> None:
    mapping = {T2: "Ax T2 PROP Schädel", FLAIR: "Ax T2 FLAIR ASSET crâne", "study": "IRM cérébrale"}
    _copy_case("latin1", out, _describe(mapping, "ISO_IR 100", "Muñoz^José Müller"))


def make_no_brain(out: Path) -> None:
    from tests.fixtures.dicom_studies import make_study

    study = make_study(
        out / "tmp",
        accession="BAD-NOBRAIN",
        modality="CT",
        series=(("CHEST 5mm", 6), ("CHEST LUNG 1mm", 8), ("SCOUT", 1)),
        rows=32,
    )
    for path in study.files:
        ds = pydicom.dcmread(path)
        ds.BodyPartExamined = "CHEST"
        dest = out / f"{int(ds.SeriesNumber)}_{ds.SeriesDescription.replace(' ', '_')}"
        dest.mkdir(parents=True, exist_ok=True)
        ds.save_as(dest / path.name, enforce_file_format=True)
    shutil.rmtree(out / "tmp")


def make_malicious(out: Path) -> None:
    def mutate(series: str, index: int, ds: Dataset) -> Dataset:
        if series == T1C:
            ds.SeriesDescription = f"sag 3d fspgr post {MALICIOUS}"[:64]
        ds.StudyDescription = MALICIOUS[:64]
        ds.PatientName = "<b>Evil</b>^<i>X</i>"
        return ds

    _copy_case("malicious", out, mutate)


def make_large_series(out: Path, count: int = 5000) -> None:
    """One series of ``count`` tiny instances (plus the base study's T1c for context)."""
    template = pydicom.dcmread(sorted((base_study() / T1C).glob("*.dcm"))[0])
    _renumber("large_series", template)
    series_uid = _uid("large_series", "series")
    out.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((32, 32), dtype=np.uint16)
    template.Rows = template.Columns = 32
    template.PixelData = pixels.tobytes()
    template.SeriesInstanceUID = series_uid
    template.SeriesDescription = "Ax T1 5000 thin slices"
    for number in range(1, count + 1):
        template.SOPInstanceUID = _uid("large_series", f"sop-{number}")
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = number
        template.ImagePositionPatient = [0.0, 0.0, number * 0.1]
        template.save_as(out / f"IM{number:05d}.dcm", enforce_file_format=True)


MAKERS: dict[str, Callable[[Path], None]] = {
    "truncated_header": make_truncated_header,
    "truncated_pixels": make_truncated_pixels,
    "jpeg2000": make_jpeg2000,
    "jpegls": make_jpegls,
    "undecodable": make_undecodable,
    "no_pixels": make_no_pixels,
    "geometry_mixed": make_geometry_mixed,
    "geometry_missing": make_geometry_missing,
    "mixed_patients": make_mixed_patients,
    "duplicate_sop": make_duplicate_sop,
    "non_ascii": make_non_ascii,
    "latin1": make_latin1,
    "no_brain": make_no_brain,
    "malicious": make_malicious,
}


def generate(out: Path = DEFAULT_OUT, *, large: bool = False) -> Path:
    """Make every case under ``out`` (skipped when the same corpus version is there)."""
    index = out / "cases.json"
    if index.is_file():
        current = json.loads(index.read_text())
        if current.get("version") == CORPUS_VERSION and (
            not large or (out / "large_series").is_dir()
        ):
            return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for case in CASES:
        MAKERS[case.name](out / case.name)
    if large:
        make_large_series(out / "large_series")
    index.write_text(
        json.dumps(
            {
                "version": CORPUS_VERSION,
                "cases": [
                    {
                        "name": c.name,
                        "problem": c.problem,
                        "outcome": c.outcome,
                        "stage": c.stage,
                        "message": list(c.message),
                    }
                    for c in CASES
                ],
            },
            indent=1,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--large", action="store_true", help="also the 5000-instance series")
    args = parser.parse_args(argv)
    out = generate(args.out, large=args.large)
    print(f"bad-input corpus in {out}: {', '.join(c.name for c in CASES)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main())
