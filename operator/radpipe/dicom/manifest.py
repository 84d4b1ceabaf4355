"""The study manifest: what the fetch stage retrieved, in one JSON document.

Downstream stages read it instead of opening every instance: the series (UIDs, numbers,
descriptions, modality, counts, key header fields for the series classifier) and, per
series, the store keys of its instances in acquisition order. Corrupt instances and
series that arrived short are listed under ``problems``. No patient names or IDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from radpipe.dicom.instances import StoredInstance, StudySink
from radpipe.dicom.models import SeriesMatch, StudyMatch
from radpipe.dicom.retrieve import SeriesOutcome, describe_series

MANIFEST_VERSION = 1


def _order(instance: StoredInstance) -> tuple[int, float, str]:
    number = instance.instance_number if instance.instance_number is not None else 1 << 30
    position = instance.image_position[2] if instance.image_position else 0.0
    return (number, position, instance.sop_instance_uid)


def build_manifest(
    study: StudyMatch,
    series: Sequence[SeriesMatch],
    outcomes: Sequence[SeriesOutcome],
    sink: StudySink,
    *,
    node: str,
    transport: str,
    method: str,
    prefix: str = "",
) -> dict[str, Any]:
    """The manifest of a retrieved study.

    ``prefix`` is prepended to instance keys (the fetch stage's store prefix), so readers
    can open instances without knowing where the stage wrote them.
    """
    by_uid = {o.series.series_instance_uid: o for o in outcomes}
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    for match in series:
        uid = match.series_instance_uid
        state = sink.series.get(uid)
        outcome = by_uid.get(uid)
        instances = sorted(state.instances.values(), key=_order) if state else []
        corrupt = list(state.corrupt.values()) if state else []
        expected = outcome.expected if outcome else (match.num_instances or len(instances))
        for bad in corrupt:
            problems.append(
                f"{describe_series(match)}: corrupt instance {bad.sop_instance_uid or '?'} "
                f"({bad.reason})"
            )
        usable = len(instances) > 0 and not corrupt and len(instances) >= expected
        headers = dict(state.fields) if state else {}
        entries.append(
            {
                "series_instance_uid": uid,
                "series_number": match.series_number,
                "series_description": match.series_description,
                "modality": match.modality or headers.get("Modality", ""),
                "instance_count": len(instances),
                "expected_count": expected,
                "corrupt_count": len(corrupt),
                "complete": usable,
                "bytes": sum(i.size for i in instances),
                "headers": headers,
                "instances": [
                    {
                        "key": prefix + i.key,
                        "sop_instance_uid": i.sop_instance_uid,
                        "instance_number": i.instance_number,
                        "image_position": list(i.image_position) if i.image_position else None,
                    }
                    for i in instances
                ],
                "corrupt": [
                    {
                        "key": prefix + c.key,
                        "sop_instance_uid": c.sop_instance_uid,
                        "reason": c.reason,
                    }
                    for c in corrupt
                ],
            }
        )
    return {
        "manifest_version": MANIFEST_VERSION,
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "study_date": study.study_date,
        "study_time": study.study_time,
        "study_description": study.study_description,
        "modalities": sorted({e["modality"] for e in entries if e["modality"]}),
        "source": {"node": node, "transport": transport, "method": method},
        "series_count": len(entries),
        "instance_count": sum(e["instance_count"] for e in entries),
        "corrupt_count": sum(e["corrupt_count"] for e in entries),
        "bytes": sum(e["bytes"] for e in entries),
        "series": entries,
        "problems": problems,
    }
