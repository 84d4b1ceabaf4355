"""Fuzz targets for the header-feature extraction and the DICOM readers (hypothesis).

Shared by the short seeded run in tests/unit/test_fuzz_readers.py and the time-bounded run
in tests/bench/bench_fuzz.py. Each target states what the code under test may do with
hostile input: return a value, or raise its own documented error (``CorruptInstance``,
``UnusableSeries``); anything else escaping is a bug a worker would die of.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset

from radpipe.dicom.instances import CorruptInstance, inspect_instance
from radpipe.series.features import FEATURE_NAMES, series_features, study_features
from radpipe.series.headers import HEADER_KEYWORDS, SeriesHeader

#: Values of the wrong type, size and alphabet for any header keyword.
HOSTILE_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
    | st.binary(max_size=40)
    | st.sampled_from(["", "\\", "\\\\", "1\\2\\x", "nan", "inf", "-0", "1e999", "<script>"]),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=12,
)

HEADER_MAPPINGS: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from(sorted(HEADER_KEYWORDS)), HOSTILE_VALUES, max_size=len(HEADER_KEYWORDS)
)


def check_features(mappings: list[dict[str, Any]], counts: list[int | None]) -> None:
    """Header mappings of one study → feature rows of the right shape, no exception."""
    headers = [
        SeriesHeader.from_mapping(m, counts[i % len(counts)] if counts else None)
        for i, m in enumerate(mappings)
    ]
    rows = study_features(headers)
    assert len(rows) == len(headers)
    for header, row in zip(headers, rows, strict=True):
        assert len(row) == len(FEATURE_NAMES)
        for value in row[:17]:  # the numeric columns: floats (NaN = missing), never inf
            assert isinstance(value, float) and not math.isinf(value)
        assert all(isinstance(v, str) for v in row[17:])
        _ = (header.orientation, header.is_3d, header.is_original, header.description)
        assert len(series_features(header)) == len(FEATURE_NAMES)


def base_instance() -> bytes:
    """One small valid MR instance (Part 10 bytes) to mutate."""
    from tests.fixtures.dicom_studies import make_instance

    ds = make_instance(
        "1.2.3", "1.2.3.4", accession="F1", modality="MR", series_number=1,
        description="Ax T1", number=1, rows=8,
    )  # fmt: skip
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@st.composite
def mutated_instances(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` truncated, with bytes flipped, inserted or deleted."""
    data = bytearray(base)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "length"]))
        if not data:
            break
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if action == "flip":
            data[at] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=32))]
        elif action == "truncate":
            del data[at:]
        else:  # a huge or odd element length: the classic reader killer
            data[at : at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\xfe\xff\xff\x7f"]))
    return bytes(data)


def check_inspect(data: bytes) -> None:
    """``inspect_instance`` returns a header or raises CorruptInstance, nothing else."""
    try:
        header = inspect_instance(data)
    except CorruptInstance as bad:
        assert bad.reason
        return
    assert header.sop_instance_uid and header.series_instance_uid and header.study_instance_uid
    SeriesHeader.from_dataset(header.dataset, 1)
    header.series_fields()


def check_dataset_header(data: bytes) -> None:
    """The classify stage's header read: pydicom's own errors are caught by the stage;
    what it parses must then go through SeriesHeader and the features without error."""
    try:
        ds: Dataset = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception:  # read_series_header catches these and falls back to the manifest
        return
    header = SeriesHeader.from_dataset(ds, 3)
    check_features([dict(header.attrs)], [3])


def check_geometry(folder: Path, files: list[bytes]) -> None:
    """stack_geometry over hostile files: a StackGeometry or UnusableSeries."""
    from radpipe.preprocessing.dicom_io import (
        UnusableSeries,
        dicom_files,
        read_headers,
        stack_geometry,
    )

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for index, data in enumerate(files):
        (folder / f"{index:03d}.dcm").write_bytes(data)
    try:
        headers = read_headers(dicom_files(folder))
    except Exception as err:  # report what escaped
        raise AssertionError(f"read_headers let {type(err).__name__} escape: {err}") from err
    with contextlib.suppress(UnusableSeries):
        stack_geometry(headers, "t1")


TARGETS: dict[str, Callable[..., None]] = {
    "features": check_features,
    "inspect_instance": check_inspect,
    "dataset_header": check_dataset_header,
}
