"""The DICOM Conformance Statement, generated from the AEs radpipe really builds.

Nothing here is typed in by hand: the presentation contexts, roles and transfer syntaxes
are read from the pynetdicom ``AE`` objects the code uses —

* the receiver (``radpipe receive``): :func:`radpipe.intake.receiver.build_ae`;
* radpipe's Storage SCP for C-MOVE: :class:`radpipe.dicom.scp.StorageReceiver` (started on
  a loopback port for a moment, to read its AE);
* the SCU side of :class:`radpipe.dicom.dimse.DimseClient` (C-ECHO, C-FIND, C-GET with
  SCP role selection, C-MOVE, C-STORE of the objects the report stage writes), captured by
  recording what it asks to associate with instead of connecting.

``radpipe conformance`` prints it; ``docs/conformance-statement.md`` is its committed copy
and a test fails when the two differ.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.presentation import PresentationContext

from radpipe.config import IntakeConfig, PacsNodeConfig

DOC_PATH = Path("docs") / "conformance-statement.md"

#: Objects the deliver stage sends (the report stage's writers), with their transfer syntax.
DELIVERED_OBJECTS: tuple[tuple[str, str], ...] = (
    ("1.2.840.10008.5.1.4.1.1.66.4", ExplicitVRLittleEndian),  # Segmentation
    ("1.2.840.10008.5.1.4.1.1.88.34", ExplicitVRLittleEndian),  # Comprehensive 3D SR
    ("1.2.840.10008.5.1.4.1.1.104.1", ExplicitVRLittleEndian),  # Encapsulated PDF
)


@dataclass
class Context:
    """One presentation context: SOP class, transfer syntaxes, our role."""

    sop_class: str
    transfer_syntaxes: tuple[str, ...]
    role: str  # "SCU", "SCP" or "SCU/SCP"


@dataclass
class AeSpec:
    """What one of radpipe's AEs proposes or accepts."""

    title: str
    ae_title: str
    config_key: str
    purpose: str
    contexts: list[Context] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)


def _name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else "(unnamed)"


def _contexts(contexts: Sequence[PresentationContext], role: str) -> list[Context]:
    merged: dict[str, list[str]] = {}
    for cx in contexts:
        syntaxes = merged.setdefault(str(cx.abstract_syntax), [])
        syntaxes += [str(ts) for ts in cx.transfer_syntax if str(ts) not in syntaxes]
    return [Context(uid, tuple(ts), role) for uid, ts in merged.items()]


# -- the SCP AEs ----------------------------------------------------------------------------


def receiver_spec() -> AeSpec:
    """The receiver's AE (``radpipe receive``)."""
    from radpipe.intake.receiver import build_ae

    config = IntakeConfig(allowed_calling_aes=["MODALITY"])
    ae = build_ae(config)
    return AeSpec(
        title="Receiver (radpipe receive)",
        ae_title=config.ae_title,
        config_key="intake.ae_title",
        purpose="Storage SCP for studies pushed by modalities and PACS; Verification SCP. "
        "Received studies start analysis jobs by the routing rules.",
        contexts=_contexts(ae.supported_contexts, "SCP"),
        policies=[
            "Accepts associations only from the calling AE titles in "
            "`intake.allowed_calling_aes` (others: rejected, reason 'calling AE title not "
            "recognised'), and only when called by its own AE title.",
            f"Maximum PDU size received: {ae.maximum_pdu_size} bytes; at most "
            f"`intake.max_associations` (default {config.max_associations}) associations.",
            "Every instance is written to storage before the C-STORE response (status "
            "0x0000); unreadable instances are answered 0xC000, storage failures 0xA700.",
            "No SCU/SCP role selection, no extended negotiation; instances are stored in "
            "the transfer syntax received (no transcoding).",
        ],
    )


def storage_scp_spec() -> AeSpec:
    """radpipe's Storage SCP for C-MOVE retrieves (read from a running instance)."""
    from radpipe.dicom.scp import StorageReceiver

    config = PacsNodeConfig()
    receiver = StorageReceiver("127.0.0.1", 0, config.move_destination, config.ae_title)
    try:
        ae: AE = receiver._server.ae
        contexts = _contexts(ae.supported_contexts, "SCP")
        pdu = ae.maximum_pdu_size
    finally:
        receiver._server.shutdown()
    return AeSpec(
        title="C-MOVE destination (fetch stage)",
        ae_title=config.move_destination,
        config_key="pacs.<node>.move_destination",
        purpose="Storage SCP that receives the instances a PACS sends for radpipe's C-MOVE "
        "requests; runs only while a retrieve is in progress, on `pacs.<node>.storage_port`.",
        contexts=contexts,
        policies=[
            "Accepts associations only when called by `pacs.<node>.move_destination` and only "
            "from the AE title (`pacs.<node>.ae_title`) of a PACS node a running C-MOVE "
            "retrieves from (others: rejected at association time).",
            "Accepts instances only of studies a running retrieve asked for (others: status "
            "0x0124, refused: not authorized).",
            f"Maximum PDU size received: {pdu} bytes.",
        ],
    )


# -- the SCU AE ------------------------------------------------------------------------------


class _Recorded(Exception):
    """Raised instead of connecting, once the association request is recorded."""


@dataclass
class _Request:
    contexts: list[PresentationContext]
    roles: list[Any]


class _RecordingAE(AE):
    """An AE that records what it would propose instead of associating."""

    requests: list[_Request]

    def associate(self, *args: Any, **kwargs: Any) -> Any:
        self.requests.append(_Request(list(self.requested_contexts), kwargs.get("ext_neg") or []))
        raise _Recorded()


@contextmanager
def _recording_client() -> Iterator[tuple[Any, list[_Request]]]:
    from radpipe.dicom.dimse import DimseClient
    from radpipe.dicom.nodes import PacsNode

    requests: list[_Request] = []

    class Recording(DimseClient):
        def _ae(self) -> AE:
            real = super()._ae()
            ae = _RecordingAE(ae_title=real.ae_title)
            ae.requests = requests
            ae.maximum_pdu_size = real.maximum_pdu_size
            return ae

    yield Recording(PacsNode("pacs", PacsNodeConfig())), requests


def _objects(folder: Path) -> list[Path]:
    paths = []
    for number, (sop_class, syntax) in enumerate(DELIVERED_OBJECTS):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = UID(syntax)
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = UID(sop_class)
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        path = folder / f"{number}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def scu_spec() -> AeSpec:
    """radpipe as SCU toward a PACS (fetch and deliver stages, ``radpipe pacs``)."""
    from radpipe.dicom.instances import StudySink

    config = PacsNodeConfig()
    contexts: list[Context] = []
    with _recording_client() as (client, requests):
        calls = [
            ("C-ECHO", lambda: client.echo()),
            ("C-FIND", lambda: client.find_studies(accession="A")),
            ("C-GET", lambda: client._retrieve_one("c-get", Dataset(), "1.2", StudySink(print))),
            ("C-MOVE", lambda: client._retrieve_one("c-move", Dataset(), "1.2", StudySink(print))),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            paths = _objects(Path(tmp))
            calls.append(("C-STORE", lambda: client.store(paths)))
            for _what, call in calls:
                with suppress(_Recorded):
                    call()
        for request in requests:
            scp_roles = {str(r.sop_class_uid) for r in request.roles if r.scp_role}
            for cx in _contexts(request.contexts, "SCU"):
                if cx.sop_class in scp_roles:
                    cx.role = "SCP (role selection, on the C-GET association)"
                contexts.append(cx)
    unique: dict[tuple[str, str], Context] = {}
    for cx in contexts:
        key = (cx.sop_class, cx.role)
        if key in unique:
            merged = list(unique[key].transfer_syntaxes)
            merged += [ts for ts in cx.transfer_syntaxes if ts not in merged]
            unique[key].transfer_syntaxes = tuple(merged)
        else:
            unique[key] = cx
    return AeSpec(
        title="PACS client (fetch and deliver stages)",
        ae_title=config.calling_ae,
        config_key="pacs.<node>.calling_ae",
        purpose="Verification, Study Root C-FIND, C-GET (receiving the instances on the same "
        "association) or C-MOVE (to radpipe's own Storage SCP) to fetch a study; C-STORE to "
        "deliver the SEG, SR and PDF radpipe makes.",
        contexts=list(unique.values()),
        policies=[
            "Calls the PACS's AE title `pacs.<node>.ae_title`; one association per operation, "
            "up to `pacs.<node>.max_associations` in parallel (one per series).",
            "C-GET proposes at most 127 storage contexts (the 128-context limit) with an "
            "SCP/SCU role selection item per storage class; image classes are offered "
            "uncompressed and, in a second context, in the common compressed syntaxes.",
            "C-STORE offers each object in exactly the transfer syntax it was written in "
            "(Explicit VR Little Endian for everything radpipe writes).",
            "Delivery verifies with C-FIND (IMAGE level) that every SOP Instance UID arrived.",
        ],
    )


# -- the document ----------------------------------------------------------------------------


def specs() -> list[AeSpec]:
    """Every AE radpipe runs, in the order the statement lists them."""
    return [receiver_spec(), scu_spec(), storage_scp_spec()]


def render(aes: Sequence[AeSpec]) -> str:
    """The statement as Markdown."""
    syntax_sets: dict[tuple[str, ...], str] = {}

    def set_name(syntaxes: tuple[str, ...]) -> str:
        if len(syntaxes) <= 2:
            return ", ".join(_name(ts) for ts in syntaxes)
        if syntaxes not in syntax_sets:
            syntax_sets[syntaxes] = f"TS-{len(syntax_sets) + 1}"
        return f"{syntax_sets[syntaxes]} ({len(syntaxes)} syntaxes)"

    lines = [
        "# radpipe DICOM Conformance Statement",
        "",
        "<!-- Generated by `radpipe conformance --out docs/conformance-statement.md` from the",
        "     AE objects radpipe builds; do not edit by hand (a test compares). -->",
        "",
        "Product: radpipe; DICOM networking by pynetdicom. Default AE titles are shown; "
        "each is configurable (the key is named).",
        "",
        "## 1. Overview",
        "",
        "| Application Entity | default AE title (configured by) | SOP classes | role |",
        "| --- | --- | ---: | --- |",
    ]
    for ae in aes:
        roles = sorted({cx.role.split(" ")[0] for cx in ae.contexts})
        lines.append(
            f"| {ae.title} | `{ae.ae_title}` (`{ae.config_key}`) | {len(ae.contexts)} | "
            f"{'/'.join(roles)} |"
        )
    lines += [
        "",
        "Implementation Class UID and Version Name are pynetdicom's. Security: the DIMSE "
        "client (`pacs.<node>.tls`) and the receiver (`intake.tls`) support the Basic TLS "
        "Secure Transport Connection Profile (TLS 1.2+, optional client certificates); "
        "without a `tls` section DICOM runs over plain TCP.",
        "",
    ]
    seen: dict[str, str] = {}
    for number, ae in enumerate(aes, start=2):
        lines += [
            f"## {number}. {ae.title}",
            "",
            ae.purpose,
            "",
            f"AE title: `{ae.ae_title}` (`{ae.config_key}`).",
            "",
        ]
        lines += [f"* {p}" for p in ae.policies]
        lines.append("")
        table = ["| SOP class | UID | role | transfer syntaxes |", "| --- | --- | --- | --- |"]
        table += [
            f"| {_name(cx.sop_class)} | `{cx.sop_class}` | {cx.role} | "
            f"{set_name(cx.transfer_syntaxes)} |"
            for cx in ae.contexts
        ]
        key = "\n".join(table)
        if key in seen:
            lines += [f"Presentation contexts: the same as {seen[key]}.", ""]
        else:
            seen[key] = f"section {number}"
            lines += ["Presentation contexts:", "", *table, ""]
    lines += ["## Transfer syntax sets", ""]
    for syntaxes, label in syntax_sets.items():
        lines += [f"**{label}**: " + ", ".join(f"{_name(ts)} (`{ts}`)" for ts in syntaxes), ""]
    return "\n".join(lines).rstrip() + "\n"


def statement() -> str:
    """The conformance statement of this radpipe, as Markdown."""
    return render(specs())


@click.command("conformance")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--check", is_flag=True, help="Exit 1 when --out differs from the code.")
def conformance(out: Path | None, check: bool) -> None:
    """Print the DICOM Conformance Statement generated from radpipe's AEs."""
    text = statement()
    if out is None:
        click.echo(text, nl=False)
        return
    if check:
        current = out.read_text() if out.is_file() else ""
        if current != text:
            click.echo(f"{out} is stale: run `radpipe conformance --out {out}`", err=True)
            sys.exit(1)
        click.echo(f"{out} is up to date", err=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(f"wrote {out}", err=True)
