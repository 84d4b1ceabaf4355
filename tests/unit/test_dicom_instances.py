"""Checking received instances and writing them as they arrive (radpipe.dicom.instances)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radpipe.dicom.instances import CorruptInstance, StudySink, inspect_instance, jsonable
from tests.fixtures.dicom_studies import make_study, truncate_pixels


@pytest.fixture
def study(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_study(tmp_path / "study", accession="U1", series=(("T1", 2), ("T2", 1)))


def test_inspect_reads_uids_and_position(study) -> None:  # type: ignore[no-untyped-def]
    header = inspect_instance(study.files[1].read_bytes())
    assert header.study_instance_uid == study.study_uid
    assert header.series_instance_uid == study.series_uids[0]
    assert header.instance_number == 2
    assert header.image_position == (0.0, 0.0, 2.0)
    fields = header.series_fields()
    assert fields["SeriesDescription"] == "T1"
    assert fields["Rows"] == 16 and isinstance(fields["SeriesNumber"], int)
    assert "PatientName" not in fields


def test_truncated_pixel_data_is_corrupt(study) -> None:  # type: ignore[no-untyped-def]
    truncate_pixels(study.files[0])
    with pytest.raises(CorruptInstance, match="pixel data truncated") as info:
        inspect_instance(study.files[0].read_bytes())
    assert info.value.series_instance_uid == study.series_uids[0]


def test_garbage_is_corrupt() -> None:
    with pytest.raises(CorruptInstance, match="not a readable DICOM file"):
        inspect_instance(b"\x00" * 10)


def test_sink_writes_each_instance_once_and_keeps_corrupt_apart(study) -> None:  # type: ignore[no-untyped-def]
    written: dict[str, int] = {}
    counts: list[int] = []

    def write(key: str, data: bytes) -> None:
        written[key] = written.get(key, 0) + 1

    sink = StudySink(write, study.study_uid, on_instance=counts.append)
    truncate_pixels(study.files[2])
    for path in study.files:
        assert sink.receive(path.read_bytes()) == 0x0000
    assert sink.receive(study.files[0].read_bytes()) == 0x0000  # sent twice
    assert sink.instance_count == 2
    assert sink.corrupt_count == 1
    assert sink.duplicates == 1
    assert all(n == 1 for n in written.values())
    assert sorted(k.split("/")[0] for k in written) == ["corrupt", "instances", "instances"]
    assert counts == [1, 2]
    t2 = study.series_uids[1]
    assert sink.received(t2) == {study.files[2].stem}  # corrupt still counts as arrived


def test_sink_refuses_other_studies(tmp_path: Path, study) -> None:  # type: ignore[no-untyped-def]
    other = make_study(tmp_path / "other", accession="U2", series=(("X", 1),))
    sink = StudySink(lambda k, d: None, study.study_uid)
    assert sink.receive(other.files[0].read_bytes()) == 0x0124
    assert sink.foreign == 1 and sink.instance_count == 0


def test_jsonable_turns_dicom_values_into_plain_json() -> None:
    from pydicom.multival import MultiValue
    from pydicom.valuerep import IS, DSfloat

    assert jsonable(IS("3")) == 3 and type(jsonable(IS("3"))) is int
    assert type(jsonable(DSfloat("1.5"))) is float
    assert jsonable(MultiValue(DSfloat, ["1", "2"])) == [1.0, 2.0]
    assert jsonable(b"\x00") is None
