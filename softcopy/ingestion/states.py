"""Every status softcopy persists, with its named groups. No status literal lives elsewhere."""

from __future__ import annotations

from enum import StrEnum

# the memory layer's stage vocabulary, re-exported for the control plane and its callers
from softcopy.memory.stages import Outcome as Outcome
from softcopy.memory.stages import Stage as Stage


class CellState(StrEnum):
    """What coverage says of a (source, day, stage) cell (DESIGN.md §3)."""

    current = "current"  # recorded input digest equals the upstream digest now
    stale = "stale"  # done once, but upstream changed since
    missing = "missing"  # never done, and the source has items that day
    failed = "failed"  # its last attempt failed
    running = "running"  # a live job holds it
    empty = "empty"  # the source has no items that day: nothing to do


NEEDS_WORK = frozenset({CellState.stale, CellState.missing, CellState.failed})


class JobStatus(StrEnum):
    """Lifecycle of an ingestion job (DESIGN.md §4)."""

    queued = "queued"  # waiting for a worker to take its lease
    running = "running"  # a worker holds the lease and heartbeats
    cancelling = "cancelling"  # cancel requested; the worker stops at the next day boundary
    succeeded = "succeeded"  # every step finished
    failed = "failed"  # a step failed; resumable
    cancelled = "cancelled"  # stopped on request; resumable
    # the lease expired (the worker died), or a queued job nobody claimed within the lease
    # timeout gave its cells to a newer run; resumable either way
    interrupted = "interrupted"


class StepStatus(StrEnum):
    pending = "pending"  # not started (or reset by resume)
    running = "running"  # a worker is doing its days
    succeeded = "succeeded"  # every day checkpointed
    failed = "failed"  # a day failed
    cancelled = "cancelled"  # the job was cancelled before the step finished
    skipped = "skipped"  # nothing to do: every day was already checkpointed


class PlanMode(StrEnum):
    catch_up_recent = "catch_up_recent"  # new days since the last current one, plus a lookback
    backfill_range = "backfill_range"  # every non-current cell in a range (all with force)
    repair = "repair"  # the cells a reconciliation flagged


class PlanStatus(StrEnum):
    ready = "ready"  # can be run
    applied = "applied"  # a job was made from it


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"

    @property
    def rank(self) -> int:
        return list(LogLevel).index(self)


JOB_LIVE = frozenset({JobStatus.queued, JobStatus.running, JobStatus.cancelling})
JOB_TERMINAL = frozenset(
    {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted}
)
JOB_RESUMABLE = frozenset({JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted})
JOB_LEASED = frozenset({JobStatus.running, JobStatus.cancelling})  # a worker should heartbeat
STEP_DONE = frozenset({StepStatus.succeeded, StepStatus.skipped})

JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.cancelled, JobStatus.interrupted}),
    JobStatus.running: frozenset(
        {
            JobStatus.succeeded,
            JobStatus.failed,
            JobStatus.cancelling,
            JobStatus.cancelled,
            JobStatus.interrupted,
        }
    ),
    JobStatus.cancelling: frozenset(
        {JobStatus.cancelled, JobStatus.succeeded, JobStatus.failed, JobStatus.interrupted}
    ),
    JobStatus.succeeded: frozenset(),
    JobStatus.failed: frozenset({JobStatus.queued}),
    JobStatus.cancelled: frozenset({JobStatus.queued}),
    JobStatus.interrupted: frozenset({JobStatus.queued}),
}

STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.pending: frozenset({StepStatus.running, StepStatus.skipped, StepStatus.cancelled}),
    StepStatus.running: frozenset(
        {StepStatus.succeeded, StepStatus.failed, StepStatus.cancelled, StepStatus.pending}
    ),
    StepStatus.succeeded: frozenset(),
    StepStatus.skipped: frozenset(),
    StepStatus.failed: frozenset({StepStatus.pending}),
    StepStatus.cancelled: frozenset({StepStatus.pending}),
}


class FindingKind(StrEnum):
    """What reconcile can find wrong between persisted state and the world."""

    source_drift = "source_drift"  # a published day's items were edited, added or deleted
    missing_artifact = "missing_artifact"  # the ledger names a file that is gone
    corrupted_artifact = "corrupted_artifact"  # the file's bytes no longer match the ledger
    orphan_index_rows = "orphan_index_rows"  # index rows for a day the ledger never published
    missing_index_rows = "missing_index_rows"  # a published day with no rows in the index
    index_mismatch = "index_mismatch"  # the index holds other items than were published
    dead_lease = "dead_lease"  # a running job whose worker stopped heartbeating
    unclaimed_job = "unclaimed_job"  # a queued job no worker claimed within the lease timeout
    future_dated = "future_dated"  # a source has items dated after today (a bad clock, a typo)
    source_problem = "source_problem"  # a record the scan could not read, or read repaired
    leftover_temporary = "leftover_temporary"  # a dead write's temporary artifact (removed)
