"""DICOM writing: MR Image Storage and CT Image Storage instances that dciodvfy accepts.

Attributes that do not change within a series are encoded to bytes once; each instance only
encodes its own few elements (position, UIDs, pixels) and the byte strings are merged in tag
order. pydicom does all the encoding, so the files are exactly what ``dcmwrite`` would write,
at a fraction of the cost of building and writing a full Dataset per image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from radpipe.synth.geometry import SeriesGeometry

UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's registered root; suffix is a hash


def make_uid(*parts: object) -> str:
    """A UID that depends only on ``parts`` (so the same seed gives the same study)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(p) for p in parts])


def _element(keyword: str, value: Any) -> DataElement:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"not a DICOM keyword: {keyword}")
    return DataElement(tag, dictionary_VR(tag), value)


def safe_name(text: str, fallback: str) -> str:
    """A file-system-friendly version of a SeriesDescription."""
    s = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")
    return (s or fallback)[:48]


@dataclass(frozen=True)
class StudyInfo:
    """Study- and patient-level attributes shared by every series."""

    study_uid: str
    frame_of_reference_uid: str
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    age: str
    weight_kg: float
    accession: str
    study_date: str
    study_time: str
    study_id: str
    study_description: str
    institution: str


@dataclass(frozen=True)
class PixelEncoding:
    """How a vendor stores pixels: signed or not, bits stored, CT rescale intercept."""

    signed: bool
    bits_stored: int
    intercept: float = 0.0


def encoding_for(vendor: str, modality: str) -> PixelEncoding:
    """Vendor habits: GE writes signed 16-bit, Siemens/Philips 12-bit unsigned, Canon varies."""
    if modality == "CT":
        return {
            "ge": PixelEncoding(True, 16, -1024.0),
            "siemens": PixelEncoding(False, 12, -1024.0),
            "philips": PixelEncoding(False, 12, -1024.0),
            "canon": PixelEncoding(True, 16, 0.0),
        }[vendor]
    return {
        "ge": PixelEncoding(True, 16),
        "siemens": PixelEncoding(False, 12),
        "philips": PixelEncoding(False, 12),
        "canon": PixelEncoding(False, 16),
    }[vendor]


ENCODINGS = ["utf_8"]  # SpecificCharacterSet ISO_IR 192


def _encode(elem: DataElement) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, elem, ENCODINGS)
    return bytes(fp.getvalue())


def _encoded(items: dict[str, Any]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for k, v in items.items():
        elem = _element(k, v)
        out[int(elem.tag)] = _encode(elem)
    return out


def _pixel_element(pix: NDArray[np.generic]) -> bytes:
    data = pix.tobytes()
    if len(data) % 2:
        data += b"\0"
    # (7FE0,0010) OW, explicit VR little endian: tag, VR, 2 reserved bytes, 4-byte length
    return b"\xe0\x7f\x10\x00OW\x00\x00" + len(data).to_bytes(4, "little") + data


def _file_meta(sop_class: str, sop_instance: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "RADPIPE_SYNTH"
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    return b"\0" * 128 + b"DICM" + bytes(fp.getvalue())


def write_series(
    out_dir: Path,
    study: StudyInfo,
    *,
    series_uid: str,
    series_number: int,
    series_time: str,
    headers: dict[str, Any],
    geometries: list[SeriesGeometry],
    stacks: list[NDArray[np.float32]],
    encoding: PixelEncoding,
    extra_per_image: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Write one series: ``stacks[i]`` (slices, rows, cols) is sampled in ``geometries[i]``.

    Several stacks make one series when a protocol writes them together (3-plane localizer,
    DWI b=0 and b=1000). Returns the SOPInstanceUIDs in instance order. Values are real-world
    (HU for CT); the stored integers are ``(value - intercept)`` rounded and clipped to the
    encoding's range.
    """
    modality = str(headers["Modality"])
    is_ct = modality == "CT"
    out_dir.mkdir(parents=True, exist_ok=True)
    lo = -(2 ** (encoding.bits_stored - 1)) if encoding.signed else 0
    hi = (2 ** (encoding.bits_stored - 1) - 1) if encoding.signed else 2**encoding.bits_stored - 1
    dtype = np.int16 if encoding.signed else np.uint16

    common: dict[str, Any] = {
        "SpecificCharacterSet": "ISO_IR 192",
        "SOPClassUID": CTImageStorage if is_ct else MRImageStorage,
        "StudyDate": study.study_date,
        "SeriesDate": study.study_date,
        "AcquisitionDate": study.study_date,
        "ContentDate": study.study_date,
        "StudyTime": study.study_time,
        "SeriesTime": series_time,
        "AccessionNumber": study.accession,
        "InstitutionName": study.institution,
        "ReferringPhysicianName": "SYNTH^REFERRER",
        "StudyDescription": study.study_description,
        "PatientName": study.patient_name,
        "PatientID": study.patient_id,
        "PatientBirthDate": study.birth_date,
        "PatientSex": study.sex,
        "PatientAge": study.age,
        "PatientWeight": study.weight_kg,
        "BodyPartExamined": "HEAD",
        "PatientPosition": "HFS",
        "StudyInstanceUID": study.study_uid,
        "SeriesInstanceUID": series_uid,
        "StudyID": study.study_id,
        "SeriesNumber": series_number,
        "FrameOfReferenceUID": study.frame_of_reference_uid,
        "PositionReferenceIndicator": "",
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "BitsAllocated": 16,
        "BitsStored": encoding.bits_stored,
        "HighBit": encoding.bits_stored - 1,
        "PixelRepresentation": 1 if encoding.signed else 0,
        "BurnedInAnnotation": "NO",
    }
    for key, val in headers.items():
        if key in ("ImagesInAcquisition", "ImageOrientationPatient"):
            continue  # derived from the actual geometry below
        common[key] = val
    if not is_ct:
        common.setdefault("ScanOptions", "")
        common.setdefault("EchoTrainLength", 1)
        if "IR" in list(common.get("ScanningSequence", [])):
            common.setdefault("InversionTime", None)  # Type 2C: present, may be empty
        else:
            # GE writes TI for IR-prepared gradient echo (BRAVO) without IR in
            # ScanningSequence; the standard forbids that, so the written file drops it.
            common.pop("InversionTime", None)
    else:
        common["RescaleIntercept"] = encoding.intercept
        common["RescaleSlope"] = 1.0
        # localizers are not in HU (dciodvfy warns); "US" = unspecified
        common["RescaleType"] = "US" if "LOCALIZER" in list(common["ImageType"]) else "HU"
    n_images = sum(s.shape[0] for s in stacks)
    common["ImagesInAcquisition"] = n_images
    base = _encoded(common)

    uids: list[str] = []
    number = 0
    window = _window(stacks, headers, is_ct)
    for geom, stack in zip(geometries, stacks, strict=True):
        iop = [round(v, 8) for v in (*geom.row_dir, *geom.col_dir)]
        normal = geom.normal
        for k in range(stack.shape[0]):
            number += 1
            sop = make_uid(series_uid, number)
            ipp = geom.position(k)
            stored = np.rint(stack[k] - encoding.intercept)
            pix = np.clip(stored, lo, hi).astype(dtype)
            items: dict[str, Any] = {
                "SOPInstanceUID": sop,
                "InstanceNumber": number,
                "AcquisitionNumber": 1,
                "ContentTime": series_time,
                "AcquisitionTime": series_time,
                "ImagePositionPatient": [round(float(v), 6) for v in ipp],
                "ImageOrientationPatient": iop,
                "SliceLocation": round(float(ipp @ normal), 6),
                "Rows": int(stack.shape[1]),
                "Columns": int(stack.shape[2]),
                "PixelSpacing": [round(geom.pixel_spacing[0], 6), round(geom.pixel_spacing[1], 6)],
                "SliceThickness": round(geom.thickness, 4),
            }
            if not is_ct:
                items["SpacingBetweenSlices"] = round(geom.spacing, 4)
            if extra_per_image is not None:
                items.update(extra_per_image[number - 1])
            items["WindowCenter"], items["WindowWidth"] = window
            encoded = dict(base)
            encoded.update(_encoded(items))
            vr = "SS" if encoding.signed else "US"
            for key, val in (
                ("SmallestImagePixelValue", int(pix.min())),
                ("LargestImagePixelValue", int(pix.max())),
            ):
                tag = tag_for_keyword(key)
                encoded[int(tag)] = _encode(DataElement(tag, vr, val))  # type: ignore[arg-type]
            body = b"".join(encoded[t] for t in sorted(encoded))
            blob = _file_meta(common["SOPClassUID"], sop) + body + _pixel_element(pix)
            (out_dir / f"IM{number:04d}.dcm").write_bytes(blob)
            uids.append(sop)
    return uids


def _window(
    stacks: list[NDArray[np.float32]], headers: dict[str, Any], is_ct: bool
) -> tuple[float, float]:
    """A series-wide display window: fixed brain/bone windows for CT, percentiles for MR."""
    if is_ct:
        kernel = str(headers.get("ConvolutionKernel", ""))
        if "LOCALIZER" in headers.get("ImageType", []):
            return 2048.0, 4096.0
        bony = any(b in kernel.upper() for b in ("BONE", "H60", "H70", "HR64", "J70", "YC", "YD"))
        bony = bony or kernel in ("FC30", "FC31", "FC35", "FC81", "EDGE", "D")
        return (700.0, 3000.0) if bony else (40.0, 80.0)
    sample = np.concatenate([s[:, ::4, ::4].ravel() for s in stacks])
    hi = float(np.percentile(sample, 99.5)) if sample.size else 1.0
    return round(hi / 2, 1), round(max(hi, 1.0), 1)
