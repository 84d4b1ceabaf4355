"""FHIR R4 DiagnosticReport: built and validated with fhir.resources, sent idempotently.

The server here is tests/fixtures/fhir.py: a local HTTP endpoint that validates every
payload with the same library (fhir.resources R4B models), NOT a real FHIR server — none
could be installed from the reachable registries (see that module's docstring).
"""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from radpipe.config import FhirConfig
from radpipe.results.fhir import (
    FhirRefused,
    FhirUnavailable,
    ReportInput,
    build_bundle,
    build_resources,
    deliver_report,
    report_id,
)
from tests.fixtures.fhir import FhirEndpoint

PDF = b"%PDF-1.4 test"


def data(**overrides: object) -> ReportInput:
    values: dict[str, object] = dict(
        job_uid="rp-0123456789ab",
        app="glioma",
        app_title="Glioma segmentation",
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        accession="ACC1",
        patient_id="PAT1",
        measurements=[
            {"name": "ET", "label": "Enhancing tumour", "value": 12.4, "unit": "cm3"},
            {"name": "WT", "label": "Whole tumour", "value": 41.2, "unit": "cm3"},
        ],
        conclusion="Enhancing lesion, left frontal.",
        pdf=PDF,
        final=True,
    )
    values.update(overrides)
    return ReportInput(**values)  # type: ignore[arg-type]


def config(endpoint: FhirEndpoint, **overrides: object) -> FhirConfig:
    return FhirConfig(endpoint=endpoint.url, backoff_seconds=0.01, timeout_seconds=5, **overrides)


def test_report_has_observations_pdf_and_imaging_study() -> None:
    report, observations = build_resources(data())
    assert report.id == report_id("rp-0123456789ab")
    assert report.status == "final"
    assert [r.reference for r in report.result] == [f"Observation/{o.id}" for o in observations]
    # the model keeps the bytes; the JSON carries them base64-encoded
    assert report.presentedForm[0].data == PDF
    wire = report.model_dump(mode="json", exclude_none=True)
    assert base64.b64decode(wire["presentedForm"][0]["data"]) == PDF
    assert report.presentedForm[0].contentType == "application/pdf"
    study = report.imagingStudy[0]
    assert study.identifier.system == "urn:dicom:uid"
    assert study.identifier.value == "urn:oid:1.2.826.0.1.3680043.8.498.1"
    assert observations[0].valueQuantity.code == "cm3"
    assert observations[0].valueQuantity.system == "http://unitsofmeasure.org"
    assert build_resources(data(final=False))[0].status == "preliminary"
    # the library refuses what FHIR does not allow (an id with '_')
    with pytest.raises(ValueError):
        build_resources(data(job_uid="bad_id!"))


def test_post_verify_and_resend_without_duplicates(fhir_endpoint: FhirEndpoint) -> None:
    entry = deliver_report(config(fhir_endpoint), data(), None)
    assert entry["sentNow"] and entry["observations"] == 2
    stored = fhir_endpoint.resources[f"DiagnosticReport/{report_id('rp-0123456789ab')}"]
    DiagnosticReport.model_validate(stored)
    assert len(fhir_endpoint.resources) == 3
    # a second delivery only verifies; a resend after loss PUTs the same ids again
    again = deliver_report(config(fhir_endpoint), data(), entry)
    assert not again["sentNow"] and fhir_endpoint.posts == 1
    fhir_endpoint.resources.clear()
    resent = deliver_report(config(fhir_endpoint), data(), entry)
    assert resent["sentNow"] and len(fhir_endpoint.resources) == 3


def test_retries_then_unavailable_and_refusal(fhir_endpoint: FhirEndpoint) -> None:
    fhir_endpoint.fail_next = 2
    assert deliver_report(config(fhir_endpoint, attempts=3), data(), None)["sentNow"]
    fhir_endpoint.fail_next = 5
    with pytest.raises(FhirUnavailable, match="after 2 attempts"):
        deliver_report(config(fhir_endpoint, attempts=2), data(), None)
    fhir_endpoint.fail_next = 0
    fhir_endpoint.refuse = True
    with pytest.raises(FhirRefused, match=r"HTTP 400.*refused by test setting"):
        deliver_report(config(fhir_endpoint), data(), None)


def test_bundle_is_a_transaction_of_puts() -> None:
    bundle = build_bundle(data(), "http://emr/fhir/")
    methods = {e.request.method for e in bundle.entry}
    assert bundle.type == "transaction" and methods == {"PUT"}
    assert (
        bundle.entry[-1].fullUrl
        == f"http://emr/fhir/DiagnosticReport/{report_id('rp-0123456789ab')}"
    )
