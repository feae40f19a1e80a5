"""Tables of the ingestion control plane. Tables only: no queries, no workflow.

Status lives in its own indexed column and is the truth; JSON columns hold payload only.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from softcopy.db import UTCDateTime, enum_type
from softcopy.ingestion.states import (
    CellState,
    FindingKind,
    JobStatus,
    LogLevel,
    PlanMode,
    PlanStatus,
    Stage,
    StepStatus,
)


def _when(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _parent(table: str) -> Any:
    return Field(
        sa_column=Column(
            Integer, ForeignKey(f"{table}.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )


class CoverageSnapshot(SQLModel, table=True):
    """Coverage as computed at one moment: per (source, day, stage) states and totals."""

    __tablename__ = "coverage_snapshot"
    id: int | None = Field(default=None, primary_key=True)
    taken_at: datetime = _when(index=True)
    range_start: date | None = None
    range_end: date | None = None
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    totals: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    fingerprint: str
    seconds: float = 0.0
    lineage: str = Field(default="", index=True)  # its cells' rows: see CoverageCell


class CoverageCell(SQLModel, table=True):
    """A cell's row, shared by consecutive snapshots of one lineage (the same range of days)
    while it does not change: it belongs to the snapshots of its lineage from `snapshot_id`
    up to (not including) `ended_by`, which took a changed row in its place (None: still
    the newest), that list its source. So a snapshot writes only the cells that changed."""

    __tablename__ = "coverage_cell"
    __table_args__ = (
        Index("ix_coverage_cell_snapshot_state", "snapshot_id", "state"),
        Index("ix_coverage_cell_lineage", "lineage", "source", "ended_by"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # the snapshot that wrote it (no foreign key: the row outlives that snapshot while a
    # newer one of its lineage shares it; coverage.prune deletes the rows none shares)
    snapshot_id: int = Field(index=True)
    source: str
    day: date
    stage: Stage = Field(sa_type=enum_type(Stage))
    state: CellState = Field(sa_type=enum_type(CellState))
    expected_digest: str | None = None  # the input digest a current cell would record
    recorded_digest: str | None = None  # the input digest the ledger records
    items: int = 0
    job_id: int | None = None  # the live job holding the cell, when running
    done_by: str | None = None  # who last ran it, as the ledger records
    artifact_missing: bool = False  # stale because the file its ledger entry names is gone
    lineage: str = ""  # the lineage of the snapshot that wrote it
    ended_by: int | None = None  # the snapshot of its lineage that replaced it


class CoverageHead(SQLModel, table=True):
    """Per (lineage, source), what its newest cell rows (those not ended) were computed from:
    `digest` is "key/fingerprint", the key a digest of the cells' inputs (day, ledger and
    claim rows, missing artifacts, the model, the code) or of the cells themselves. A
    snapshot whose source has the same key writes none of its cells."""

    __tablename__ = "coverage_head"
    lineage: str = Field(primary_key=True)
    source: str = Field(primary_key=True)
    digest: str


class IngestionPlan(SQLModel, table=True):
    __tablename__ = "ingestion_plan"
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _when(index=True)
    mode: PlanMode = Field(sa_type=enum_type(PlanMode))
    status: PlanStatus = Field(sa_type=enum_type(PlanStatus), index=True)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    snapshot_id: int | None = Field(default=None, foreign_key="coverage_snapshot.id")
    fingerprint: str  # over the plan's cells and their expected digests
    cells: int = 0


class IngestionPlanItem(SQLModel, table=True):
    __tablename__ = "ingestion_plan_item"
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = _parent("ingestion_plan")
    source: str
    day: date
    stage: Stage = Field(sa_type=enum_type(Stage))
    state: CellState = Field(sa_type=enum_type(CellState))  # why it is in the plan
    expected_digest: str | None = None


class IngestionJob(SQLModel, table=True):
    __tablename__ = "ingestion_job"
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="ingestion_plan.id", index=True)
    status: JobStatus = Field(sa_type=enum_type(JobStatus), index=True)
    executor: str  # where its steps run: a name in the softcopy.executors registry
    chunk_days: int
    lease_owner: str | None = None
    lease_epoch: int = 0  # bumped on every claim and every fence; writes carry it
    heartbeat_at: datetime | None = _when(nullable=True)
    worker_pid: int | None = None
    worker_host: str | None = None
    worker_started: float | None = None  # process start time: with host and pid, one process
    cancel_requested: bool = False
    created_at: datetime = _when(index=True)
    queued_at: datetime | None = _when(nullable=True)  # when it last began to wait for a worker
    started_at: datetime | None = _when(nullable=True)
    finished_at: datetime | None = _when(nullable=True)
    error: str | None = None
    cells_total: int = 0  # (source, day, stage) cells in its plan
    cells_done: int = 0
    dask_dashboard: str | None = None  # the Dask dashboard of the cluster its steps ran on


class JobStep(SQLModel, table=True):
    __tablename__ = "job_step"
    __table_args__ = (UniqueConstraint("job_id", "ordinal"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = _parent("ingestion_job")
    ordinal: int
    stage: Stage = Field(sa_type=enum_type(Stage))
    source: str
    start_day: date
    end_day: date
    days: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: StepStatus = Field(sa_type=enum_type(StepStatus), index=True)
    attempts: int = 0
    error: str | None = None
    artifact: str | None = None  # the executed notebook, for notebook executors
    worker: str | None = None  # which Dask worker ran it (dask executor)
    started_at: datetime | None = _when(nullable=True)
    finished_at: datetime | None = _when(nullable=True)


class Checkpoint(SQLModel, table=True):
    """One day of one step, done: written in the same transaction as the ledger."""

    __tablename__ = "checkpoint"
    __table_args__ = (UniqueConstraint("step_id", "day"),)
    id: int | None = Field(default=None, primary_key=True)
    step_id: int = _parent("job_step")
    job_id: int = Field(index=True)
    source: str
    stage: Stage = Field(sa_type=enum_type(Stage))
    day: date
    input_digest: str
    output_digest: str
    artifact_sha: str | None = None
    items: int
    skipped: int
    lease_epoch: int
    created_at: datetime = _when()


class CellClaim(SQLModel, table=True):
    """A (source, day, stage) cell held by a live job: the primary key makes overlap impossible."""

    __tablename__ = "cell_claim"
    source: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    stage: Stage = Field(primary_key=True, sa_type=enum_type(Stage))
    job_id: int = _parent("ingestion_job")


class Verification(SQLModel, table=True):
    __tablename__ = "verification"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = _parent("ingestion_job")
    created_at: datetime = _when()
    ok: bool = Field(index=True)
    cells_checked: int
    problems: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )


class ReconciliationRun(SQLModel, table=True):
    __tablename__ = "reconciliation_run"
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _when(index=True)
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    range_start: date | None = None
    range_end: date | None = None
    findings_count: int = 0
    drift: bool = False
    repair_plan_id: int | None = Field(default=None, foreign_key="ingestion_plan.id")


class ReconciliationFinding(SQLModel, table=True):
    __tablename__ = "reconciliation_finding"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = _parent("reconciliation_run")
    kind: FindingKind = Field(sa_type=enum_type(FindingKind), index=True)
    source: str | None = None
    day: date | None = None
    stage: Stage | None = Field(default=None, sa_type=enum_type(Stage))
    job_id: int | None = None
    detail: str


class LogRecord(SQLModel, table=True):
    __tablename__ = "log_record"
    __table_args__ = (Index("ix_log_record_job_id_id", "job_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = _when(index=True)
    level: LogLevel = Field(sa_type=enum_type(LogLevel))
    event: str
    job_id: int | None = None
    step_id: int | None = None
    source: str | None = None
    day: date | None = None
    message: str
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
