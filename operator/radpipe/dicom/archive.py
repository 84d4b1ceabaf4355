"""The embedded archive: pynetdicom's own Query/Retrieve SCP application over a folder.

``radpipe pacs serve DIR`` indexes the DICOM files in DIR into the application's SQLite
database (with pynetdicom's own ``qrscp.db`` module; files stay where they are), writes its
configuration file (AE title, port, C-MOVE destinations) and runs
``python -m pynetdicom qrscp``. Instances sent to it by C-STORE land in DIR/.qrscp/instances.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydicom import dcmread

#: Where the archive keeps its database, configuration and received instances.
STATE_DIR = ".qrscp"


class ArchiveError(Exception):
    """The archive cannot be set up; the message says why and what to do."""


def parse_move_destination(text: str) -> tuple[str, tuple[str, int]]:
    """``AE=HOST:PORT`` → (AE, (HOST, PORT))."""
    ae, sep, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    if not sep or not colon or not ae or not host or not port.isdigit():
        raise ValueError(f"{text!r} is not AE=HOST:PORT")
    if len(ae) > 16:
        raise ValueError(f"AE title {ae!r} is longer than 16 characters")
    return ae, (host, int(port))


def index_folder(folder: Path) -> tuple[int, int]:
    """Add DICOM files under ``folder`` to the archive's database.

    Returns (instances indexed now, files skipped as unreadable). Files indexed before are
    left alone, so restarting the archive is quick.
    """
    from pynetdicom.apps.qrscp import db

    state = folder / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    engine = db.create(f"sqlite:///{state / 'index.sqlite'}")
    from sqlalchemy.orm import sessionmaker

    session = sessionmaker(bind=engine)()
    try:
        rows: list[Any] = session.query(db.Instance.filename).all()
        known = {str(row[0]) for row in rows}
        added = skipped = 0
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or STATE_DIR in path.relative_to(folder).parts:
                continue
            name = str(path.resolve())
            if name in known:
                continue
            try:
                ds = dcmread(path, stop_before_pixels=True)
                db.add_instance(ds, session, name)
            except Exception:  # not DICOM, or a header qrscp's index cannot hold
                session.rollback()
                skipped += 1
                continue
            added += 1
        return added, skipped
    finally:
        session.close()
        engine.dispose()


def write_config(
    folder: Path,
    *,
    port: int,
    ae_title: str,
    bind: str,
    move_destinations: dict[str, tuple[str, int]],
) -> Path:
    """Write the qrscp configuration file; returns its path."""
    state = (folder / STATE_DIR).resolve()
    (state / "instances").mkdir(parents=True, exist_ok=True)
    lines = [
        "[DEFAULT]",
        f"ae_title: {ae_title}",
        f"port: {port}",
        "max_pdu: 0",
        "acse_timeout: 30",
        "dimse_timeout: 30",
        "network_timeout: 60",
        f"bind_address: {bind}",
        f"instance_location: {state / 'instances'}",
        f"database_location: {state / 'index.sqlite'}",
        "log_identifier: False",
        "",
    ]
    for ae, (host, dest_port) in sorted(move_destinations.items()):
        lines += [f"[{ae}]", f"address: {host}", f"port: {dest_port}", ""]
    config = state / "qrscp.ini"
    config.write_text("\n".join(lines))
    return config


def archive_command(config: Path) -> list[str]:
    """The command line that runs pynetdicom's qrscp with ``config``."""
    return [sys.executable, "-m", "pynetdicom", "qrscp", "-c", str(config), "-ll", "warn"]


def prepare(
    folder: Path,
    *,
    port: int,
    ae_title: str,
    bind: str = "127.0.0.1",
    move_destinations: dict[str, tuple[str, int]] | None = None,
) -> tuple[list[str], int, int]:
    """Index ``folder`` and write the configuration; returns (command, indexed, skipped)."""
    if len(ae_title) > 16:
        raise ArchiveError(f"AE title {ae_title!r} is longer than 16 characters")
    folder.mkdir(parents=True, exist_ok=True)
    added, skipped = index_folder(folder)
    config = write_config(
        folder, port=port, ae_title=ae_title, bind=bind, move_destinations=move_destinations or {}
    )
    return archive_command(config), added, skipped


def serve(
    folder: Path,
    *,
    port: int,
    ae_title: str,
    bind: str = "127.0.0.1",
    move_destinations: dict[str, tuple[str, int]] | None = None,
) -> None:
    """Index ``folder`` and become pynetdicom's qrscp serving it (does not return)."""
    command, added, skipped = prepare(
        folder, port=port, ae_title=ae_title, bind=bind, move_destinations=move_destinations
    )
    dests = ", ".join(f"{ae}={h}:{p}" for ae, (h, p) in (move_destinations or {}).items())
    print(
        f"archive {ae_title} on {bind}:{port} serving {folder} ({added} new instances indexed"
        f"{f', {skipped} files skipped' if skipped else ''}); C-MOVE destinations: "
        f"{dests or 'none'}",
        file=sys.stderr,
        flush=True,
    )
    os.execv(command[0], command)
