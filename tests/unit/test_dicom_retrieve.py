"""The study retriever's completeness check, resume and parallelism, against a fake PACS."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from radpipe.config import PacsNodeConfig
from radpipe.dicom.errors import PacsUnavailable, RetrieveIncomplete
from radpipe.dicom.instances import StudySink
from radpipe.dicom.models import RetrieveCounts, SeriesMatch
from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.retrieve import SeriesFetcher, StudyRetriever
from tests.fixtures.dicom_studies import TinyStudy, make_study


class FakePacs:
    """Serves a tiny study; can drop the link after some instances, or never send some."""

    def __init__(
        self,
        study: TinyStudy,
        *,
        break_after: int | None = None,
        unsendable: set[str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.node = PacsNode("fake", PacsNodeConfig())
        self.study = study
        self.files = {p.stem: p for p in study.files}
        self.break_after = break_after
        self.unsendable = unsendable or set()
        self.delay = delay
        self.sent: list[str] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def series(self) -> list[SeriesMatch]:
        return [
            SeriesMatch(uid, "MR", i + 1, f"S{i}", len(self.study.by_series[uid]))
            for i, uid in enumerate(self.study.series_uids)
        ]

    def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
        return [p.stem for p in self.study.by_series[series_uid]]

    @contextmanager
    def retrieval(self, study_uid: str, sink: StudySink) -> Iterator[SeriesFetcher]:
        def fetch(series_uid: str, uids: Sequence[str] | None) -> RetrieveCounts:
            with self._lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            try:
                wanted = uids or self.find_instances(study_uid, series_uid)
                counts = RetrieveCounts()
                for sop in wanted:
                    time.sleep(self.delay)
                    if self.break_after is not None and len(self.sent) >= self.break_after:
                        self.break_after = None  # the link drops once
                        raise PacsUnavailable("the fake PACS went away")
                    if sop in self.unsendable:
                        counts.failed += 1
                        counts.status = 0xB000
                        continue
                    self.sent.append(sop)
                    sink.receive(self.files[sop].read_bytes())
                    counts.completed += 1
                return counts
            finally:
                with self._lock:
                    self.active -= 1

        yield fetch


@pytest.fixture
def study(tmp_path: Path) -> TinyStudy:
    return make_study(tmp_path / "s", accession="R1", series=(("A", 6), ("B", 4), ("C", 3)))


def _retriever(pacs: FakePacs, **kw: object) -> StudyRetriever:
    return StudyRetriever(pacs, backoff_seconds=0.0, **kw)  # type: ignore[arg-type]


def test_link_lost_mid_transfer_resumes_with_only_the_missing(study: TinyStudy) -> None:
    pacs = FakePacs(study, break_after=4)
    sink = StudySink(lambda k, d: None, study.study_uid)
    outcomes = _retriever(pacs, parallel=1).retrieve(study.study_uid, pacs.series(), sink)
    assert sink.instance_count == study.instance_count
    assert all(o.complete for o in outcomes)
    assert len(pacs.sent) == study.instance_count  # nothing was sent twice
    assert len(set(pacs.sent)) == len(pacs.sent)
    assert sink.duplicates == 0


def test_missing_instances_fail_naming_the_series(study: TinyStudy) -> None:
    lost = study.by_series[study.series_uids[1]][0].stem
    pacs = FakePacs(study, unsendable={lost})
    sink = StudySink(lambda k, d: None, study.study_uid)
    with pytest.raises(RetrieveIncomplete) as info:
        _retriever(pacs, attempts=3).retrieve(study.study_uid, pacs.series(), sink)
    err = info.value
    assert err.retryable
    assert err.series_instance_uid == study.series_uids[1]
    assert (err.expected, err.received) == (4, 3)
    assert "series 2 'S1'" in str(err) and "3 of 4 instances" in str(err)
    assert "after 3 attempts" in str(err)
    # everything else arrived, each instance once
    assert sink.instance_count == study.instance_count - 1
    assert len(pacs.sent) == len(set(pacs.sent))


def test_pacs_that_stays_away_raises_unavailable(study: TinyStudy) -> None:
    class Down(FakePacs):
        @contextmanager
        def retrieval(self, study_uid: str, sink: StudySink) -> Iterator[SeriesFetcher]:
            def fetch(series_uid: str, uids: Sequence[str] | None) -> RetrieveCounts:
                raise PacsUnavailable("connection refused")

            yield fetch

        def find_instances(self, study_uid: str, series_uid: str) -> list[str]:
            raise PacsUnavailable("connection refused")

    pacs = Down(study)
    with pytest.raises(PacsUnavailable, match="connection refused"):
        _retriever(pacs).retrieve(study.study_uid, pacs.series(), StudySink(lambda k, d: None))


def test_series_are_retrieved_in_parallel(study: TinyStudy) -> None:
    pacs = FakePacs(study, delay=0.02)
    sink = StudySink(lambda k, d: None, study.study_uid)
    _retriever(pacs, parallel=3).retrieve(study.study_uid, pacs.series(), sink)
    assert pacs.max_active == 3
    assert sink.instance_count == study.instance_count
