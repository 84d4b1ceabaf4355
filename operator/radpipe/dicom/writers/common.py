"""What every output object shares: identities, series numbers, equipment, algorithm."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import highdicom as hd
from pydicom.dataset import Dataset

from radpipe import __version__
from radpipe.results.uids import derived_uid

MANUFACTURER = "radpipe"
#: Series numbers of the outputs, high so they sort after the acquired series.
SERIES_NUMBERS = {"seg": 9001, "sr": 9002, "pdf": 9003, "overlay": 9004}
SERIES_DESCRIPTIONS = {
    "seg": "radpipe {app} segmentation",
    "sr": "radpipe {app} measurements",
    "pdf": "radpipe {app} report",
    "overlay": "radpipe {app} overlay (not for diagnosis)",
}
#: Algorithm family code of AI models (DCM 113108 "Artificial Intelligence").
AI_FAMILY = hd.sr.CodedConcept("113108", "DCM", "Artificial Intelligence")


@dataclass(frozen=True)
class OutputInfo:
    """The job-level facts every output object needs."""

    job_uid: str
    app: str
    model_name: str
    model_version: str
    institution: str = ""
    department: str = ""
    content_datetime: datetime | None = None

    def series_uid(self, kind: str) -> str:
        """SeriesInstanceUID of output ``kind`` (seg, sr, pdf, overlay)."""
        return derived_uid(self.job_uid, kind, "series")

    def instance_uid(self, kind: str, number: int = 1) -> str:
        """SOPInstanceUID of instance ``number`` of output ``kind``."""
        return derived_uid(self.job_uid, kind, "instance", number)

    def series_number(self, kind: str) -> int:
        """SeriesNumber of output ``kind``."""
        return SERIES_NUMBERS[kind]

    def series_description(self, kind: str) -> str:
        """SeriesDescription of output ``kind``."""
        return SERIES_DESCRIPTIONS[kind].format(app=self.app)[:64]

    def algorithm(self) -> hd.AlgorithmIdentificationSequence:
        """AIR: which model made the result (name, version, family)."""
        return hd.AlgorithmIdentificationSequence(
            name=self.model_name[:64],
            family=AI_FAMILY,
            version=self.model_version[:64],
            source=MANUFACTURER,
        )

    @property
    def software_version(self) -> str:
        """SoftwareVersions of every object."""
        return f"radpipe {__version__}"


def fix_timestamps(ds: Dataset, when: datetime | None) -> None:
    """Pin the creation date/time attributes so remaking an object gives the same bytes."""
    if when is None:
        return
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    for prefix in ("Content", "Series", "InstanceCreation"):
        if f"{prefix}Date" in ds:
            setattr(ds, f"{prefix}Date", date)
        if f"{prefix}Time" in ds:
            setattr(ds, f"{prefix}Time", time)
