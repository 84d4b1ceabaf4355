"""The deliver stage: send the report stage's DICOM objects to every destination, verify.

For each PACS node in ``spec.delivery.pacs``: ask which of the objects it already holds
(C-FIND / QIDO-RS by series), send only the missing ones (C-STORE, or STOW-RS for
DICOMweb nodes), then ask again to verify that every SOP Instance UID arrived. Because the
objects and their UIDs were made once by the report stage, a resend after any failure
sends the same instances and never duplicates one.

Outcomes:

* a node that is down (or goes away) is retried inside the attempt; if it stays down the
  job is held in **DeliveryPending** (``radpipe release JOB`` retries, nothing upstream is
  recomputed), and nodes already served are not sent to again;
* a node that refuses an object (e.g. does not accept that SOP class) fails the job with a
  message naming node and SOP class: retrying would not help;
* ``spec.delivery.email`` recipients get the PDF by SMTP (stage settings ``smtp``:
  host, port, sender, starttls, username, password); an SMTP server that is down also
  holds the job in DeliveryPending, and a message is never sent twice.

What was delivered where is kept in ``jobs/<uid>/delivery.json`` (outside this stage's
prefix, so it survives the stage's re-runs).
"""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from radpipe.dicom.errors import PacsError
from radpipe.pipeline.contract import (
    DeliveryPending,
    Stage,
    StageContext,
    StageError,
    StageOutcome,
    job_prefix,
)
from radpipe.store import ObjectNotFound

#: Store name of the delivery log (under jobs/<uid>/).
DELIVERY_LOG = "delivery.json"

SOP_CLASS_NAMES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR Storage",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}


class SmtpSettings(BaseModel):
    """Where report emails go out (deliver stage setting ``smtp``)."""

    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    sender: str = "radpipe@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 10.0


@dataclass
class DicomObject:
    """One object the report stage made, downloaded for sending."""

    path: Path
    kind: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str


class _Refused(Exception):
    """A node refused an object for good."""


def _log_key(job_uid: str) -> str:
    return job_prefix(job_uid) + DELIVERY_LOG


class DeliverStage(Stage):
    """C-STORE / STOW-RS the outputs to every destination and verify; email the PDF."""

    name: ClassVar[str] = "deliver"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("report",)

    def run(self, ctx: StageContext) -> StageOutcome:
        """See the module docstring."""
        from radpipe.results.review import review_gate

        # Review gate first: held (AwaitingReview) or rejected results send nothing.
        review_gate(ctx)
        report = ctx.result_of("report")
        objects = self._download(ctx, report.data.get("dicomObjects", []))
        log = self._read_log(ctx)
        spec = ctx.job.spec.delivery
        pending: list[str] = []
        refused: list[str] = []
        delivered: list[str] = list(log.get("deliveredTo", []))
        for index, node_name in enumerate(spec.pacs):
            ctx.progress(index / max(1, len(spec.pacs) + 1), f"sending to {node_name}")
            if node_name in delivered and self._verify_only(ctx, node_name, objects):
                continue
            try:
                sent = self._deliver_to(ctx, node_name, objects)
            except _Refused as err:
                refused.append(str(err))
                continue
            except PacsError as err:
                if not err.retryable:
                    refused.append(str(err))
                    continue
                ctx.log.warning("destination %s stays unavailable: %s", node_name, err)
                pending.append(f"{node_name}: {err.message}")
                continue
            log.setdefault("sent", {})[node_name] = sent
            if node_name not in delivered:
                delivered.append(node_name)
            log["deliveredTo"] = delivered
            self._write_log(ctx, log)
        if ctx.settings.fhir.endpoint:  # results to the EMR side too (issue 13)
            fhir_target = self._fhir(ctx, log, refused, pending)
            if fhir_target and fhir_target not in delivered:
                delivered.append(fhir_target)
        emailed = list(log.get("emailed", []))
        if spec.email and spec.report:
            try:
                newly = self._email(ctx, [a for a in spec.email if a not in emailed])
            except (OSError, smtplib.SMTPException) as err:
                pending.append(f"email: {err}")
            else:
                emailed += newly
                log["emailed"] = emailed
                self._write_log(ctx, log)
        if refused:
            raise StageError(
                "delivery refused: " + "; ".join(refused),
                hint="configure the destination to accept these objects, or turn the object "
                "off in the job's delivery settings (seg/sr/report)",
            )
        if pending:
            raise DeliveryPending(
                "delivery pending: "
                + "; ".join(pending)
                + (f" (already delivered to {', '.join(delivered)})" if delivered else ""),
                hint=f"nothing needs recomputing: once the destination is back, run "
                f"`radpipe release {ctx.job.uid}` to resend",
            )
        targets = [*delivered, *(f"mailto:{a}" for a in emailed)]
        return StageOutcome(
            data={
                "results": {"deliveredTo": targets},
                "delivery": {"objects": [o.sop_instance_uid for o in objects], **log},
            },
            metrics={"objects": float(len(objects)), "destinations": float(len(targets))},
            message=f"{len(objects)} objects delivered to {', '.join(targets) or 'nobody'}",
        )

    # -- PACS --------------------------------------------------------------------------

    def _download(self, ctx: StageContext, listed: list[dict[str, Any]]) -> list[DicomObject]:
        out = []
        for item in listed:
            path = ctx.fetch_input("report", item["name"], ctx.workdir / item["name"])
            out.append(
                DicomObject(
                    path=path,
                    kind=item["kind"],
                    sop_class_uid=item["sopClassUID"],
                    sop_instance_uid=item["sopInstanceUID"],
                    series_instance_uid=item["seriesInstanceUID"],
                    study_instance_uid=item["studyInstanceUID"],
                )
            )
        return out

    def _client(self, ctx: StageContext, node_name: str) -> Any:
        from radpipe.dicom.client import open_client
        from radpipe.dicom.errors import NodeConfigError
        from radpipe.dicom.nodes import resolve_node

        try:
            return open_client(resolve_node(ctx.settings, node_name))
        except NodeConfigError as err:
            raise StageError(err.message, err.hint) from err

    def _present(self, client: Any, objects: list[DicomObject]) -> set[str]:
        """SOP Instance UIDs of ``objects`` that the node already holds."""
        found: set[str] = set()
        for study, series in sorted(
            {(o.study_instance_uid, o.series_instance_uid) for o in objects}
        ):
            found.update(client.find_instances(study, series))
        return found & {o.sop_instance_uid for o in objects}

    def _verify_only(self, ctx: StageContext, node_name: str, objects: list[DicomObject]) -> bool:
        """An earlier attempt delivered here: true when everything is still there."""
        try:
            client = self._client(ctx, node_name)
            return self._present(client, objects) == {o.sop_instance_uid for o in objects}
        except PacsError:
            return True  # it was verified when sent; do not hold the job for a re-check

    def _deliver_to(self, ctx: StageContext, node_name: str, objects: list[DicomObject]) -> int:
        """Send what the node lacks and verify; returns how many were sent."""
        client = self._client(ctx, node_name)
        config = ctx.settings.pacs[node_name]
        attempts = int(ctx.spec.settings.get("attempts", 3))
        delay = float(config.retry_backoff_seconds)
        sent = 0
        for attempt in range(1, attempts + 1):
            try:
                present = self._present(client, objects)
                missing = [o for o in objects if o.sop_instance_uid not in present]
                if missing:
                    sent += self._store(client, node_name, missing)
                    present = self._present(client, objects)
                lost = [o for o in objects if o.sop_instance_uid not in present]
                if lost:
                    raise _Refused(
                        f"{node_name} accepted but does not list "
                        + ", ".join(f"{o.kind} {o.sop_instance_uid}" for o in lost)
                    )
                ctx.log.info(
                    "delivered %d objects to %s (%d sent now)", len(objects), node_name, sent
                )
                return sent
            except PacsError as err:
                if not err.retryable or attempt == attempts:
                    raise
                ctx.log.info(
                    "%s unavailable (attempt %d/%d): %s", node_name, attempt, attempts, err
                )
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _store(self, client: Any, node_name: str, missing: list[DicomObject]) -> int:
        try:
            report = client.store([o.path for o in missing])
        except ValueError as err:
            # pynetdicom: the node accepted no presentation context for this SOP class
            raise _Refused(f"{node_name} does not accept the objects: {err}") from err
        except PacsError as err:
            if err.retryable:
                raise
            raise _Refused(self._refusal(node_name, missing, str(err))) from err
        if report.failed:
            by_path = {str(o.path): o for o in missing}
            details = []
            for path, reason in report.failed:
                obj = by_path.get(path)
                what = SOP_CLASS_NAMES.get(obj.sop_class_uid, obj.sop_class_uid) if obj else path
                details.append(f"{what} ({reason})")
            raise _Refused(f"{node_name} refused " + "; ".join(details))
        return int(report.sent)

    @staticmethod
    def _refusal(node_name: str, objects: list[DicomObject], reason: str) -> str:
        classes = sorted({SOP_CLASS_NAMES.get(o.sop_class_uid, o.sop_class_uid) for o in objects})
        return f"{node_name} refused {', '.join(classes)}: {reason}"

    # -- FHIR ----------------------------------------------------------------------------

    def _fhir(
        self, ctx: StageContext, log: dict[str, Any], refused: list[str], pending: list[str]
    ) -> str | None:
        """Send the DiagnosticReport (radpipe.results.fhir); returns what was delivered."""
        from radpipe.results.fhir import FhirError, deliver_report, report_input

        try:
            entry = deliver_report(ctx.settings.fhir, report_input(ctx), log.get("fhir"))
        except FhirError as err:
            (pending if err.retryable else refused).append(f"fhir: {err}")
            return None
        log["fhir"] = entry
        self._write_log(ctx, log)
        return f"{entry['endpoint']}/{entry['diagnosticReport']}"

    # -- email -------------------------------------------------------------------------

    def _email(self, ctx: StageContext, recipients: list[str]) -> list[str]:
        if not recipients:
            return []
        settings = SmtpSettings.model_validate(ctx.spec.settings.get("smtp", {}))
        pdf = ctx.read_input("report", "report.pdf")
        message = EmailMessage()
        message["From"] = settings.sender
        message["To"] = ", ".join(recipients)
        # no patient data in the subject or body: mail crosses systems we do not control
        message["Subject"] = f"radpipe report ready ({ctx.job.spec.app}, job {ctx.job.uid})"
        message.set_content(
            f"The {ctx.app.title} report of job {ctx.job.uid} is attached.\n\n"
            f"{ctx.settings.branding.footer}\n"
        )
        message.add_attachment(
            pdf, maintype="application", subtype="pdf", filename=f"radpipe-{ctx.job.uid}.pdf"
        )
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)
        return recipients

    # -- the delivery log ----------------------------------------------------------------

    def _read_log(self, ctx: StageContext) -> dict[str, Any]:
        try:
            data = ctx.store.get_json(_log_key(ctx.job.uid))
        except ObjectNotFound:
            return {}
        return data if isinstance(data, dict) else {}

    def _write_log(self, ctx: StageContext, log: dict[str, Any]) -> None:
        ctx.store.put_json(_log_key(ctx.job.uid), log)
