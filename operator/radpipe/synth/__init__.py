"""Synthetic radiology studies: DICOM with vendor-realistic headers plus ground truth.

Public API::

    from radpipe.synth import generate_study, StudyTruth, sample_series_headers
    truth = generate_study("mr-glioma", Path("out"), seed=1, vendor="siemens")

Heavy dependencies (SimpleITK, nilearn) load on first use, so importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from radpipe.synth.protocols import (
    SERIES_CLASSES,
    VENDORS,
    sample_scanner,
    sample_series_headers,
    sample_series_plan,
)
from radpipe.synth.truth import STUDY_KINDS, LesionTruth, SeriesTruth, StudyTruth

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "SERIES_CLASSES",
    "STUDY_KINDS",
    "VENDORS",
    "LesionTruth",
    "SeriesTruth",
    "StudyTruth",
    "generate_study",
    "sample_scanner",
    "sample_series_headers",
    "sample_series_plan",
]


def generate_study(
    kind: str,
    out_dir: Path,
    *,
    seed: int = 0,
    vendor: str | None = None,
    patient_id: str | None = None,
    accession: str | None = None,
    patient_name: str | None = None,
    small: bool = False,
    progress: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> StudyTruth:
    """Write a synthetic study (DICOM + truth) under ``out_dir``; see :mod:`radpipe.synth.study`."""
    from radpipe.synth.study import generate_study as _generate

    return _generate(
        kind,
        out_dir,
        seed=seed,
        vendor=vendor,
        patient_id=patient_id,
        accession=accession,
        patient_name=patient_name,
        small=small,
        progress=progress,
        **kwargs,
    )
