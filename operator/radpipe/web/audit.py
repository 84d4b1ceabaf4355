"""The audit log: who did what to which job, and when.

One JSON document per line, appended. It records every job request, every view of a job
page or report, reviews, cancels, delivery retries and sign-ins. Accession numbers appear
only as :func:`radpipe.logs.accession_hash`; the job uid leads to the rest for those allowed
to look. The application log never carries patient data; this file is the security record.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from radpipe.api.models import utcnow
from radpipe.logs import accession_hash


class AuditLog:
    """Appends audit events to a JSON-lines file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(
        self,
        who: str,
        action: str,
        *,
        job: str | None = None,
        accession: str | None = None,
        outcome: str = "ok",
        client: str | None = None,
        **details: Any,
    ) -> None:
        """Append one event: ``who`` did ``action`` (e.g. ``report.view``) on ``job``."""
        event: dict[str, Any] = {"time": utcnow().isoformat(), "who": who, "action": action}
        if job is not None:
            event["job"] = job
        if accession is not None:
            event["accession"] = accession_hash(accession)
        event["outcome"] = outcome
        if client:
            event["client"] = client
        event.update(details)
        line = json.dumps(event, sort_keys=True) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)

    def read(self) -> list[dict[str, Any]]:
        """Every event so far (for the admin view and tests)."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
