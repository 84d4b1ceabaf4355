"""radpipe's DIMSE client against dcmtk, an independent second implementation."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydicom import dcmread

from radpipe.dicom.client import open_client
from radpipe.dicom.instances import StudySink
from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.retrieve import StudyRetriever
from tests.fixtures.dicom_studies import make_study
from tests.fixtures.pacs import RADPIPE_AET, DcmQrScp, StoreScp, wait_for_files

pytestmark = pytest.mark.integration


def _node(server: DcmQrScp, retrieve: str) -> PacsNode:
    from radpipe.config import PacsNodeConfig

    return PacsNode(
        "dcmtk",
        PacsNodeConfig(
            ae_title=server.aet,
            port=server.port,
            calling_ae=RADPIPE_AET,
            retrieve=retrieve,  # type: ignore[arg-type]
            move_destination=RADPIPE_AET,
            storage_port=server.move_destinations[RADPIPE_AET],
            storage_bind="127.0.0.1",
            timeout_seconds=10,
            retry_backoff_seconds=0.1,
        ),
    )


def test_store_find_get_move_with_dcmqrscp(dcmqrscp: DcmQrScp, tmp_path: Path) -> None:
    accession = "D" + uuid.uuid4().hex[:8].upper()
    study = make_study(tmp_path / "s", accession=accession, series=(("T1", 3), ("T2", 2)))
    client = open_client(_node(dcmqrscp, "c-get"))
    assert client.echo() < 5
    report = client.store(study.files)
    assert report.sent == 5 and not report.failed
    studies = client.find_studies(accession=accession)
    assert [s.study_instance_uid for s in studies] == [study.study_uid]
    series = client.find_series(study.study_uid)
    assert sorted(s.series_instance_uid for s in series) == sorted(study.series_uids)
    for method in ("c-get", "c-move"):
        client = open_client(_node(dcmqrscp, method))
        got: dict[str, bytes] = {}
        sink = StudySink(got.__setitem__, study.study_uid)
        outcomes = StudyRetriever(client, backoff_seconds=0.1).retrieve(
            study.study_uid, series, sink
        )
        assert sink.instance_count == 5, method
        assert all(o.complete for o in outcomes)
        path = study.files[0]
        key = f"instances/{study.series_uids[0]}/{path.stem}.dcm"
        from io import BytesIO

        assert dcmread(BytesIO(got[key])).PixelData == dcmread(path).PixelData


def test_store_to_storescp(storescp: StoreScp, tmp_path: Path) -> None:
    from radpipe.config import PacsNodeConfig

    study = make_study(tmp_path / "s", accession="OUT1", series=(("SR", 2),))
    node = PacsNode("out", PacsNodeConfig(ae_title=storescp.aet, port=storescp.port))
    report = open_client(node).store(study.files)
    assert report.sent == 2
    received = wait_for_files(storescp, 2)
    assert sorted(dcmread(p).SOPInstanceUID for p in received) == sorted(
        p.stem for p in study.files
    )
