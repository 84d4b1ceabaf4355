"""radpipe's C-MOVE Storage SCP accepts only the PACS it retrieves from, calling it by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]

from radpipe.dicom.errors import PacsError
from radpipe.dicom.instances import StudySink
from radpipe.dicom.scp import StorageReceiver
from tests.fixtures.dicom_studies import TinyStudy, make_study


@pytest.fixture
def study(tmp_path: Path) -> TinyStudy:
    return make_study(tmp_path / "study", accession="SCP1", series=(("T1", 1),))


@pytest.fixture
def receiving(study: TinyStudy) -> Iterator[tuple[StorageReceiver, dict[str, bytes]]]:
    """The Storage SCP as RADPIPE on a free loopback port, retrieving from PACS1."""
    written: dict[str, bytes] = {}
    sink = StudySink(written.__setitem__, study.study_uid)
    with StorageReceiver.serving(
        "127.0.0.1", 0, "RADPIPE", study.study_uid, sink, calling_ae="PACS1"
    ) as receiver:
        yield receiver, written


def _store(port: int, calling: str, called: str, path: Path) -> int | None:
    """C-STORE one file; the status, or None when the association is refused."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(MRImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(dcmread(path))
        return int(status.Status)
    finally:
        assoc.release()


def test_store_from_unknown_calling_ae_is_rejected(
    receiving: tuple[StorageReceiver, dict[str, bytes]], study: TinyStudy
) -> None:
    receiver, written = receiving
    assert _store(receiver.port, "INTRUDER", "RADPIPE", study.files[0]) is None
    assert _store(receiver.port, "PACS1", "SOMEONE", study.files[0]) is None
    assert not written
    assert _store(receiver.port, "PACS1", "RADPIPE", study.files[0]) == 0x0000
    assert len(written) == 1


def test_shared_listener_accepts_each_retrieving_pacs_while_it_retrieves(
    receiving: tuple[StorageReceiver, dict[str, bytes]], tmp_path: Path
) -> None:
    receiver, _ = receiving
    other = make_study(tmp_path / "other", accession="SCP2", series=(("T1", 1),))
    written: dict[str, bytes] = {}
    sink = StudySink(written.__setitem__, other.study_uid)
    bind, port = receiver._key
    with StorageReceiver.serving(
        bind, port, "RADPIPE", other.study_uid, sink, calling_ae="PACS2"
    ) as shared:
        assert shared is receiver
        assert _store(receiver.port, "PACS2", "RADPIPE", other.files[0]) == 0x0000
    assert len(written) == 1
    assert _store(receiver.port, "PACS2", "RADPIPE", other.files[0]) is None
    clash = StorageReceiver.serving(bind, port, "OTHER", other.study_uid, sink, calling_ae="X")
    with pytest.raises(PacsError, match="move_destination"), clash:
        pass
