"""Deliver against real peers: Orthanc (DIMSE and DICOMweb), a node that is down, a node
that refuses a SOP class, an SMTP server; then the round trip store → C-FIND → retrieve →
parse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest

from radpipe.api.apps import load_apps
from radpipe.api.models import AnalysisJob, DeliverySpec
from radpipe.config import PacsNodeConfig, Settings
from radpipe.dicom.client import open_client
from radpipe.dicom.nodes import PacsNode
from radpipe.pipeline.contract import StageResult
from radpipe.pipeline.executor import execute_stage
from radpipe.results.synthetic import cached_study, load_case, seed_upstream
from radpipe.store.local import LocalStore
from tests.fixtures.network import free_port
from tests.fixtures.pacs import OrthancServer
from tests.fixtures.smtp import SmtpSink
from tests.unit.test_report import make_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStore, AnalysisJob, Path]:
    """A job whose report stage has made its SEG, SR and PDF (shared by the tests)."""
    root = tmp_path_factory.mktemp("deliver")
    case = load_case(cached_study("mr-glioma", 1), with_brain=False)
    store = LocalStore(root / "store")
    job = make_job("rp-deliver1", case, "glioma")
    seed_upstream(store, job.uid, case)
    settings = Settings(data_dir=root / "data")
    app = load_apps(None)["glioma"].spec
    for stage in ("postprocess", "report"):
        assert execute_stage(job, app, stage, store, settings).result.complete
    return store, job, root


def deliver(
    made: tuple[LocalStore, AnalysisJob, Path],
    nodes: dict[str, PacsNodeConfig],
    *,
    email: list[str] | None = None,
    smtp: dict[str, Any] | None = None,
) -> StageResult:
    store, job, root = made
    job = job.model_copy(deep=True)
    job.spec.delivery = DeliverySpec(pacs=list(nodes), email=email or [])
    app = load_apps(None)["glioma"].spec.model_copy(deep=True)
    app.stage("deliver").settings.update({"attempts": 2, **({"smtp": smtp} if smtp else {})})
    settings = Settings(data_dir=root / "data", pacs=nodes)
    store.delete_prefix(f"jobs/{job.uid}/deliver/")
    return execute_stage(job, app, "deliver", store, settings).result


def objects(made: tuple[LocalStore, AnalysisJob, Path]) -> list[dict[str, str]]:
    store, job, _ = made
    result = store.get_json(f"jobs/{job.uid}/report/result.json")
    return list(result["data"]["dicomObjects"])


def test_deliver_round_trip_and_resend_without_duplicates(
    made: tuple[LocalStore, AnalysisJob, Path], orthanc: OrthancServer, tmp_path: Path
) -> None:
    store, job, _ = made
    store.delete(f"jobs/{job.uid}/delivery.json")
    result = deliver(made, {"pacs": orthanc.dimse_node()})
    assert result.state == "succeeded", result.message
    assert result.data["results"]["deliveredTo"] == ["pacs"]
    sent = objects(made)
    study = sent[0]["studyInstanceUID"]
    client = open_client(PacsNode("pacs", orthanc.dimse_node()))
    for obj in sent:  # C-FIND finds every new SOP Instance UID
        assert obj["sopInstanceUID"] in client.find_instances(study, obj["seriesInstanceUID"])
    before = len(orthanc.get("/instances"))
    # a resend (e.g. after a failure elsewhere) sends nothing twice and keeps the UIDs
    store.delete(f"jobs/{job.uid}/delivery.json")
    again = deliver(made, {"pacs": orthanc.dimse_node()})
    assert again.state == "succeeded"
    assert again.data["delivery"]["sent"]["pacs"] == 0
    assert len(orthanc.get("/instances")) == before
    # retrieve what Orthanc holds and parse it back
    for obj in sent:
        ids = orthanc._request("POST", "/tools/lookup", obj["sopInstanceUID"].encode())
        data = orthanc_file(orthanc, ids[0]["ID"])
        path = tmp_path / f"{obj['kind']}.dcm"
        path.write_bytes(data)
        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == obj["sopInstanceUID"]
        assert ds.StudyInstanceUID == study
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert seg.number_of_segments == 3
    sr = hd.sr.srread(tmp_path / "sr.dcm")
    assert len(sr.content.get_volumetric_roi_measurement_groups()) == 3


def orthanc_file(orthanc: OrthancServer, instance_id: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"{orthanc.url}/instances/{instance_id}/file", timeout=10) as r:
        return bytes(r.read())


def test_stow_rs_destination(
    made: tuple[LocalStore, AnalysisJob, Path], own_orthanc: OrthancServer
) -> None:
    store, job, _ = made
    store.delete(f"jobs/{job.uid}/delivery.json")
    result = deliver(made, {"web": own_orthanc.dicomweb_node()})
    assert result.state == "succeeded", result.message
    assert len(own_orthanc.get("/instances")) == len(objects(made))


def test_destination_down_holds_job_in_delivery_pending(
    made: tuple[LocalStore, AnalysisJob, Path], orthanc: OrthancServer
) -> None:
    store, job, _ = made
    store.delete(f"jobs/{job.uid}/delivery.json")
    down = orthanc.dimse_node(port=free_port(), retry_backoff_seconds=0.05, timeout_seconds=2)
    result = deliver(made, {"pacs": orthanc.dimse_node(), "down": down})
    assert result.state == "held"
    assert result.hold is not None and result.hold.value == "DeliveryPending"
    assert "down" in (result.message or "") and "radpipe release" in (result.message or "")
    # the node that worked is remembered; a later retry with the node back sends only there
    log = store.get_json(f"jobs/{job.uid}/delivery.json")
    assert log["deliveredTo"] == ["pacs"]


def test_destination_refusing_a_sop_class_fails_clearly(
    made: tuple[LocalStore, AnalysisJob, Path], refusing_scp: PacsNodeConfig
) -> None:
    store, job, _ = made
    store.delete(f"jobs/{job.uid}/delivery.json")
    result = deliver(made, {"picky": refusing_scp})
    assert result.state == "failed" and not result.retryable
    assert "Segmentation Storage" in (result.message or "")
    assert "picky" in (result.message or "")


def test_email_of_the_pdf_sent_once(
    made: tuple[LocalStore, AnalysisJob, Path], smtp_server: SmtpSink
) -> None:
    store, job, _ = made
    store.delete(f"jobs/{job.uid}/delivery.json")
    smtp = {"host": smtp_server.host, "port": smtp_server.port, "sender": "radpipe@test"}
    first = deliver(made, {}, email=["dr@example.org"], smtp=smtp)
    assert first.state == "succeeded", first.message
    assert first.data["results"]["deliveredTo"] == ["mailto:dr@example.org"]
    assert len(smtp_server.messages) == 1
    recipients, message = smtp_server.messages[0]
    assert recipients == ["dr@example.org"]
    parts = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    assert parts and parts[0].get_payload(decode=True).startswith(b"%PDF")
    assert "SYNTH" not in str(message["Subject"])  # no patient data in the mail headers
    deliver(made, {}, email=["dr@example.org"], smtp=smtp)
    assert len(smtp_server.messages) == 1  # not sent twice


@pytest.fixture
def refusing_scp() -> Iterator[PacsNodeConfig]:
    """A pynetdicom peer that answers C-FIND but stores only SR and PDF, not SEG."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import (
        Comprehensive3DSRStorage,
        EncapsulatedPDFStorage,
        StudyRootQueryRetrieveInformationModelFind,
        Verification,
    )

    def on_find(event: Any) -> Iterator[tuple[int, None]]:
        yield from ()

    def on_store(event: Any) -> int:
        return 0x0000

    ae = AE(ae_title="PICKY")
    for context in (
        Verification,
        StudyRootQueryRetrieveInformationModelFind,
        Comprehensive3DSRStorage,
        EncapsulatedPDFStorage,
    ):
        ae.add_supported_context(context)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_STORE, on_store)],
    )
    try:
        yield PacsNodeConfig(ae_title="PICKY", host="127.0.0.1", port=port, timeout_seconds=5)
    finally:
        server.shutdown()
