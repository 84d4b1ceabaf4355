"""The committed DICOM Conformance Statement must say what the code's AEs really do."""

from __future__ import annotations

from pathlib import Path

from radpipe.dicom.conformance import DOC_PATH, statement

REPO = Path(__file__).resolve().parents[2]


def test_statement_matches_the_code() -> None:
    text = statement()
    committed = (REPO / DOC_PATH).read_text()
    assert committed == text, (
        "docs/conformance-statement.md differs from what radpipe's AEs propose and accept: "
        "run `radpipe conformance --out docs/conformance-statement.md` and review the change"
    )
    # the parts a hospital asks about are there
    for needle in (
        "RADPIPE-IN",
        "intake.allowed_calling_aes",
        "Study Root Query/Retrieve Information Model - MOVE",
        "| Segmentation Storage | `1.2.840.10008.5.1.4.1.1.66.4` | SCU | Explicit VR Little Endian",
        "SCP (role selection, on the C-GET association)",
    ):
        assert needle in text, needle
