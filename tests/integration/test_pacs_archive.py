"""The embedded archive (`radpipe pacs serve DIR`, pynetdicom's qrscp) as a PACS."""

from __future__ import annotations

from pathlib import Path

import pytest

from radpipe.dicom.client import open_client
from radpipe.dicom.instances import StudySink
from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.retrieve import StudyRetriever
from tests.fixtures.dicom_studies import make_study
from tests.fixtures.pacs import EmbeddedArchive

pytestmark = pytest.mark.integration


def test_serve_folder_find_get_move_store(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    study = make_study(folder / "study", accession="ARCH1", series=(("T1", 3), ("T2", 2)))
    (folder / "notes.txt").write_text("not DICOM: skipped when indexing")
    archive = EmbeddedArchive(folder)
    archive.start()
    try:
        client = open_client(PacsNode("local", archive.node(retrieve="c-get")))
        assert client.echo() < 5
        [found] = client.find_studies(accession="ARCH1")
        assert found.study_instance_uid == study.study_uid
        series = client.find_series(study.study_uid)
        assert sorted(s.series_instance_uid for s in series) == sorted(study.series_uids)
        for method in ("c-get", "c-move"):
            client = open_client(PacsNode("local", archive.node(retrieve=method)))
            sink = StudySink(lambda key, data: None, study.study_uid)
            outcomes = StudyRetriever(client, backoff_seconds=0.1).retrieve(
                study.study_uid, series, sink
            )
            assert sink.instance_count == 5, method
            assert [o.expected for o in outcomes] == [3, 2]  # counted by listing instances
        # C-STORE into the archive, then find it there
        other = make_study(tmp_path / "new", accession="ARCH2", series=(("SEG", 2),))
        assert client.store(other.files).sent == 2
        [stored] = client.find_studies(accession="ARCH2")
        assert stored.study_instance_uid == other.study_uid
        assert len(list((folder / ".qrscp" / "instances").iterdir())) == 2
    finally:
        archive.stop()
