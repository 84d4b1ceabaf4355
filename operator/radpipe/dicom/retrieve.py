"""Retrieving a whole study: series in parallel, each checked for completeness and resumed.

Completeness: the PACS reports how many instances each series holds (C-FIND
NumberOfSeriesRelatedInstances, or the QIDO-RS equivalent). After the first series-level
retrieve, a series that is short — because sub-operations failed, or the PACS went away
mid-transfer — is listed instance by instance (C-FIND / QIDO-RS at IMAGE level) and only
the SOP instances that have not arrived are requested again. What already arrived is never
fetched twice. After ``attempts`` tries a short series fails with a message that names it.

Resuming happens inside one call (one stage attempt): the pipeline executor clears a stage's
outputs before each new attempt, so a later attempt starts from scratch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from radpipe.dicom.errors import AssociationRejected, PacsError, PacsUnavailable, RetrieveIncomplete
from radpipe.dicom.instances import StudySink
from radpipe.dicom.models import RetrieveCounts, SeriesMatch, StoreReport, StudyMatch
from radpipe.dicom.nodes import PacsNode

log = logging.getLogger(__name__)

#: Retrieves one series, or the listed SOP instances of it, into the sink.
SeriesFetcher = Callable[[str, Sequence[str] | None], RetrieveCounts]

#: Final statuses that say the request itself was refused (not worth repeating as is).
_MOVE_DESTINATION_UNKNOWN = 0xA801


class PacsClient(Protocol):
    """What both transports (DIMSE, DICOMweb) offer."""

    node: PacsNode

    def echo(self) -> float:
        """Check the node answers; returns the round trip in seconds."""
        ...

    def find_studies(
        self, *, accession: str | None = None, study_uid: str | None = None
    ) -> list[StudyMatch]:
        """Studies by accession number and/or StudyInstanceUID."""
        ...

    def find_series(self, study_uid: str) -> list[SeriesMatch]:
        """Series of a study with the instance counts the node reports."""
        ...

    def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
        """SOP Instance UIDs of a series."""
        ...

    def retrieval(self, study_uid: str, sink: StudySink) -> AbstractContextManager[SeriesFetcher]:
        """A context in which series of ``study_uid`` can be retrieved into ``sink``."""
        ...

    def store(
        self, paths: Sequence[Path], progress: Callable[[int], None] | None = None
    ) -> StoreReport:
        """Send instances to the node."""
        ...


@dataclass
class SeriesOutcome:
    """How the retrieve of one series went."""

    series: SeriesMatch
    expected: int
    received: int
    corrupt: int
    attempts: int

    @property
    def complete(self) -> bool:
        """Whether every instance the PACS holds arrived (usable or corrupt)."""
        return self.received >= self.expected


def describe_series(series: SeriesMatch) -> str:
    """``series 3 'AX FLAIR' (UID)`` for messages."""
    number = "?" if series.series_number is None else str(series.series_number)
    desc = f" {series.series_description!r}" if series.series_description else ""
    return f"series {number}{desc} ({series.series_instance_uid})"


class StudyRetriever:
    """Retrieves the series of one study into a sink, in parallel, resuming what is missing."""

    def __init__(
        self,
        client: PacsClient,
        *,
        parallel: int = 4,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.parallel = max(1, parallel)
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep

    def retrieve(
        self, study_uid: str, series: Sequence[SeriesMatch], sink: StudySink
    ) -> list[SeriesOutcome]:
        """Retrieve every series; raise the first failure after all series have been tried.

        Raises :class:`RetrieveIncomplete` (a series stayed short), :class:`PacsUnavailable`
        (the node stayed away) or another :class:`PacsError`.
        """
        # biggest first, so the parallel associations finish together
        order = sorted(series, key=lambda s: -(s.num_instances or 0))
        outcomes: dict[str, SeriesOutcome] = {}
        errors: list[PacsError] = []
        with self.client.retrieval(study_uid, sink) as fetch:
            workers = min(self.parallel, max(1, len(order)))
            with ThreadPoolExecutor(workers, thread_name_prefix="radpipe-retrieve") as pool:
                futures = [(s, pool.submit(self._series, fetch, study_uid, s, sink)) for s in order]
                for s, future in futures:
                    try:
                        outcomes[s.series_instance_uid] = future.result()
                    except PacsError as err:
                        errors.append(err)
        if errors:
            rejected = [e for e in errors if isinstance(e, AssociationRejected)]
            first = rejected[0] if rejected else errors[0]
            if len(errors) > 1:
                first.message += f" (and {len(errors) - 1} more series failed)"
            raise first
        return [outcomes[s.series_instance_uid] for s in series]

    def _series(
        self, fetch: SeriesFetcher, study_uid: str, series: SeriesMatch, sink: StudySink
    ) -> SeriesOutcome:
        uid = series.series_instance_uid
        expected = series.num_instances
        last_error: PacsError | None = None
        last_counts: RetrieveCounts | None = None
        attempt = 0
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self._sleep(self.backoff_seconds * 2 ** (attempt - 2))
            try:
                have = sink.received(uid)
                if attempt == 1 and not have:
                    last_counts = fetch(uid, None)
                else:
                    listing = self.client.find_instances(study_uid, uid)
                    expected = len(listing)
                    missing = [sop for sop in listing if sop not in have]
                    if not missing:
                        break
                    log.info(
                        "%s: resuming, %d of %d instances missing (attempt %d/%d)",
                        describe_series(series),
                        len(missing),
                        expected,
                        attempt,
                        self.attempts,
                    )
                    last_counts = self._fetch_missing(fetch, uid, missing, sink)
                last_error = None
            except PacsUnavailable as err:
                last_error = err
                log.warning(
                    "%s: %s (attempt %d/%d)",
                    describe_series(series),
                    err.message,
                    attempt,
                    self.attempts,
                )
                continue
            if last_counts is not None and last_counts.status == _MOVE_DESTINATION_UNKNOWN:
                raise AssociationRejected(
                    f"PACS {self.client.node.describe()} does not know the C-MOVE destination "
                    f"{self.client.node.config.move_destination!r}",
                    hint="register radpipe's AE title, host and storage_port at the PACS "
                    "(or use retrieve: c-get)",
                )
            if expected is None:  # the PACS did not report a count: list the instances
                expected = len(self.client.find_instances(study_uid, uid))
            if len(sink.received(uid)) >= expected:
                break
        received = sink.received(uid)
        state = sink.series.get(uid)
        corrupt = len(state.corrupt) if state else 0
        outcome = SeriesOutcome(series, expected or 0, len(received), corrupt, attempt)
        if outcome.complete and last_error is None:
            return outcome
        if last_error is not None and not received:
            last_error.message += f" (retrieving {describe_series(series)}, {attempt} attempts)"
            raise last_error
        said = ""
        if last_counts is not None and last_counts.status not in (0x0000,):
            comment = f", {last_counts.comment}" if last_counts.comment else ""
            said = f"; the PACS reported status 0x{last_counts.status:04X}{comment}"
            if last_counts.failed:
                said += f" with {last_counts.failed} failed sub-operations"
        elif last_error is not None:
            said = f"; last error: {last_error.message}"
        raise RetrieveIncomplete(
            f"{describe_series(series)} is incomplete: {len(received)} of {expected} "
            f"instances arrived after {attempt} attempts{said}",
            hint="the PACS could not send the missing instances (its log says why); the job "
            "retries later — if it persists, check the series on the PACS",
            series_instance_uid=uid,
            expected=expected or 0,
            received=len(received),
        )

    def _fetch_missing(
        self, fetch: SeriesFetcher, series_uid: str, missing: list[str], sink: StudySink
    ) -> RetrieveCounts:
        before = len(sink.received(series_uid))
        counts = fetch(series_uid, missing)
        arrived = len(sink.received(series_uid)) - before
        if arrived >= len(missing) or len(missing) == 1 or counts.status == 0x0000:
            return counts
        # Some peers stop a multi-instance retrieve at the first instance they cannot send:
        # ask for the rest one by one, so only the unsendable ones stay missing.
        have = sink.received(series_uid)
        for sop in missing:
            if sop not in have:
                single = fetch(series_uid, [sop])
                if single.status != 0x0000:
                    counts = single
        return counts
