"""What the service returns and takes: plain dataclasses over the persisted rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from softcopy.ingestion import planner
from softcopy.ingestion.coverage import Cell, FutureDays, RecordProblem
from softcopy.ingestion.models import (
    CoverageSnapshot,
    IngestionJob,
    IngestionPlan,
    JobStep,
    LogRecord,
    ReconciliationFinding,
    ReconciliationRun,
    Verification,
)
from softcopy.ingestion.states import (
    PlanMode,
    Stage,
    StepStatus,
)
from softcopy.ingestion.summary import JobSummary


@dataclass(frozen=True)
class CoverageReport:
    snapshot: CoverageSnapshot
    cells: list[Cell]
    future_days: list[FutureDays] = field(default_factory=list)  # items dated after today
    problems: list[RecordProblem] = field(default_factory=list)  # records the scan could not read
    problems_total: int = 0  # how many there are; `problems` lists the first PROBLEMS_LISTED


@dataclass(frozen=True)
class PlanView:
    plan: IngestionPlan
    items: list[planner.PlanItem]
    steps: list[tuple[Stage, str, list[date]]]  # what a job with the default chunking runs
    # what is true of the cells it leaves: why an empty plan is empty, work outside its
    # lookback (a saved plan read back later has none: they describe its making)
    facts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepView:
    step: JobStep
    days_done: int


@dataclass(frozen=True)
class JobView:
    job: IngestionJob
    steps: list[StepView]
    verification: Verification | None = None
    # queued, and no worker claimed it within the lease timeout: for this many seconds
    unclaimed_seconds: float | None = None
    summary: JobSummary | None = None  # title, cells done, rate, ETA, failed steps


@dataclass(frozen=True)
class TakenOver:
    """A queued job no worker claimed within the lease timeout, whose cells a stage run
    outside the jobs took (`service.take_unclaimed_cells`): it is interrupted, resumable."""

    job_id: int
    queued_at: datetime  # waiting for a worker since
    unclaimed_seconds: float


@dataclass(frozen=True)
class ResumeCheck:
    """Whether resuming a job can succeed (`service.check_resume`)."""

    blocker: str | None = None  # why resume would be refused; None: it can start
    # the blocker is that its remaining cells would remove published items (DestructivePlan):
    # resuming with allow_shrink does it anyway
    removes_published: bool = False
    bad_record_days: int = 0  # its remaining export days that hold unreadable records
    skips_bad_records: bool = False  # its plan skips (and counts) such records

    @property
    def fails_on_bad_records(self) -> bool:
        """Resumed as it is, an export would fail again on unreadable records."""
        return self.bad_record_days > 0 and not self.skips_bad_records


@dataclass(frozen=True)
class RunOutcome:
    plan: IngestionPlan
    job: JobView | None  # None: the plan had nothing to do
    worker_pid: int | None = None  # set when detached
    facts: list[str] = field(default_factory=list)  # with no job: what is true instead


@dataclass(frozen=True)
class ReconcileReport:
    run: ReconciliationRun
    findings: list[ReconciliationFinding]
    repair_plan: IngestionPlan | None = None
    repair_refused: str | None = None  # why no repair plan was made (it would shrink)


@dataclass
class PlanOptions:
    mode: PlanMode
    sources: list[str] | None = None
    stages: list[Stage] | None = None
    range_start_day: date | None = None
    range_end_day: date | None = None
    lookback_days: int = planner.DEFAULT_LOOKBACK_DAYS
    force: bool = False
    reconciliation_id: int | None = None
    allow_shrink: bool = False  # may the plan remove published items (planner.shrinks)?
    skip_bad_records: bool = False  # its job skips (and counts) unreadable source records


@dataclass(frozen=True)
class LogPage:
    records: list[LogRecord]  # oldest first
    total: int  # how many rows match the filters, in all
    older: int  # how many matching rows are older than the first of `records`


@dataclass(frozen=True)
class LiveCell:
    """A cell a live job holds: its step's status, and whether its checkpoint has landed
    (then it is current, though the job goes on)."""

    job_id: int
    step_status: StepStatus
    landed: bool
