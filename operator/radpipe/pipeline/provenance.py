"""Provenance: what software, on what machine, produced a stage's outputs."""

from __future__ import annotations

import platform
import sys
from functools import cache
from importlib import metadata
from typing import Any

import radpipe

#: Libraries whose versions matter for reproducing a result, recorded when installed.
TRACKED_PACKAGES = (
    "numpy",
    "pydicom",
    "pynetdicom",
    "highdicom",
    "SimpleITK",
    "nipype",
    "onnxruntime",
    "catboost",
)


@cache
def software_versions() -> dict[str, str]:
    """Versions of radpipe, Python and the tracked libraries that are installed."""
    versions = {"radpipe": radpipe.__version__, "python": sys.version.split()[0]}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def base_provenance(stage: str, stage_version: str, attempt: int) -> dict[str, Any]:
    """The provenance every stage result carries; stages add their own keys to it."""
    return {
        "stage": stage,
        "stageVersion": stage_version,
        "attempt": attempt,
        "software": software_versions(),
        "host": platform.node(),
        "platform": platform.platform(terse=True),
    }
