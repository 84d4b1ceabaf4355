"""radpipe's PACS client against a real Orthanc (DIMSE and DICOMweb) on loopback."""

from __future__ import annotations

import threading
import uuid
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread

from radpipe.dicom.client import open_client
from radpipe.dicom.errors import AssociationRejected, PacsUnavailable, RetrieveIncomplete
from radpipe.dicom.instances import StudySink
from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.retrieve import StudyRetriever
from tests.fixtures.dicom_studies import TinyStudy, add_odd_instance, make_study
from tests.fixtures.pacs import OrthancServer

pytestmark = pytest.mark.integration


def _accession() -> str:
    return "T" + uuid.uuid4().hex[:10].upper()


@pytest.fixture(scope="module")
def loaded(orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    """A three-series study in the session's Orthanc."""
    study = make_study(
        tmp_path_factory.mktemp("study"),
        accession=_accession(),
        series=(("T1", 5), ("FLAIR", 4), ("T2", 3)),
    )
    orthanc.upload(study.files)
    return study


def _retrieve(client: object, study: TinyStudy, **kw: object) -> tuple[StudySink, dict[str, bytes]]:
    got: dict[str, bytes] = {}
    sink = StudySink(got.__setitem__, study.study_uid)
    series = client.find_series(study.study_uid)  # type: ignore[attr-defined]
    StudyRetriever(client, backoff_seconds=0.1, **kw).retrieve(  # type: ignore[arg-type]
        study.study_uid, series, sink
    )
    return sink, got


@pytest.mark.parametrize("transport", ["dimse", "dicomweb"])
def test_echo(orthanc: OrthancServer, transport: str) -> None:
    cfg = orthanc.dimse_node() if transport == "dimse" else orthanc.dicomweb_node()
    assert open_client(PacsNode("o", cfg)).echo() < 5


@pytest.mark.parametrize("transport", ["dimse", "dicomweb"])
def test_find_by_accession_at_study_and_series_level(
    orthanc: OrthancServer, loaded: TinyStudy, transport: str
) -> None:
    cfg = orthanc.dimse_node() if transport == "dimse" else orthanc.dicomweb_node()
    client = open_client(PacsNode("o", cfg))
    studies = client.find_studies(accession=loaded.accession)
    assert [s.study_instance_uid for s in studies] == [loaded.study_uid]
    assert studies[0].modalities == ("MR",)
    assert studies[0].num_instances == 12
    series = client.find_series(loaded.study_uid)
    assert [(s.series_number, s.series_description, s.num_instances) for s in series] == [
        (1, "T1", 5),
        (2, "FLAIR", 4),
        (3, "T2", 3),
    ]
    assert len(client.find_instances(loaded.study_uid, series[0].series_instance_uid)) == 5
    assert client.find_studies(accession="NO-SUCH-ACC") == []


@pytest.mark.parametrize(
    ("transport", "method"), [("dimse", "c-get"), ("dimse", "c-move"), ("dicomweb", "wado")]
)
def test_retrieve_is_byte_exact_and_parallel(
    orthanc: OrthancServer, loaded: TinyStudy, transport: str, method: str
) -> None:
    if transport == "dimse":
        cfg = orthanc.dimse_node(retrieve=method, max_associations=3)
    else:
        cfg = orthanc.dicomweb_node(max_associations=3)
    sink, got = _retrieve(open_client(PacsNode("o", cfg)), loaded, parallel=3)
    assert sink.instance_count == loaded.instance_count == len(got)
    for series_uid, files in loaded.by_series.items():
        for path in files:
            received = dcmread(BytesIO(got[f"instances/{series_uid}/{path.stem}.dcm"]))
            original = dcmread(path)
            assert received == original  # every element, pixel data included
            assert received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


def test_cget_missing_instance_fails_naming_the_series(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    """An instance the PACS cannot send keeps its series short: retried, then reported."""
    study = make_study(tmp_path, accession=_accession(), series=(("T1", 4), ("T2", 2)))
    add_odd_instance(study, tmp_path, series_index=0)
    orthanc.upload(study.files)
    client = open_client(PacsNode("o", orthanc.dimse_node(retrieve="c-get")))
    with pytest.raises(RetrieveIncomplete) as info:
        _retrieve(client, study)
    err = info.value
    assert err.series_instance_uid == study.series_uids[0]
    assert (err.expected, err.received) == (5, 4)
    assert "series 1 'T1'" in str(err) and "4 of 5 instances" in str(err)


def test_wrong_called_ae_title_is_a_permanent_rejection(orthanc: OrthancServer) -> None:
    client = open_client(PacsNode("o", orthanc.dimse_node(ae_title="NOT-ORTHANC")))
    with pytest.raises(AssociationRejected) as info:
        client.echo()
    assert not info.value.retryable
    assert "ae_title" in str(info.value) and "NOT-ORTHANC" in str(info.value)


def test_stopped_pacs_is_unavailable(tmp_path: Path) -> None:
    server = OrthancServer(tmp_path / "never-started")
    for cfg in (server.dimse_node(), server.dicomweb_node()):
        with pytest.raises(PacsUnavailable) as info:
            open_client(PacsNode("gone", cfg)).find_studies(accession="X")
        assert info.value.retryable
        assert "gone" in str(info.value)


@pytest.mark.parametrize("transport", ["dimse", "dicomweb"])
def test_store_out(orthanc: OrthancServer, tmp_path: Path, transport: str) -> None:
    study = make_study(tmp_path, accession=_accession(), series=(("SEG", 3),))
    cfg = orthanc.dimse_node() if transport == "dimse" else orthanc.dicomweb_node()
    report = open_client(PacsNode("o", cfg)).store(study.files)
    assert report.sent == 3 and not report.failed
    query = {"Level": "Instance", "Query": {"AccessionNumber": study.accession}}
    found = orthanc.post_json("/tools/find", query)
    assert len(found) == 3


def test_mid_transfer_outage_resumes_without_refetching(
    own_orthanc: OrthancServer, tmp_path: Path
) -> None:
    """Orthanc is killed while a series streams in and comes back: only the rest is fetched."""
    study = make_study(tmp_path, accession=_accession(), series=(("T1", 40),))
    own_orthanc.upload(study.files)
    client = open_client(PacsNode("o", own_orthanc.dimse_node(retrieve="c-get")))
    writes: dict[str, int] = {}
    restarted = threading.Event()

    def write(key: str, data: bytes) -> None:
        writes[key] = writes.get(key, 0) + 1
        if len(writes) == 10 and not restarted.is_set():
            own_orthanc.kill()  # the link drops under the transfer

            def come_back() -> None:
                own_orthanc.start()
                restarted.set()

            threading.Thread(target=come_back).start()

    sink = StudySink(write, study.study_uid)
    series = client.find_series(study.study_uid)
    StudyRetriever(client, attempts=6, backoff_seconds=0.5).retrieve(study.study_uid, series, sink)
    assert restarted.is_set()
    assert sink.instance_count == 40
    assert sink.duplicates == 0  # the PACS never re-sent what had arrived
    assert all(n == 1 for n in writes.values())


def test_dicomweb_basic_auth(tmp_path: Path) -> None:
    server = OrthancServer(tmp_path / "auth", users={"radpipe": "s3cret"})
    server.start()
    try:
        good = open_client(PacsNode("web", server.dicomweb_node()))
        assert good.find_studies(accession="NONE") == []
        bad = open_client(PacsNode("web", server.dicomweb_node(password="wrong")))
        with pytest.raises(AssociationRejected, match="HTTP 401") as info:
            bad.echo()
        assert "username/password" in str(info.value)
    finally:
        server.stop()
