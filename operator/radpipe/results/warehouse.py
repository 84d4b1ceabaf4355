"""The results warehouse: every job's results and provenance, through SQLAlchemy 2.

SQLite file by default (``DATA_DIR/warehouse.db``), PostgreSQL in the cluster
(``warehouse.url: postgresql+psycopg://…``). Tables are created on first use.

Patients are keyed by a SHA-256 of their Patient ID (``patient_key``): the warehouse can
find a patient's priors without holding the MRN in a column of its own. The results
document itself (stored whole, as JSON) does carry PHI, as the report does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    make_url,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from radpipe.results.schema import ResultsDocument


def _now() -> datetime:
    return datetime.now(UTC)


def patient_key(patient_id: str, issuer: str = "") -> str:
    """The warehouse's key for a patient: SHA-256 of issuer and Patient ID."""
    return hashlib.sha256(f"{issuer}|{patient_id}".encode()).hexdigest()


class Base(DeclarativeBase):
    """Declarative base of the warehouse tables."""

    type_annotation_map = {dict[str, Any]: JSON}


class ResultRecord(Base):
    """One job's results: the whole document plus the columns queries need."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    app: Mapped[str] = mapped_column(String(63), index=True)
    patient_key: Mapped[str] = mapped_column(String(64), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    accession: Mapped[str] = mapped_column(String(16))
    study_date: Mapped[str] = mapped_column(String(8), default="")
    schema_version: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="final")
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    measurements: Mapped[list[MeasurementRecord]] = relationship(
        back_populates="result", cascade="all, delete-orphan", lazy="selectin"
    )


class MeasurementRecord(Base):
    """One measurement of one result, for queries across jobs (volumes over time...)."""

    __tablename__ = "measurements"
    __table_args__ = (UniqueConstraint("result_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    result: Mapped[ResultRecord] = relationship(back_populates="measurements")


class RetrainingCase(Base):
    """A case queued for the retraining set, and why."""

    __tablename__ = "retraining_cases"
    __table_args__ = (UniqueConstraint("job_uid", "reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_uid: Mapped[str] = mapped_column(String(64), index=True)
    app: Mapped[str] = mapped_column(String(63))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Warehouse:
    """Sessions on the warehouse database and the operations radpipe needs."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed at the end of the block, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- results ---------------------------------------------------------------------------

    def record(self, doc: ResultsDocument, provenance: dict[str, Any] | None = None) -> int:
        """Store (or replace) a job's results; idempotent per job uid. Returns the row id."""
        wire = doc.wire()
        with self.session() as s:
            row = s.scalar(select(ResultRecord).where(ResultRecord.job_uid == doc.job))
            if row is None:
                row = ResultRecord(job_uid=doc.job)
                s.add(row)
            row.app = doc.app
            row.patient_key = patient_key(doc.study.patient_id)
            row.study_instance_uid = doc.study.study_instance_uid
            row.accession = doc.study.accession
            row.study_date = doc.study.study_date
            row.schema_version = doc.schema_version
            row.document = wire
            row.provenance = provenance or {}
            row.measurements.clear()
            s.flush()  # delete the old measurements before inserting their replacements
            row.measurements = [
                MeasurementRecord(name=m.name, value=m.value, unit=m.unit) for m in doc.measurements
            ]
            s.flush()
            return row.id

    def get(self, job_uid: str) -> ResultRecord | None:
        """The stored results of one job."""
        with self.session() as s:
            return s.scalar(select(ResultRecord).where(ResultRecord.job_uid == job_uid))

    def history(self, patient_id: str, app: str) -> list[ResultRecord]:
        """Every stored result of a patient for an app, oldest study first."""
        with self.session() as s:
            rows = s.scalars(
                select(ResultRecord)
                .where(ResultRecord.patient_key == patient_key(patient_id))
                .where(ResultRecord.app == app)
                .where(ResultRecord.status != "rejected")
                .order_by(ResultRecord.study_date, ResultRecord.created_at)
            )
            return list(rows)

    def set_status(self, job_uid: str, status: str) -> None:
        """Mark a result (``final``, ``rejected`` by a radiologist...)."""
        with self.session() as s:
            row = s.scalar(select(ResultRecord).where(ResultRecord.job_uid == job_uid))
            if row is None:
                raise KeyError(f"no results for job {job_uid} in the warehouse")
            row.status = status

    # -- retraining ------------------------------------------------------------------------

    def queue_retraining(
        self, job_uid: str, app: str, reason: str, detail: str = "", location: str = ""
    ) -> bool:
        """Record a retraining case; False when this job/reason is already queued."""
        with self.session() as s:
            exists = s.scalar(
                select(RetrainingCase)
                .where(RetrainingCase.job_uid == job_uid)
                .where(RetrainingCase.reason == reason)
            )
            if exists is not None:
                return False
            s.add(
                RetrainingCase(
                    job_uid=job_uid, app=app, reason=reason, detail=detail, location=location
                )
            )
            return True

    def retraining_cases(self, app: str | None = None) -> list[RetrainingCase]:
        """The queued retraining cases, oldest first."""
        with self.session() as s:
            query = select(RetrainingCase).order_by(RetrainingCase.created_at)
            if app is not None:
                query = query.where(RetrainingCase.app == app)
            return list(s.scalars(query))


def open_warehouse(url: str | None) -> Warehouse:
    """The warehouse at ``url`` (the configured ``warehouse.url``)."""
    if not url:
        raise ValueError("no warehouse URL configured (warehouse.url)")
    return Warehouse(url)
