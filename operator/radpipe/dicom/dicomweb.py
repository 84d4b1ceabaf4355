"""The DICOMweb transport, on dicomweb-client: QIDO-RS, WADO-RS and STOW-RS.

Authentication: HTTP basic (``username``/``password``) or a bearer ``token`` from the node's
configuration. Retrieval streams the multipart WADO-RS answer of a series part by part into
the sink; instances are asked for in the transfer syntax they are stored in (``*``), so
compressed images are not decompressed on the way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset

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
from radpipe.dicom.retrieve import SeriesFetcher
from radpipe.dicom.tls import requests_options

T = TypeVar("T")

#: Ask for instances as stored (no server-side transcoding).
_AS_STORED = (("application/dicom", "*"),)
#: Instances per STOW-RS request (bounds memory and request size).
_STOW_BATCH = 50

_STUDY_FIELDS = [
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "PatientID",
    "PatientName",
]
_SERIES_FIELDS = ["Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances"]


def encode(ds: Dataset) -> bytes:
    """A dataset as DICOM Part-10 bytes (preamble, file meta, dataset)."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class DicomwebClient:
    """A PACS node spoken to over DICOMweb."""

    def __init__(self, node: PacsNode) -> None:
        self.node = node
        self.config = node.config
        self._local = threading.local()

    @property
    def _client(self) -> DICOMwebClient:
        """One dicomweb-client (and HTTP session) per thread: sessions are not shared."""
        client: DICOMwebClient | None = getattr(self._local, "client", None)
        if client is None:
            cfg = self.config
            session = requests.Session()
            session.verify, session.cert = requests_options(cfg.tls, cfg.verify_tls)
            if cfg.username:
                password = cfg.password.get_secret_value() if cfg.password else ""
                session.auth = (cfg.username, password)
            headers = (
                {"Authorization": f"Bearer {cfg.token.get_secret_value()}"} if cfg.token else None
            )
            client = DICOMwebClient(
                url=str(cfg.dicomweb_url).rstrip("/"),
                session=session,
                headers=headers,
                timeout=cfg.timeout_seconds,
            )
            client.set_http_retry_params(retry=False)  # StudyRetriever owns retrying
            self._local.client = client
        return client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one request, turning transport errors into :class:`PacsError`s."""
        try:
            return fn()
        except PacsError:
            raise
        except requests.HTTPError as err:
            raise self._http_error(err, what) from err
        except (requests.ConnectionError, requests.Timeout) as err:
            raise PacsUnavailable(
                f"PACS {self.node.describe()} did not answer {what} ({type(err).__name__})",
                hint=f"check that the DICOMweb server is running at {self.config.dicomweb_url}; "
                f"`radpipe pacs echo {self.node.name}` tests the connection",
            ) from err
        except requests.RequestException as err:
            raise PacsUnavailable(
                f"PACS {self.node.describe()}: {what} failed ({type(err).__name__}: {err})"
            ) from err

    def _http_error(self, err: requests.HTTPError, what: str) -> PacsError:
        code = err.response.status_code if err.response is not None else 0
        node = self.node.describe()
        if code in (401, 403):
            return AssociationRejected(
                f"PACS {node} refused {what}: HTTP {code} (authentication/authorization)",
                hint=f"check pacs.{self.node.name}.username/password or token",
            )
        if code in (408, 429) or code >= 500:
            return PacsUnavailable(
                f"PACS {node} answered {what} with HTTP {code}",
                hint="the server is busy or failing; the job retries by itself",
            )
        return QueryFailed(
            f"PACS {node} answered {what} with HTTP {code}",
            hint=f"check pacs.{self.node.name}.dicomweb_url (the DICOMweb root, e.g. "
            "http://host/dicom-web)",
        )

    # -- QIDO-RS ----------------------------------------------------------------------------

    def echo(self) -> float:
        """A minimal QIDO-RS query; returns the round trip in seconds."""
        start = time.perf_counter()
        self._call("a QIDO-RS query", lambda: self._client.search_for_studies(limit=1))
        return time.perf_counter() - start

    def find_studies(
        self, *, accession: str | None = None, study_uid: str | None = None
    ) -> list[StudyMatch]:
        """Studies by accession number and/or StudyInstanceUID (QIDO-RS)."""
        filters: dict[str, Any] = {}
        if accession:
            filters["AccessionNumber"] = accession
        if study_uid:
            filters["StudyInstanceUID"] = study_uid
        found = self._call(
            "the study query",
            lambda: self._client.search_for_studies(
                search_filters=filters, fields=_STUDY_FIELDS, get_remaining=True
            ),
        )
        matches = [StudyMatch.from_dataset(Dataset.from_json(item)) for item in found]
        return [m for m in matches if m.study_instance_uid]

    def find_series(self, study_uid: str) -> list[SeriesMatch]:
        """The series of a study, with instance counts (QIDO-RS)."""
        found = self._call(
            f"the series query of study {study_uid}",
            lambda: self._client.search_for_series(
                study_uid, fields=_SERIES_FIELDS, get_remaining=True
            ),
        )
        series = [SeriesMatch.from_dataset(Dataset.from_json(item)) for item in found]
        series = [s for s in series if s.series_instance_uid]
        return sorted(series, key=lambda s: (s.series_number or 0, s.series_instance_uid))

    def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
        """SOP Instance UIDs of a series (QIDO-RS)."""
        found = self._call(
            f"the instance query of series {series_uid}",
            lambda: self._client.search_for_instances(
                study_uid, series_uid, fields=["SOPInstanceUID"], get_remaining=True
            ),
        )
        uids = [Dataset.from_json(item).get("SOPInstanceUID") for item in found]
        return [str(u) for u in uids if u]

    # -- WADO-RS ----------------------------------------------------------------------------

    @contextmanager
    def retrieval(self, study_uid: str, sink: StudySink) -> Iterator[SeriesFetcher]:
        """Yield a function that retrieves a series (or listed instances) by WADO-RS."""
        yield lambda series, uids: self._retrieve(study_uid, series, sink, uids)

    def _retrieve(
        self, study_uid: str, series_uid: str, sink: StudySink, sop_uids: Sequence[str] | None
    ) -> RetrieveCounts:
        counts = RetrieveCounts()

        def take(ds: Dataset) -> None:
            if sink.receive(encode(ds)) == 0x0000:
                counts.completed += 1
            else:
                counts.failed += 1

        if not sop_uids:

            def whole_series() -> None:
                for ds in self._client.iter_series(study_uid, series_uid, media_types=_AS_STORED):
                    take(ds)

            self._call(f"the WADO-RS retrieve of series {series_uid}", whole_series)
            return counts
        for sop in sop_uids:
            try:
                ds = self._call(
                    f"the WADO-RS retrieve of instance {sop}",
                    lambda sop=sop: self._client.retrieve_instance(  # type: ignore[misc]
                        study_uid, series_uid, sop, media_types=_AS_STORED
                    ),
                )
            except QueryFailed as err:  # 404 and the like: this one instance cannot come
                counts.failed += 1
                counts.status, counts.comment = 0xC000, err.message
                continue
            take(ds)
        return counts

    # -- STOW-RS ----------------------------------------------------------------------------

    def store(
        self, paths: Sequence[Path], progress: Callable[[int], None] | None = None
    ) -> StoreReport:
        """Send files by STOW-RS, in batches; returns what the server refused."""
        report = StoreReport()
        for start in range(0, len(paths), _STOW_BATCH):
            batch: list[tuple[Path, Dataset]] = []
            for path in paths[start : start + _STOW_BATCH]:
                try:
                    batch.append((path, dcmread(path)))
                except Exception as err:
                    report.failed.append((str(path), f"not a readable DICOM file: {err}"))
            if not batch:
                continue
            answer = self._call(
                f"STOW-RS of {len(batch)} instances",
                lambda batch=batch: self._client.store_instances([ds for _, ds in batch]),  # type: ignore[misc]
            )
            refused = {
                str(item.get("ReferencedSOPInstanceUID", "")): int(item.get("FailureReason", 0))
                for item in (answer.get("FailedSOPSequence") or [])
            }
            for path, ds in batch:
                reason = refused.get(str(ds.SOPInstanceUID))
                if reason is None:
                    report.sent += 1
                    report.bytes_sent += path.stat().st_size
                    if progress is not None:
                        progress(report.sent)
                else:
                    report.failed.append((str(path), f"failure reason 0x{reason:04X}"))
        if report.failed and not report.sent:
            raise StoreFailed(
                f"PACS {self.node.describe()} took none of {len(paths)} instances; first "
                f"refusal: {report.failed[0][1]}",
                hint="check that the DICOMweb server accepts STOW-RS from radpipe",
            )
        return report
