"""Received instances: check each one as it arrives and write it to the store at once.

Nothing here holds a study in memory: an instance's bytes are inspected (header parsed,
pixel data length checked), written through a writer callback (the artifact store in the
fetch stage, a directory for ``radpipe pacs get``) and dropped. What is kept is a small
record per instance, enough for the study manifest and for resuming a retrieve.

A *corrupt* instance (unreadable, missing its UIDs, or with truncated pixel data) is not
an error of the transfer: retrying would bring the same bytes again. It is written under
``corrupt/`` for inspection, counted as received, and reported per series.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

#: Series-level header fields copied into the manifest (the series classifier reads them).
SERIES_FIELDS: tuple[str, ...] = (
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "ProtocolName",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "MagneticFieldStrength",
    "ImageType",
    "SOPClassUID",
    "ScanningSequence",
    "SequenceVariant",
    "ScanOptions",
    "SequenceName",
    "MRAcquisitionType",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "ContrastBolusAgent",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelSpacing",
    "Rows",
    "Columns",
    "ImageOrientationPatient",
    "PatientPosition",
    "KVP",
    "ConvolutionKernel",
    "BitsAllocated",
    "PhotometricInterpretation",
)

#: Writes one object (relative name, bytes); returns anything (the store's ObjectInfo).
Writer = Callable[[str, bytes], Any]


class CorruptInstance(ValueError):
    """The bytes received are not a usable DICOM instance; the message says why."""

    def __init__(
        self,
        reason: str,
        sop_instance_uid: str = "",
        series_instance_uid: str = "",
        fields: dict[str, Any] | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.sop_instance_uid = sop_instance_uid
        self.series_instance_uid = series_instance_uid
        #: The series fields, when the header could be read (names the series in reports).
        self.fields = fields or {}


@dataclass(frozen=True)
class InstanceHeader:
    """What radpipe keeps of one received instance."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    instance_number: int | None
    image_position: tuple[float, ...] | None
    dataset: Dataset = field(repr=False, compare=False)
    #: A short hash of the patient (PatientID, else PatientName): never the PHI itself.
    patient_key: str = ""

    def series_fields(self) -> dict[str, Any]:
        """The :data:`SERIES_FIELDS` present in the instance, as JSON values."""
        ds = self.dataset
        return {name: jsonable(ds.get(name)) for name in SERIES_FIELDS if name in ds}


def jsonable(value: Any) -> Any:
    """A DICOM element value as plain JSON (numbers, strings, lists)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):  # also pydicom's IS
        return int(value)
    if isinstance(value, float) or type(value).__name__ == "DSdecimal":  # also DSfloat
        return float(value)
    if isinstance(value, str):
        return str(value)
    if type(value).__name__ == "PersonName":
        return str(value)
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [jsonable(v) for v in value]
    return str(value)


def _expected_pixel_bytes(ds: Dataset) -> int | None:
    bits = ds.get("BitsAllocated")
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if not bits or not rows or not cols or int(bits) % 8:
        return None
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    return int(rows) * int(cols) * samples * frames * (int(bits) // 8)


_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _fields(ds: Dataset) -> dict[str, Any]:
    try:
        return {name: jsonable(ds.get(name)) for name in SERIES_FIELDS if name in ds}
    except Exception:  # a malformed element: the series goes unnamed
        return {}


def patient_key(ds: Dataset) -> str:
    """A short, non-reversible tag of the instance's patient (to spot mixed studies)."""
    ident = str(ds.get("PatientID", "") or "").strip() or str(ds.get("PatientName", "") or "")
    return hashlib.sha256(ident.strip().encode("utf-8", "replace")).hexdigest()[:12]


def inspect_instance(data: bytes) -> InstanceHeader:
    """Parse a Part-10 instance and check it is usable; raise :class:`CorruptInstance`."""
    try:
        ds = dcmread(BytesIO(data))
    except Exception as err:  # pydicom raises many types on malformed input
        raise CorruptInstance(f"not a readable DICOM file ({type(err).__name__}: {err})") from err
    try:
        sop = str(ds.get("SOPInstanceUID", "") or "")
        series = str(ds.get("SeriesInstanceUID", "") or "")
        study = str(ds.get("StudyInstanceUID", "") or "")
        missing = [
            name
            for name, value in (
                ("SOPInstanceUID", sop),
                ("SeriesInstanceUID", series),
                ("StudyInstanceUID", study),
            )
            if not value
        ]
        if missing:
            raise CorruptInstance(f"missing {', '.join(missing)}", sop, series)
        if ds.get("Rows") and ds.get("Columns") and not any(n in ds for n in _PIXEL_ELEMENTS):
            raise CorruptInstance("an image without pixel data", sop, series, _fields(ds))
        meta = getattr(ds, "file_meta", None)
        tsyntax = UID(str(meta.get("TransferSyntaxUID", "") if meta is not None else ""))
        if "PixelData" in ds and tsyntax and not tsyntax.is_compressed:
            expected = _expected_pixel_bytes(ds)
            actual = len(ds.PixelData or b"")
            if expected is not None and actual < expected:
                raise CorruptInstance(
                    f"pixel data truncated ({actual} of {expected} bytes)", sop, series, _fields(ds)
                )
        number = ds.get("InstanceNumber")
        position = ds.get("ImagePositionPatient")
        return InstanceHeader(
            study_instance_uid=study,
            series_instance_uid=series,
            sop_instance_uid=sop,
            sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
            transfer_syntax_uid=str(tsyntax),
            instance_number=int(number) if number not in (None, "") else None,
            image_position=tuple(float(v) for v in position) if position else None,
            dataset=ds,
            patient_key=patient_key(ds),
        )
    except CorruptInstance:
        raise
    except Exception as err:  # a malformed element surfaces only when its value is read
        raise CorruptInstance(f"malformed header ({type(err).__name__}: {err})") from err


@dataclass(frozen=True)
class StoredInstance:
    """One instance written to the store."""

    key: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    image_position: tuple[float, ...] | None
    size: int


@dataclass(frozen=True)
class CorruptRecord:
    """One corrupt instance: where its bytes went and why it is unusable."""

    key: str
    sop_instance_uid: str
    reason: str


@dataclass
class SeriesState:
    """What arrived of one series."""

    instances: dict[str, StoredInstance] = field(default_factory=dict)
    corrupt: dict[str, CorruptRecord] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    def received(self) -> set[str]:
        """SOP Instance UIDs that arrived, usable or not (a retry will not change them)."""
        return set(self.instances) | set(self.corrupt)


class StudySink:
    """Receives the instances of one study from any number of threads.

    ``receive(data)`` inspects the bytes, writes them under
    ``instances/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (or ``corrupt/...``) and returns
    the DICOM status to answer the sender with. An instance that arrives twice is written
    once. ``on_instance`` is called after each new instance (progress bars).
    """

    def __init__(
        self,
        write: Writer,
        study_instance_uid: str | None = None,
        *,
        on_instance: Callable[[int], None] | None = None,
    ) -> None:
        self._write = write
        self.study_instance_uid = study_instance_uid
        self._on_instance = on_instance
        self._lock = threading.Lock()
        self.series: dict[str, SeriesState] = {}
        self.bytes_received = 0
        self.duplicates = 0
        self.foreign = 0
        self._corrupt_serial = 0
        self._writing: set[str] = set()
        #: patient key -> series UIDs with instances of that patient (see :func:`patient_key`)
        self.patients: dict[str, set[str]] = {}

    # -- receiving -----------------------------------------------------------------------

    def receive(self, data: bytes) -> int:
        """Handle one instance's Part-10 bytes; returns a C-STORE status (0 = success)."""
        try:
            header = inspect_instance(data)
        except CorruptInstance as bad:
            self.keep_corrupt(data, bad)
            return 0x0000
        return self.accept(header, data)

    def accept(self, header: InstanceHeader, data: bytes) -> int:
        """Write an already inspected instance; returns a C-STORE status."""
        if self.study_instance_uid and header.study_instance_uid != self.study_instance_uid:
            with self._lock:
                self.foreign += 1
            return 0x0124  # Refused: not authorized — we did not ask for this study
        sop = header.sop_instance_uid
        with self._lock:
            self.patients.setdefault(header.patient_key, set()).add(header.series_instance_uid)
            state = self.series.setdefault(header.series_instance_uid, SeriesState())
            if sop in state.instances or sop in self._writing:
                self.duplicates += 1
                return 0x0000
            self._writing.add(sop)  # a copy arriving meanwhile on another association waits out
        key = f"instances/{header.series_instance_uid}/{sop}.dcm"
        try:
            self._write(key, data)
        except BaseException:
            with self._lock:
                self._writing.discard(sop)
            raise
        record = StoredInstance(
            key=key,
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid,
            instance_number=header.instance_number,
            image_position=header.image_position,
            size=len(data),
        )
        fields = header.series_fields() if not state.fields else None
        with self._lock:
            if fields and not state.fields:
                state.fields = fields
            state.instances[sop] = record
            self._writing.discard(sop)
            state.corrupt.pop(sop, None)
            self.bytes_received += len(data)
            total = self.instance_count
        if self._on_instance is not None:
            self._on_instance(total)
        return 0x0000

    def keep_corrupt(self, data: bytes, bad: CorruptInstance) -> None:
        """Write a corrupt instance under ``corrupt/`` and record why it is unusable."""
        series_uid = bad.series_instance_uid or "unknown-series"
        with self._lock:
            self._corrupt_serial += 1
            name = bad.sop_instance_uid or f"unidentified-{self._corrupt_serial}"
            state = self.series.setdefault(series_uid, SeriesState())
            if name in state.corrupt:
                return
            if bad.fields and not state.fields:
                state.fields = dict(bad.fields)
        key = f"corrupt/{series_uid}/{name}.dcm"
        self._write(key, data)
        with self._lock:
            state.corrupt[name] = CorruptRecord(key, bad.sop_instance_uid, bad.reason)
            self.bytes_received += len(data)

    # -- reading back ----------------------------------------------------------------------

    @property
    def instance_count(self) -> int:
        """Usable instances received so far."""
        return sum(len(s.instances) for s in self.series.values())

    @property
    def corrupt_count(self) -> int:
        """Corrupt instances received so far."""
        return sum(len(s.corrupt) for s in self.series.values())

    def received(self, series_instance_uid: str) -> set[str]:
        """SOP Instance UIDs of one series that arrived (usable or corrupt)."""
        with self._lock:
            state = self.series.get(series_instance_uid)
            return state.received() if state else set()
