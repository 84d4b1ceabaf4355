"""Logging set-up. Log lines carry job uid and stage, never patient names, MRNs or birth
dates; an accession number is logged only as a short hash (:func:`accession_hash`).
"""

from __future__ import annotations

import hashlib
import logging

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [job=%(job)s stage=%(stage)s] %(message)s"


class _JobTagDefaults(logging.Filter):
    """Fills the job/stage fields for records that do not carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in ("job", "stage"):
            if not hasattr(record, name):
                setattr(record, name, "-")
        return True


def setup_logging(level: str = "INFO") -> None:
    """Send radpipe's logs to stderr in one format, tagged with job and stage."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_JobTagDefaults())
    root = logging.getLogger("radpipe")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def accession_hash(accession: str) -> str:
    """A short, stable, non-reversible tag for an accession number, safe to log."""
    return "acc-" + hashlib.sha256(accession.encode()).hexdigest()[:10]
