"""Provenance of a preprocessing run: inputs, software, parameters, transforms, timings, memory.

``provenance.json`` is enough to say exactly how an ``input.npy`` was made and to make it
again: which series (and instances) went in, which versions of radpipe, nipype,
SimpleITK, dcm2niix and the template, every parameter, every transform as a matrix, and
the checksum of each output array. Running twice on the same input gives the same arrays
(see ``tests/integration/test_preprocess_mr.py``); timings and memory naturally differ.
"""

from __future__ import annotations

import hashlib
import os
import resource
import threading
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radpipe.pipeline.provenance import software_versions

#: Libraries beyond radpipe's tracked set whose versions change preprocessing output.
EXTRA_PACKAGES = ("scipy", "nibabel", "nilearn")

#: How the ``transforms/<role>_to_mni.tfm`` files are to be read.
TRANSFORM_DIRECTION = (
    "ITK resampling convention: maps a point of the model grid (MNI152 space, LPS mm as ITK "
    "uses it) to the corresponding point of the native series (DICOM patient LPS mm). "
    "native→grid: sitk.Resample(native, grid_reference, tfm); grid→native: "
    "sitk.Resample(grid_image, native_reference, tfm.GetInverse()). Volumes on the grid "
    "are in template mm³; multiply by |det| of the linear part for native (patient) mm³."
)


def versions(dcm2niix: str | None = None) -> dict[str, str]:
    """radpipe's tracked versions plus the preprocessing-specific ones."""
    out = dict(software_versions())
    for package in EXTRA_PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if dcm2niix is not None:
        out["dcm2niix"] = dcm2niix
    return out


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_array(array: NDArray[Any]) -> str:
    """Hex SHA-256 of an array's dtype, shape and bytes (identical arrays ⇔ identical hash)."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def instances_fingerprint(sop_instance_uids: list[str]) -> str:
    """One hash over a series' SOP Instance UIDs (order-independent)."""
    return hashlib.sha256("\n".join(sorted(sop_instance_uids)).encode()).hexdigest()


def matrix_list(matrix: NDArray[np.float64]) -> list[list[float]]:
    """A 4×4 matrix as nested lists (full float precision)."""
    return [[float(v) for v in row] for row in matrix]


def _rss_bytes() -> int:
    """Resident memory of this process and all its descendants (nipype workers, dcm2niix)."""
    try:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:  # the process ended while we looked
                continue
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            rss[pid] = int(fields[21]) * resource.getpagesize()
        tree, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            parent = frontier.pop()
            children = [p for p, pp in parents.items() if pp == parent and p not in tree]
            tree.update(children)
            frontier.extend(children)
        return sum(rss.get(p, 0) for p in tree)
    except (OSError, ValueError, IndexError):  # not Linux: fall back to the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Samples the resident memory of this process tree while the block runs.

    ``ru_maxrss`` would give the process's lifetime peak, which in the local runner
    includes earlier stages, and misses nipype's worker processes; sampling the tree gives
    the peak of this stage alone, workers included.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def peak_mb(self) -> float:
        """Peak resident memory seen, MiB."""
        return round(self.peak / 2**20, 1)

    @staticmethod
    def children_peak_mb() -> float:
        """Largest resident memory of any finished child process, MiB."""
        return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
