"""Open the client for a configured node: DIMSE (pynetdicom) or DICOMweb (dicomweb-client)."""

from __future__ import annotations

from radpipe.dicom.nodes import PacsNode
from radpipe.dicom.retrieve import PacsClient


def open_client(node: PacsNode) -> PacsClient:
    """The client speaking the node's transport; imports only the library it needs."""
    if node.transport == "dicomweb":
        from radpipe.dicom.dicomweb import DicomwebClient

        return DicomwebClient(node)
    from radpipe.dicom.dimse import DimseClient

    return DimseClient(node)
