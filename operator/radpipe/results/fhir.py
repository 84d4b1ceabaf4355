"""Results to the EMR: a FHIR R4 DiagnosticReport with one Observation per measurement.

Built with ``fhir.resources`` (its R4B models: FHIR 4.3, the R4 line; DiagnosticReport,
Observation, Attachment and Reference are unchanged from 4.0.1 for everything used here),
which validates every resource as it is built and again before sending.

* DiagnosticReport ``radpipe-<job>``: identifier ``urn:radpipe:job|<job>``, status
  ``final`` once a radiologist accepted the result (else ``preliminary``), category RAD,
  the conclusion (findings), the PDF as ``presentedForm``, the study as ``imagingStudy``
  (a logical reference by StudyInstanceUID, ``urn:dicom:uid``), the patient as
  ``subject`` (a logical reference by PatientID) and ``result`` → the Observations.
* Observation ``radpipe-<job>-m<n>``: one measurement (volume, diameter, probability…) as
  a UCUM ``valueQuantity``, derived from the same ImagingStudy.

Sending is one transaction Bundle of PUTs at those ids, so a resend updates the same
resources and never duplicates one (idempotent), then a read-back verifies the report.
Connection errors, timeouts, 429 and 5xx are retried with backoff (``fhir.attempts``); if
the server stays away the job waits in DeliveryPending (like a PACS that is down). A 4xx
answer is a refusal: the job fails naming the server's OperationOutcome.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from radpipe.config import FhirConfig

if TYPE_CHECKING:
    from radpipe.pipeline.contract import StageContext

log = logging.getLogger(__name__)

FHIR_VERSION = "4.3.0 (R4B models of fhir.resources, R4-compatible)"
JOB_SYSTEM = "urn:radpipe:job"
MEASUREMENT_SYSTEM = "urn:radpipe:measurement"
DICOM_UID_SYSTEM = "urn:dicom:uid"
UCUM = "http://unitsofmeasure.org"
UCUM_CODES = {"cm3": "cm3", "mm": "mm", "%": "%", "1": "1", "count": "{count}"}
JSON = "application/fhir+json"


class FhirError(Exception):
    """A FHIR delivery problem; ``retryable`` says whether waiting may help."""

    retryable = False


class FhirUnavailable(FhirError):
    """The server is down, timed out or answered 429/5xx."""

    retryable = True


class FhirRefused(FhirError):
    """The server refused the resources (4xx); the message carries its OperationOutcome."""


@dataclass
class ReportInput:
    """What the DiagnosticReport says: job, study, patient, measurements, PDF."""

    job_uid: str
    app: str
    app_title: str
    study_instance_uid: str
    accession: str = ""
    patient_id: str = ""
    measurements: Sequence[dict[str, Any]] = field(default_factory=list)
    conclusion: str = ""
    pdf: bytes | None = None
    final: bool = False
    issued: str | None = None


def report_id(job_uid: str) -> str:
    """The DiagnosticReport's logical id (a FHIR id: letters, digits, '-', '.')."""
    return f"radpipe-{job_uid}"[:64]


def _study_ref(study_uid: str) -> dict[str, Any]:
    return {
        "type": "ImagingStudy",
        "identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study_uid}"},
    }


def build_resources(data: ReportInput) -> tuple[DiagnosticReport, list[Observation]]:
    """The validated DiagnosticReport and its Observations (raises on invalid input)."""
    status = "final" if data.final else "preliminary"
    subject = (
        {"type": "Patient", "identifier": {"value": data.patient_id}} if data.patient_id else None
    )
    category = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                    "code": "RAD",
                    "display": "Radiology",
                }
            ]
        }
    ]
    observations = []
    for number, item in enumerate(data.measurements, start=1):
        unit = str(item.get("unit", "1"))
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"{report_id(data.job_uid)}-m{number}"[:64],
            "status": status,
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "imaging",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [{"system": MEASUREMENT_SYSTEM, "code": str(item["name"])}],
                "text": str(item.get("label") or item["name"]),
            },
            "valueQuantity": {
                "value": float(item["value"]),
                "unit": unit,
                "system": UCUM,
                "code": UCUM_CODES.get(unit, unit),
            },
            "derivedFrom": [_study_ref(data.study_instance_uid)],
        }
        if subject:
            observation["subject"] = subject
        observations.append(Observation.model_validate(observation))
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report_id(data.job_uid),
        "identifier": [{"system": JOB_SYSTEM, "value": data.job_uid}],
        "status": status,
        "category": category,
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "18748-4",
                    "display": "Diagnostic imaging study",
                }
            ],
            "text": data.app_title or data.app,
        },
        "imagingStudy": [_study_ref(data.study_instance_uid)],
        "result": [{"reference": f"Observation/{o.id}"} for o in observations],
        "conclusion": data.conclusion or None,
    }
    if data.issued:
        report["issued"] = data.issued
    if subject:
        report["subject"] = subject
    if data.accession:
        report["identifier"].append(
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}
                    ]
                },
                "value": data.accession,
            }
        )
    if data.pdf is not None:
        report["presentedForm"] = [
            {
                "contentType": "application/pdf",
                "data": base64.b64encode(data.pdf).decode(),
                "title": f"{data.app_title or data.app} report",
            }
        ]
    return DiagnosticReport.model_validate(
        {k: v for k, v in report.items() if v is not None}
    ), observations


def build_bundle(data: ReportInput, base: str = "") -> Bundle:
    """A transaction Bundle that PUTs the report and its Observations at fixed ids
    (``base``: the server's base URL, for the entries' absolute fullUrl)."""
    report, observations = build_resources(data)
    entries = []
    for resource in [*observations, report]:
        kind = resource.get_resource_type()
        entries.append(
            {
                "fullUrl": f"{base.rstrip('/')}/{kind}/{resource.id}" if base else None,
                "resource": resource.model_dump(mode="json", exclude_none=True),
                "request": {"method": "PUT", "url": f"{kind}/{resource.id}"},
            }
        )
    return Bundle.model_validate(
        {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )


class FhirClient:
    """Sends bundles to one FHIR server and reads resources back, with retries."""

    def __init__(self, config: FhirConfig) -> None:
        if not config.endpoint:
            raise ValueError("fhir.endpoint is not set")
        self.config = config
        self.base = config.endpoint.rstrip("/")

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": JSON, "Content-Type": JSON}
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        return headers

    def _auth(self) -> tuple[str, str] | None:
        if self.config.username:
            password = self.config.password.get_secret_value() if self.config.password else ""
            return (self.config.username, password)
        return None

    def _request(self, method: str, path: str, body: str | None = None) -> Any:
        import httpx

        url = f"{self.base}/{path}" if path else self.base
        delay = self.config.backoff_seconds
        last = ""
        for attempt in range(1, self.config.attempts + 1):
            try:
                response = httpx.request(
                    method,
                    url,
                    content=body,
                    headers=self._headers(),
                    auth=self._auth(),
                    timeout=self.config.timeout_seconds,
                    verify=self.config.verify_tls,
                )
            except httpx.HTTPError as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code < 300:
                    return response.json() if response.content else None
                if response.status_code != 429 and response.status_code < 500:
                    raise FhirRefused(
                        f"FHIR server {self.base} refused {method} {path or '/'} "
                        f"(HTTP {response.status_code}): {_outcome_text(response)}"
                    )
                last = f"HTTP {response.status_code}: {_outcome_text(response)}"
            if attempt < self.config.attempts:
                log.info("FHIR server unavailable (attempt %d): %s", attempt, last)
                time.sleep(delay)
                delay *= 2
        raise FhirUnavailable(
            f"FHIR server {self.base} unavailable after {self.config.attempts} attempts ({last})"
        )

    def send(self, bundle: Bundle) -> Any:
        """POST a transaction bundle (validated again first); returns the response bundle."""
        checked = Bundle.model_validate(bundle.model_dump(mode="json", exclude_none=True))
        return self._request("POST", "", checked.model_dump_json(exclude_none=True))

    def read(self, kind: str, logical_id: str) -> dict[str, Any] | None:
        """GET ``kind/id``; None when the server does not have it."""
        try:
            found: dict[str, Any] = self._request("GET", f"{kind}/{logical_id}")
            return found
        except FhirRefused as err:
            if "HTTP 404" in str(err) or "HTTP 410" in str(err):
                return None
            raise

    def verify(self, data: ReportInput, expected_results: int) -> dict[str, Any]:
        """Read the report back; FhirRefused when it is missing or not ours."""
        found = self.read("DiagnosticReport", report_id(data.job_uid))
        if found is None:
            raise FhirRefused(
                f"FHIR server {self.base} accepted the report but has no "
                f"DiagnosticReport/{report_id(data.job_uid)}"
            )
        report = DiagnosticReport.model_validate(found)
        ours = any(
            i.system == JOB_SYSTEM and i.value == data.job_uid for i in report.identifier or []
        )
        if not ours or len(report.result or []) != expected_results:
            raise FhirRefused(
                f"DiagnosticReport/{report.id} on {self.base} does not match what was sent"
            )
        return found


def _outcome_text(response: Any) -> str:
    """The diagnostics of an OperationOutcome answer, else the start of the body."""
    try:
        body = response.json()
    except Exception:
        return response.text[:300]
    issues = body.get("issue", []) if isinstance(body, dict) else []
    texts = [str(i.get("diagnostics") or i.get("details", {}).get("text") or "") for i in issues]
    return "; ".join(t for t in texts if t)[:500] or str(body)[:300]


def deliver_report(
    config: FhirConfig, data: ReportInput, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """Send (or, when an earlier attempt did, only verify) the report; returns the
    delivery-log entry. Raises FhirUnavailable or FhirRefused."""
    client = FhirClient(config)
    bundle = build_bundle(data, client.base)
    results = len(bundle.entry or []) - 1
    if previous and previous.get("endpoint") == client.base:
        try:
            client.verify(data, results)
            return {**previous, "sentNow": False}
        except FhirRefused:
            pass  # gone or changed on the server: send again (same ids, so no duplicates)
    client.send(bundle)
    found = client.verify(data, results)
    return {
        "endpoint": client.base,
        "diagnosticReport": f"DiagnosticReport/{report_id(data.job_uid)}",
        "observations": results,
        "versionId": (found.get("meta") or {}).get("versionId"),
        "status": "final" if data.final else "preliminary",
        "sentNow": True,
    }


def report_input(ctx: StageContext) -> ReportInput:
    """What the deliver stage knows of a job, as :class:`ReportInput`: the results document
    (postprocess, else the report stage's ``findings``), the PDF, and the review."""
    from radpipe.results.review import read_review

    stages = {s.name for s in ctx.app.stages}
    report = ctx.result_of("report")
    doc: dict[str, Any] = {}
    if "postprocess" in stages:
        doc = ctx.result_of("postprocess").data.get("findings") or {}
    doc = doc or report.data.get("findings") or {}
    study = doc.get("study") or {}
    objects = report.data.get("dicomObjects") or [{}]
    study_uid = (
        study.get("studyInstanceUid")
        or study.get("studyInstanceUID")
        or ctx.job.spec.study_instance_uid
        or objects[0].get("studyInstanceUID", "")
    )
    review = read_review(ctx.store, ctx.job.uid) or {}
    return ReportInput(
        job_uid=ctx.job.uid,
        app=ctx.job.spec.app,
        app_title=ctx.app.title,
        study_instance_uid=study_uid,
        accession=ctx.job.spec.accession,
        patient_id=str(study.get("patientId") or ""),
        measurements=list(doc.get("measurements") or []),
        conclusion=" ".join(str(f.get("text", "")) for f in doc.get("findings") or []).strip(),
        pdf=ctx.read_input("report", "report.pdf") if "report.pdf" in report.outputs else None,
        final=review.get("decision") == "accepted",
        issued=str(doc.get("createdAt") or "") or None,
    )
