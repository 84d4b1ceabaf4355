"""A short, seeded fuzz run of the header features and the DICOM readers (hypothesis).

The same targets run for minutes in tests/bench/bench_fuzz.py. Seeded (derandomized) so a
failure here reproduces; hypothesis prints the shrunk input that broke the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import (
    HEADER_MAPPINGS,
    HOSTILE_VALUES,
    base_instance,
    check_dataset_header,
    check_features,
    check_geometry,
    check_inspect,
    mutated_instances,
)

BASE = base_instance()
SEEDED = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SEEDED
@given(
    st.lists(HEADER_MAPPINGS, min_size=1, max_size=5),
    st.lists(st.none() | st.integers(min_value=-5, max_value=10**9), max_size=3),
)
def test_header_features_take_any_values(
    mappings: list[dict[str, Any]], counts: list[int | None]
) -> None:
    check_features(mappings, counts)


@SEEDED
@given(mutated_instances(BASE))
def test_inspect_instance_only_raises_corrupt_instance(data: bytes) -> None:
    check_inspect(data)


@SEEDED
@given(mutated_instances(BASE))
def test_classify_header_read_survives_damaged_files(data: bytes) -> None:
    check_dataset_header(data)


@st.composite
def hostile_slices(draw: st.DrawFn) -> list[bytes]:
    """A few instances whose geometry tags carry hostile values."""
    from io import BytesIO

    from pydicom import dcmread

    out = []
    for index in range(draw(st.integers(min_value=18, max_value=24))):
        ds = dcmread(BytesIO(BASE))
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(index)]
        for keyword in draw(
            st.lists(
                st.sampled_from(
                    ["ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows"]
                ),
                max_size=2,
            )
        ):
            value = draw(HOSTILE_VALUES)
            try:
                setattr(ds, keyword, value)
                buffer = BytesIO()
                ds.save_as(buffer, enforce_file_format=True)
            except Exception:  # pydicom refuses to write it: such a file cannot arrive
                ds = dcmread(BytesIO(BASE))
                continue
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


@pytest.fixture(scope="module")
def geometry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-geometry")


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(hostile_slices())
def test_stack_geometry_refuses_hostile_geometry_clearly(
    geometry_dir: Path, files: list[bytes]
) -> None:
    check_geometry(geometry_dir, files)
