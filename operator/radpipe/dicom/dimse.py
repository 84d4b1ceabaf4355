"""The DIMSE transport, on pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE.

Every operation opens its own association, so operations can run in parallel threads
(the retrieve runs one association per series). Query/Retrieve uses the Study Root model.
Received instances go straight to a :class:`~radpipe.dicom.instances.StudySink` as they
arrive; nothing is held back until the end of a transfer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from radpipe.dicom.contexts import (
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
    retrieve_storage_contexts,
)
from radpipe.dicom.errors import (
    AssociationRejected,
    PacsError,
    PacsUnavailable,
    QueryFailed,
    StoreFailed,
)
from radpipe.dicom.instances import StudySink
from radpipe.dicom.models import RetrieveCounts, SeriesMatch, StoreReport, StudyMatch
from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.scp import MAX_PDU, StorageReceiver
from radpipe.dicom.tls import client_context

log = logging.getLogger(__name__)

T = TypeVar("T")

# Identifiers carry patient names: pynetdicom must never log them.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
if logging.getLogger("pynetdicom").level == logging.NOTSET:
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

#: SOP Instance UIDs per C-GET/C-MOVE request when retrieving a list of instances.
UID_BATCH = 200

_PENDING = (0xFF00, 0xFF01)

#: A function that retrieves one series (or the listed instances of it) into the sink.
SeriesFetcher = Callable[[str, Sequence[str] | None], RetrieveCounts]

_STUDY_KEYS = (
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "PatientID",
    "PatientName",
)
_SERIES_KEYS = (
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)


def _identifier(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for name, value in keys.items():
        setattr(ds, name, value)
    return ds


def _unique(items: list[T], key: Callable[[T], str]) -> dict[str, T]:
    """First match per UID: some archives answer once per instance at every level."""
    unique: dict[str, T] = {}
    for item in items:
        unique.setdefault(key(item), item)
    return unique


class DimseClient:
    """A PACS node spoken to over DIMSE (pynetdicom)."""

    def __init__(self, node: PacsNode) -> None:
        self.node = node
        self.config = node.config

    # -- associations ------------------------------------------------------------------

    def _ae(self) -> AE:
        cfg = self.config
        ae = AE(ae_title=cfg.calling_ae)
        ae.maximum_pdu_size = MAX_PDU
        ae.acse_timeout = cfg.timeout_seconds
        ae.dimse_timeout = cfg.timeout_seconds
        ae.network_timeout = cfg.timeout_seconds
        ae.connection_timeout = min(cfg.timeout_seconds, 10.0)
        return ae

    @contextmanager
    def _association(
        self,
        contexts: Sequence[PresentationContext],
        what: str,
        *,
        roles: Sequence[Any] = (),
        handlers: Sequence[Any] = (),
    ) -> Iterator[Association]:
        ae = self._ae()
        ae.requested_contexts = list(contexts)
        cfg = self.config
        tls_args = (client_context(cfg.tls), cfg.host) if cfg.tls else None
        assoc = ae.associate(
            cfg.host,
            cfg.port,
            ae_title=cfg.ae_title,
            max_pdu=MAX_PDU,  # associate() ignores ae.maximum_pdu_size
            ext_neg=list(roles) or None,
            evt_handlers=list(handlers) or None,
            tls_args=tls_args,
        )
        if not assoc.is_established:
            raise self._refusal(assoc, what)
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def _refusal(self, assoc: Association, what: str) -> PacsError:
        node = self.node.describe()
        cfg = self.config
        if assoc.is_rejected:
            primitive = getattr(assoc.acceptor, "primitive", None)
            reason = getattr(primitive, "reason_str", "no reason given")
            if getattr(primitive, "result", None) == 0x02:
                return PacsUnavailable(
                    f"PACS {node} turned the {what} association away for now ({reason})",
                    hint="the PACS is busy or restarting; the job retries by itself",
                )
            return AssociationRejected(
                f"PACS {node} rejected the {what} association from {cfg.calling_ae!r} ({reason})",
                hint=f"check pacs.{self.node.name}.ae_title ({cfg.ae_title!r}) and "
                f"calling_ae ({cfg.calling_ae!r}), and that the PACS knows radpipe's AE title",
            )
        if assoc.is_aborted and assoc.acceptor.primitive is not None:
            return AssociationRejected(
                f"PACS {node} accepted none of the presentation contexts radpipe proposed "
                f"for {what}",
                hint="the PACS does not offer this service; for retrieval try "
                f"pacs.{self.node.name}.retrieve: c-move (or c-get)",
            )
        return PacsUnavailable(
            f"cannot open an association to PACS {node} for {what} "
            "(connection refused, timed out or aborted)",
            hint=f"check that the PACS is running and reachable at {cfg.host}:{cfg.port}; "
            f"`radpipe pacs echo {self.node.name}` tests the connection",
        )

    # -- C-ECHO ------------------------------------------------------------------------

    def echo(self) -> float:
        """C-ECHO the node; returns the round trip in seconds."""
        start = time.perf_counter()
        with self._association([build_context(VERIFICATION)], "C-ECHO") as assoc:
            status = assoc.send_c_echo()
        if "Status" not in status:
            raise PacsUnavailable(f"PACS {self.node.describe()} did not answer the C-ECHO")
        if status.Status != 0x0000:
            raise QueryFailed(
                f"PACS {self.node.describe()} answered C-ECHO with status 0x{status.Status:04X}"
            )
        return time.perf_counter() - start

    # -- C-FIND ------------------------------------------------------------------------

    def _find(self, identifier: Dataset, what: str) -> list[Dataset]:
        model = STUDY_ROOT_FIND
        found: list[Dataset] = []
        with self._association([build_context(model)], "C-FIND") as assoc:
            for status, ident in assoc.send_c_find(identifier, model):
                if "Status" not in status:
                    raise PacsUnavailable(
                        f"PACS {self.node.describe()} went away during the C-FIND for {what}",
                        hint="the job retries by itself; check the PACS if it keeps happening",
                    )
                code = int(status.Status)
                if code in _PENDING:
                    if ident is not None:
                        found.append(ident)
                elif code == 0x0000:
                    break
                else:
                    comment = status.get("ErrorComment", "")
                    raise QueryFailed(
                        f"PACS {self.node.describe()} answered the C-FIND for {what} with "
                        f"status 0x{code:04X}{f' ({comment})' if comment else ''}",
                        hint="check that the PACS allows radpipe to query (C-FIND)",
                    )
        return found

    def find_studies(
        self, *, accession: str | None = None, study_uid: str | None = None
    ) -> list[StudyMatch]:
        """Studies matching an accession number and/or a StudyInstanceUID."""
        keys: dict[str, object] = {name: "" for name in _STUDY_KEYS}
        keys["StudyInstanceUID"] = study_uid or ""
        if accession:
            keys["AccessionNumber"] = accession
        found = self._find(_identifier("STUDY", **keys), "studies")
        studies = [StudyMatch.from_dataset(ds) for ds in found if ds.get("StudyInstanceUID")]
        return list(_unique(studies, lambda s: s.study_instance_uid).values())

    def find_series(self, study_uid: str) -> list[SeriesMatch]:
        """The series of a study, with the instance counts the PACS reports."""
        keys: dict[str, object] = {name: "" for name in _SERIES_KEYS}
        ident = _identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="", **keys)
        found = self._find(ident, f"the series of study {study_uid}")
        series = [SeriesMatch.from_dataset(ds) for ds in found if ds.get("SeriesInstanceUID")]
        unique = _unique(series, lambda s: s.series_instance_uid).values()
        return sorted(unique, key=lambda s: (s.series_number or 0, s.series_instance_uid))

    def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
        """SOP Instance UIDs of one series."""
        ident = _identifier(
            "IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID=""
        )
        found = self._find(ident, f"the instances of series {series_uid}")
        uids = [str(ds.SOPInstanceUID) for ds in found if ds.get("SOPInstanceUID")]
        return list(dict.fromkeys(uids))

    # -- C-GET / C-MOVE ------------------------------------------------------------------

    @contextmanager
    def retrieval(self, study_uid: str, sink: StudySink) -> Iterator[SeriesFetcher]:
        """Yield a function that retrieves a series (or listed instances) into ``sink``.

        By C-GET the instances come back on the same association; by C-MOVE they arrive
        at radpipe's Storage SCP, which runs while the block does.
        """
        if self.node.retrieve_method == "c-move":
            cfg = self.config
            with StorageReceiver.serving(
                cfg.storage_bind,
                cfg.storage_port,
                cfg.move_destination,
                study_uid,
                sink,
                calling_ae=cfg.ae_title,  # the PACS sends the C-MOVE's C-STOREs as itself
            ):
                yield lambda series, uids: self._retrieve("c-move", study_uid, series, sink, uids)
        else:
            yield lambda series, uids: self._retrieve("c-get", study_uid, series, sink, uids)

    def _retrieve(
        self,
        method: str,
        study_uid: str,
        series_uid: str,
        sink: StudySink,
        sop_uids: Sequence[str] | None,
    ) -> RetrieveCounts:
        if not sop_uids:
            ident = _identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid)
            return self._retrieve_one(method, ident, series_uid, sink)
        total = RetrieveCounts()
        for start in range(0, len(sop_uids), UID_BATCH):
            batch = list(sop_uids[start : start + UID_BATCH])
            ident = _identifier(
                "IMAGE",
                StudyInstanceUID=study_uid,
                SeriesInstanceUID=series_uid,
                SOPInstanceUID=batch if len(batch) > 1 else batch[0],
            )
            counts = self._retrieve_one(method, ident, series_uid, sink)
            total.completed += counts.completed
            total.failed += counts.failed
            total.warning += counts.warning
            total.failed_sop_uids += counts.failed_sop_uids
            if counts.status not in (0x0000, 0xB000):
                total.status, total.comment = counts.status, counts.comment
        return total

    def _retrieve_one(
        self, method: str, ident: Dataset, series_uid: str, sink: StudySink
    ) -> RetrieveCounts:
        store_errors: list[BaseException] = []

        def on_store(event: evt.Event) -> int:
            try:
                return sink.receive(event.encoded_dataset())
            except Exception as err:  # the artifact store failing: stop, report after
                store_errors.append(err)
                return 0xA700  # Refused: out of resources

        if method == "c-get":
            model = STUDY_ROOT_GET
            storage = retrieve_storage_contexts()
            contexts = [build_context(model), *storage]
            roles = [build_role(str(cx.abstract_syntax), scp_role=True) for cx in storage]
            # one role item per SOP class is enough (and some peers refuse duplicates)
            unique_roles = list({r.sop_class_uid: r for r in roles}.values())
            with self._association(
                contexts, "C-GET", roles=unique_roles, handlers=[(evt.EVT_C_STORE, on_store)]
            ) as assoc:
                responses = assoc.send_c_get(ident, model)
                counts = self._final(responses, "C-GET", series_uid)
        else:
            model = STUDY_ROOT_MOVE
            with self._association([build_context(model)], "C-MOVE") as assoc:
                responses = assoc.send_c_move(ident, self.config.move_destination, model)
                counts = self._final(responses, "C-MOVE", series_uid)
        if store_errors:
            raise store_errors[0]
        return counts

    def _final(
        self, responses: Iterator[tuple[Dataset, Dataset | None]], what: str, series_uid: str
    ) -> RetrieveCounts:
        counts = RetrieveCounts()
        for status, ident in responses:
            if "Status" not in status:
                raise PacsUnavailable(
                    f"PACS {self.node.describe()} went away during the {what} of series "
                    f"{series_uid}",
                    hint="the retrieve resumes with what is missing; check the PACS if it "
                    "keeps happening",
                )
            code = int(status.Status)
            if code in _PENDING:
                continue
            counts.status = code
            counts.comment = str(status.get("ErrorComment", "") or "")
            counts.completed = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
            counts.failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
            counts.warning = int(status.get("NumberOfWarningSuboperations", 0) or 0)
            if ident is not None and "FailedSOPInstanceUIDList" in ident:
                failed = ident.FailedSOPInstanceUIDList
                counts.failed_sop_uids = [str(u) for u in (failed if failed else [])]
        return counts

    # -- C-STORE ---------------------------------------------------------------------------

    def store(
        self, paths: Sequence[Path], progress: Callable[[int], None] | None = None
    ) -> StoreReport:
        """C-STORE files to the node over one association; returns what was refused."""
        report = StoreReport()
        headers: list[tuple[Path, str, str]] = []
        for path in paths:
            try:
                ds = dcmread(path, stop_before_pixels=True)
                headers.append((path, str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)))
            except Exception as err:
                report.failed.append((str(path), f"not a readable DICOM file: {err}"))
        pairs = sorted({(cls, ts) for _, cls, ts in headers})
        for start in range(0, len(pairs), 120):  # at most 128 contexts per association
            chunk = pairs[start : start + 120]
            # the file goes out as it is, so each context offers exactly its transfer syntax
            contexts = [build_context(cls, ts) for cls, ts in chunk]
            wanted = set(chunk)
            with self._association(contexts, "C-STORE") as assoc:
                for path, cls, ts in headers:
                    if (cls, ts) not in wanted:
                        continue
                    status = assoc.send_c_store(path)
                    code = int(status.Status) if "Status" in status else -1
                    if code == -1:
                        raise PacsUnavailable(
                            f"PACS {self.node.describe()} went away during C-STORE "
                            f"after {report.sent} instances"
                        )
                    if code == 0x0000 or 0xB000 <= code <= 0xB0FF:
                        report.sent += 1
                        report.bytes_sent += path.stat().st_size
                        if progress is not None:
                            progress(report.sent)
                    else:
                        comment = status.get("ErrorComment", "")
                        report.failed.append(
                            (str(path), f"status 0x{code:04X}{f' ({comment})' if comment else ''}")
                        )
        if report.failed and not report.sent:
            raise StoreFailed(
                f"PACS {self.node.describe()} took none of {len(paths)} instances; first "
                f"refusal: {report.failed[0][1]}",
                hint="check that the PACS accepts C-STORE from radpipe's AE title",
            )
        return report
