"""Corpus mode: many studies for training, in parallel, deterministic per seed.

Case ``i`` of a corpus with base seed ``s`` is exactly ``generate_study(kind, …, seed=s + i)``,
so a corpus can be grown, split or regenerated case by case. Vendors rotate through the four
vendors unless one is pinned. A ``corpus.json`` index lists every case and its truth summary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from radpipe.synth.protocols import VENDORS

APP_KINDS: dict[str, tuple[str, ...]] = {
    "glioma": ("mr-glioma",),
    "metastasis": ("mr-metastasis",),
    "hemorrhage": ("ct-hemorrhage", "ct-normal"),
    "normal": ("mr-normal", "ct-normal"),
}


@dataclass(frozen=True)
class CorpusCase:
    """One case to generate."""

    index: int
    kind: str
    seed: int
    vendor: str
    out_dir: Path


def plan_corpus(
    app: str,
    n: int,
    out_dir: Path,
    *,
    seed: int = 0,
    vendor: str | None = None,
    normal_fraction: float = 0.2,
) -> list[CorpusCase]:
    """The cases of a corpus. For ``hemorrhage`` a fraction of the cases are normal heads."""
    if app not in APP_KINDS:
        raise ValueError(f"unknown app {app!r}; choose one of {', '.join(APP_KINDS)}")
    if n < 1:
        raise ValueError("n must be >= 1")
    kinds = APP_KINDS[app]
    cases = []
    for i in range(n):
        if len(kinds) > 1 and app == "hemorrhage":
            # deterministic interleave: every k-th case is normal
            k = max(2, round(1 / normal_fraction)) if normal_fraction > 0 else 0
            kind = kinds[1] if k and i % k == k - 1 else kinds[0]
        else:
            kind = kinds[i % len(kinds)]
        v = vendor or VENDORS[i % len(VENDORS)]
        cases.append(CorpusCase(i, kind, seed + i, v, Path(out_dir) / f"case_{i:05d}"))
    return cases


def _run_case(case: CorpusCase, small: bool, parallel: bool | None) -> dict[str, object]:
    from radpipe.synth.study import generate_study

    truth = generate_study(
        case.kind, case.out_dir, seed=case.seed, vendor=case.vendor, small=small, parallel=parallel
    )
    return {
        "index": case.index,
        "path": case.out_dir.name,
        "kind": case.kind,
        "seed": case.seed,
        "vendor": case.vendor,
        "study_instance_uid": truth.study_instance_uid,
        "accession": truth.accession,
        "volumes_cm3": truth.volumes_cm3,
        "lesion_count": truth.lesion_count,
        "hemorrhage_subtypes": truth.hemorrhage_subtypes,
    }


def generate_corpus(
    cases: list[CorpusCase],
    *,
    workers: int | None = None,
    small: bool = False,
    on_done: Callable[[dict[str, object]], None] | None = None,
) -> list[dict[str, object]]:
    """Generate ``cases`` with a process pool; returns the index rows sorted by case index.

    Finished cases (with a truth.json) are skipped, so an interrupted corpus resumes.
    """
    from radpipe.synth.anatomy import base_anatomy

    base_anatomy()  # build the disk cache once before the workers race for it
    workers = workers or max(1, min(len(cases), os.cpu_count() or 1))
    rows: list[dict[str, object]] = []
    todo = []
    for case in cases:
        truth_file = case.out_dir / "truth" / "truth.json"
        if truth_file.exists():
            row = _existing_row(case, truth_file)
            rows.append(row)
            if on_done:
                on_done(row)
        else:
            todo.append(case)
    if workers == 1:
        for case in todo:
            row = _run_case(case, small, parallel=None)
            rows.append(row)
            if on_done:
                on_done(row)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            # each worker writes its own DICOM: the pool already keeps every core busy
            futures = [pool.submit(_run_case, c, small, False) for c in todo]
            for fut in as_completed(futures):
                row = fut.result()
                rows.append(row)
                if on_done:
                    on_done(row)
    rows.sort(key=lambda r: int(r["index"]))  # type: ignore[call-overload]
    return rows


def _existing_row(case: CorpusCase, truth_file: Path) -> dict[str, object]:
    data = json.loads(truth_file.read_text(encoding="utf-8"))
    return {
        "index": case.index,
        "path": case.out_dir.name,
        "kind": case.kind,
        "seed": case.seed,
        "vendor": case.vendor,
        "study_instance_uid": data["study_instance_uid"],
        "accession": data["accession"],
        "volumes_cm3": data["volumes_cm3"],
        "lesion_count": data["lesion_count"],
        "hemorrhage_subtypes": data["hemorrhage_subtypes"],
    }


def write_index(out_dir: Path, app: str, seed: int, rows: list[dict[str, object]]) -> Path:
    """Write ``corpus.json`` (app, base seed, one row per case)."""
    path = Path(out_dir) / "corpus.json"
    doc = {"app": app, "seed": seed, "n": len(rows), "cases": rows}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def iter_cases(out_dir: Path) -> Iterator[Path]:
    """Study directories of a corpus, in index order."""
    yield from sorted(p for p in Path(out_dir).glob("case_*") if p.is_dir())
