"""Errors of the PACS client. Every message names the node and says what to do."""

from __future__ import annotations


class PacsError(Exception):
    """Base class: a PACS operation failed. ``hint`` says what a person can do about it."""

    #: Whether trying again later may succeed without anybody changing anything.
    retryable = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class NodeConfigError(PacsError):
    """The named node is not configured, or its configuration cannot work."""


class PacsUnavailable(PacsError):
    """The node could not be reached, refused us for now, or went away mid-operation."""

    retryable = True


class AssociationRejected(PacsError):
    """The node rejected the association permanently (AE titles, not allowed to connect)."""


class QueryFailed(PacsError):
    """A C-FIND or QIDO-RS query returned an error status."""


class RetrieveIncomplete(PacsError):
    """Instances of a series are still missing after every retry."""

    retryable = True

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        series_instance_uid: str = "",
        expected: int = 0,
        received: int = 0,
    ) -> None:
        super().__init__(message, hint)
        self.series_instance_uid = series_instance_uid
        self.expected = expected
        self.received = received


class StoreFailed(PacsError):
    """C-STORE or STOW-RS of one or more instances was refused by the node."""


class StudyNotFound(PacsError):
    """No study on the node matches the accession number or StudyInstanceUID."""


class AmbiguousStudy(PacsError):
    """Several studies match and nothing tells which one is meant."""
