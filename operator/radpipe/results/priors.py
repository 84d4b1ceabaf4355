"""Comparison with priors: change against the most recent earlier result of the patient."""

from __future__ import annotations

from collections.abc import Sequence

from radpipe.results.schema import Change, PriorComparison, ResultsDocument, load_document
from radpipe.results.warehouse import ResultRecord, Warehouse

#: The measurement plotted over time, per app.
TREND_MEASURE = {"glioma": "WT", "metastasis": "totalVolume", "hemorrhage": "bleedVolume"}


def _is_earlier(row: ResultRecord, doc: ResultsDocument) -> bool:
    if row.job_uid == doc.job or row.study_instance_uid == doc.study.study_instance_uid:
        return False
    if row.study_date and doc.study.study_date:
        return row.study_date < doc.study.study_date
    return True  # undated: trust the order results were stored in


def changes(current: ResultsDocument, prior: ResultsDocument) -> list[Change]:
    """Absolute and relative change of every measurement both results have."""
    before = {m.name: m for m in prior.measurements}
    out = []
    for m in current.measurements:
        old = before.get(m.name)
        if old is None or m.unit != old.unit:
            continue
        absolute = m.value - old.value
        percent = 100.0 * absolute / old.value if old.value else None
        out.append(
            Change(
                name=m.name,
                current=m.value,
                prior=old.value,
                absolute=round(absolute, 4),
                percent=None if percent is None else round(percent, 2),
                unit=m.unit,
            )
        )
    return out


def compare(doc: ResultsDocument, history: Sequence[ResultRecord]) -> PriorComparison | None:
    """The comparison against the most recent earlier result in ``history`` (oldest first)."""
    earlier = [row for row in history if _is_earlier(row, doc)]
    if not earlier:
        return None
    latest = earlier[-1]
    prior_doc = load_document(latest.document)
    measure = TREND_MEASURE.get(doc.app, "")
    trend = []
    for row in earlier:
        value = next(
            (m["value"] for m in row.document.get("measurements", []) if m["name"] == measure), None
        )
        if value is not None:
            trend.append({"date": row.study_date, "value": value, "name": measure})
    current = doc.measurement(measure)
    if current is not None:
        trend.append({"date": doc.study.study_date, "value": current.value, "name": measure})
    return PriorComparison(
        prior_job=latest.job_uid,
        prior_study_date=latest.study_date or None,
        prior_accession=latest.accession or None,
        changes=changes(doc, prior_doc),
        trend=trend,
    )


def find_prior(warehouse: Warehouse, doc: ResultsDocument) -> PriorComparison | None:
    """Look up the patient's earlier results for the same app and compare."""
    if not doc.study.patient_id:
        return None
    return compare(doc, warehouse.history(doc.study.patient_id, doc.app))
