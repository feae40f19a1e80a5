"""The job lifecycle as a hypothesis state machine: random sequences of run (planned in
one call or from a saved plan; inline, foreground; sometimes failing with ENOSPC),
enqueue (a detached job whose worker never comes), cancel, force-cancel, a worker that
claims a job and is killed mid-step, that killed worker waking up again, resume, any
worker, reconcile and clock advances, all through the service with an injected clock.

After every step: every claimed cell's holder is live and every live job holds each cell
it has yet to do (so no two live jobs work on one cell), every ended job has released its
claims, no job stays live with an expired lease after a service read (each step makes
the next of the reads the faces make: list, show, logs, log tail, live cells, the
coverage snapshot, preview, can-resume, held cells), checkpoints are only written under
the current epoch (checked as each is inserted, in its transaction), and no job redoes a
checkpointed day. A run refused for held cells must name a holder that really holds them.

SQLite only: every example starts from a fresh copy of a small demo home, which a
PostgreSQL schema per example would make several times slower; each behaviour's
PostgreSQL leg is in test_stuck_jobs.py.
"""

from __future__ import annotations

import errno
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlmodel import Session

from softcopy.config import load_settings
from softcopy.db import dispose_engines, get_engine
from softcopy.demo import build_demo
from softcopy.errors import Conflict
from softcopy.ingestion import executors, leases, runtime, service
from softcopy.ingestion.executors import InlineExecutor, StepTicket
from softcopy.ingestion.models import CellClaim, Checkpoint, IngestionJob, JobStep
from softcopy.ingestion.states import (
    JOB_LEASED,
    JOB_LIVE,
    JOB_RESUMABLE,
    JobStatus,
    PlanMode,
    Stage,
)
from softcopy.ingestion.transitions import LeaseLost
from softcopy.memory import index
from softcopy.memory.pipeline import run_stage
from softcopy.memory.stage import StageContext, StageResult
from softcopy.registry import EXECUTORS

TODAY = date(2026, 3, 31)
DAYS = [TODAY - timedelta(days=i) for i in range(3)][::-1]
EXECUTOR = "stateful"


class WorkerDied(BaseException):
    """A worker killed mid-step (SIGKILL): nothing below catches it, nothing is cleaned."""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo home with a migrated SQLite database: each example starts from a copy."""
    home = tmp_path_factory.mktemp("lifecycle") / "home"
    home.mkdir()
    build_demo(home, days=len(DAYS), today=TODAY)
    settings_ = load_settings(home, env={})
    get_engine(settings_.database_url)
    dispose_engines()
    return home


class Clock:
    """The injected clock: it moves only when a rule says so, so a sequence replays."""

    def __init__(self) -> None:
        self.now = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Lifecycle(RuleBasedStateMachine):
    template: Path
    current: Lifecycle  # the machine whose stage the registered executor runs

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="lifecycle-"))
        home = self.tmp / "home"
        shutil.copytree(self.template, home)
        self.clock = Clock()
        settings_ = load_settings(home, env={})
        self.ctx = service.Context(
            settings=settings_, engine=get_engine(settings_.database_url), clock=self.clock
        )
        self.fail_after: int | None = None  # the stage runner raises ENOSPC after n days
        self.die_after: int | None = None  # ... or the worker dies after n days
        self.redone: list[str] = []
        self.dead: dict[int, int] = {}  # job -> the lease epoch of its killed worker
        self.old_epochs: dict[tuple[int, int], int] = {}  # (job, superseded epoch) -> checkpoints
        self.reads = 0  # which read the next step makes (READS, in turn)
        self.last_checkpoint = 0  # the newest checkpoint id the epoch check has seen
        self.stale_writes: list[str] = []
        sa_event.listen(self.ctx.engine, "after_cursor_execute", self._check_epochs)
        Lifecycle.current = self

    def teardown(self) -> None:
        sa_event.remove(self.ctx.engine, "after_cursor_execute", self._check_epochs)
        index.close_all()
        dispose_engines()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _check_epochs(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        """Each checkpoint as it is inserted, in the inserting transaction: its lease epoch
        must be its job's current one (a check after the step could miss a fenced
        worker's first checkpoints, written under an epoch that had none before)."""
        if not statement.lstrip().upper().startswith("INSERT INTO CHECKPOINT"):
            return
        raw = conn.connection.dbapi_connection.cursor()
        try:
            raw.execute(
                "SELECT c.id, c.job_id, c.lease_epoch, j.lease_epoch FROM checkpoint c "
                "JOIN ingestion_job j ON j.id = c.job_id WHERE c.id > ? ORDER BY c.id",
                (self.last_checkpoint,),
            )
            rows = raw.fetchall()
        finally:
            raw.close()
        for checkpoint_id, job_id, written, current in rows:
            if written != current:
                self.stale_writes.append(
                    f"checkpoint {checkpoint_id} of job {job_id} under epoch {written}, "
                    f"the job's is {current}"
                )
        self.last_checkpoint = max([self.last_checkpoint, *(r[0] for r in rows)])

    # -- the stage every job runs: real stages, a fault on demand, and a redo detector --

    def stage(self, c: StageContext, stage: Stage, source: str, day: date) -> StageResult:
        job_id = int(c.done_by.split(":")[1])
        done = c.session.scalar(
            select(func.count())
            .select_from(Checkpoint)
            .where(
                Checkpoint.job_id == job_id,
                Checkpoint.source == source,
                Checkpoint.day == day,
                Checkpoint.stage == stage,
            )
        )
        if done:
            self.redone.append(f"job {job_id} redid {stage} {source} {day}")
        if self.die_after is not None:
            if self.die_after == 0:
                raise WorkerDied
            self.die_after -= 1
        if self.fail_after is not None:
            if self.fail_after == 0:
                self.fail_after = None
                raise OSError(errno.ENOSPC, "No space left on device")
            self.fail_after -= 1
        return run_stage(c, stage, source, day)

    def _options(self, first: int, span: int, force: bool, source: str | None):
        return service.PlanOptions(
            mode=PlanMode.backfill_range,
            range_start_day=DAYS[first],
            range_end_day=DAYS[min(first + span, len(DAYS) - 1)],
            force=force,
            sources=[source] if source else None,
        )

    def _jobs(self, statuses: frozenset[JobStatus] | None = None) -> list[int]:
        query = select(IngestionJob.id).order_by(IngestionJob.id)  # type: ignore[arg-type]
        if statuses is not None:
            query = query.where(IngestionJob.status.in_(statuses))  # type: ignore[attr-defined]
        with Session(self.ctx.engine) as session:
            return list(session.scalars(query))

    def _pick(self, pick: int, statuses: frozenset[JobStatus] | None = None) -> int | None:
        found = self._jobs(statuses)
        return found[pick % len(found)] if found else None

    def _check_refusal(self, refused: Conflict) -> None:
        """A run refused for held cells names a holder that really holds them: live, with a
        fresh lease, or queued within the lease timeout (one test thread: no races)."""
        held = re.search(r"held by job (\d+)", str(refused))
        if held is None:
            assert "a moment ago" not in str(refused), refused
            return
        with Session(self.ctx.engine) as session:
            holder = session.get(IngestionJob, int(held[1]))
        assert holder is not None and holder.status in JOB_LIVE, refused
        now, timeout = self.clock(), self.ctx.settings.lease_timeout
        assert leases.unclaimed_for(holder, now=now, timeout=timeout) is None, refused
        if holder.status in JOB_LEASED:
            assert not leases.lease_expired(holder, leases.deadline(now, timeout)), refused

    def _plan(self, cells, saved: bool) -> dict:  # type: ignore[type-arg]
        """Plan first and apply the saved plan, or plan and run in one call."""
        options = self._options(*cells)
        if not saved:
            return {"options": options}
        try:
            return {"plan_id": service.plan(self.ctx, options=options).plan.id}
        except Conflict:  # e.g. a destructive plan: nothing to apply
            return {"options": options}

    # -- rules --------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        service.list_jobs(self.ctx)

    cells = st.tuples(
        st.integers(0, len(DAYS) - 1),
        st.integers(0, len(DAYS) - 1),
        st.booleans(),
        st.sampled_from([None, "notes", "chat", "mail"]),
    )
    picks = st.integers(0, 50)
    faults = st.none() | st.integers(0, 8)

    @rule(cells=cells, saved=st.booleans(), fail_after=faults)
    def run(self, cells, saved: bool, fail_after: int | None) -> None:
        """A foreground run (inline), failing with ENOSPC after `fail_after` days."""
        plan = self._plan(cells, saved)
        self.fail_after = fail_after
        try:
            outcome = service.run(self.ctx, executor=EXECUTOR, **plan)
        except Conflict as refused:
            self._check_refusal(refused)
            event("run: refused")
            return
        finally:
            self.fail_after = None
        event(f"run: {outcome.job.job.status if outcome.job else 'nothing to do'}")

    @rule(cells=cells, saved=st.booleans(), after=st.sampled_from([0.0, 61.0]))
    def enqueue(self, cells, saved: bool, after: float) -> None:
        """A detached job whose worker never starts (the API always detaches), queued
        `after` seconds later (so earlier queued jobs may have gone unclaimed)."""
        self.clock.now += timedelta(seconds=after)
        try:
            outcome = service.enqueue(self.ctx, executor=EXECUTOR, **self._plan(cells, saved))
        except Conflict as refused:
            self._check_refusal(refused)
            event("enqueue: refused")
            return
        event(f"enqueue: {'queued' if outcome.job else 'nothing to do'}")

    @rule(
        pick=picks, days=st.integers(0, 8), cells=cells, after=st.sampled_from([0.0, 61.0, 600.0])
    )
    def worker_claims_then_dies(self, pick: int, days: int, cells, after: float) -> None:
        """A worker takes a queued job's lease (a new one's if none waits), checkpoints some
        days, and is killed; `after` seconds pass."""
        job_id = self._pick(pick, frozenset({JobStatus.queued}))
        if job_id is None:
            try:
                outcome = service.enqueue(
                    self.ctx, executor=EXECUTOR, options=self._options(*cells)
                )
            except Conflict:
                return
            if outcome.job is None:
                return
            job_id = outcome.job.job.id
        claimed = runtime.claim(self.ctx.settings, owner="doomed", job_id=job_id, now=self.clock())
        assert claimed is not None
        self.die_after = days
        try:
            runtime.execute(
                self.ctx.settings,
                job_id=job_id,
                epoch=claimed[1],
                executor=executors.get_executor(EXECUTOR),
                clock=self.clock,
            )
            event("a worker finished before it could die")
        except WorkerDied:
            event("a worker died mid-step")
            self.dead[job_id] = claimed[1]
        finally:
            self.die_after = None
        self.clock.now += timedelta(seconds=after)

    @precondition(lambda self: self.dead)
    @rule(pick=picks)
    def dead_worker_wakes(self, pick: int) -> None:
        """A killed worker turns out to have been frozen, and wakes up: unless its lease is
        still the job's, it must stop before writing anything."""
        job_id, epoch = sorted(self.dead.items())[pick % len(self.dead)]
        with Session(self.ctx.engine) as session:
            job = session.get(IngestionJob, job_id)
            step = session.scalars(select(JobStep).where(JobStep.job_id == job_id)).first()
        assert job is not None and step is not None and step.id is not None
        if job.status in JOB_LEASED and job.lease_epoch == epoch:
            return  # still its lease: carrying on would be right
        event(f"a worker of a {job.status} job woke up")
        with pytest.raises(LeaseLost):
            runtime.run_step_days(
                StepTicket(self.ctx.settings, job_id, step.id, epoch, self.clock),
                stage_runner=self.stage,
            )

    @precondition(lambda self: self._jobs(JOB_LIVE))
    @rule(pick=picks, force=st.booleans())
    def cancel(self, pick: int, force: bool) -> None:
        job_id = self._pick(pick, JOB_LIVE)
        assert job_id is not None
        before = service.show_job(self.ctx, job_id=job_id).job.status  # a read: may expire it
        try:
            view = service.cancel(self.ctx, job_id=job_id, force=force)
        except Conflict:
            event(f"cancel{' --force' if force else ''} of a {before} job: refused")
            return
        event(f"cancel{' --force' if force else ''} of a {before} job: {view.job.status}")
        assert view.job.status in (JobStatus.cancelled, JobStatus.cancelling)
        if force or before is JobStatus.queued:
            assert view.job.status is JobStatus.cancelled

    @precondition(lambda self: self._jobs(JOB_RESUMABLE))
    @rule(pick=picks, fail_after=faults)
    def resume(self, pick: int, fail_after: int | None) -> None:
        job_id = self._pick(pick, JOB_RESUMABLE)
        assert job_id is not None
        before = service.show_job(self.ctx, job_id=job_id).job.status
        self.fail_after = fail_after
        try:
            view = service.resume(self.ctx, job_id=job_id)
        except Conflict:
            event(f"resume of a {before} job: refused")
            return
        finally:
            self.fail_after = None
        event(f"resume of a {before} job: {view.job.status}")

    @precondition(lambda self: self._jobs(frozenset({JobStatus.queued})))
    @rule()
    def work(self) -> None:
        """Any worker: claims the oldest queued job, whoever queued it."""
        event(f"a worker ran {len(service.work(self.ctx, once=True))} job")

    @rule()
    def reconcile(self) -> None:
        service.reconcile(self.ctx)

    @rule(seconds=st.sampled_from([1.0, 59.0, 61.0, 600.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def ended_jobs_hold_no_cells(self) -> None:
        with Session(self.ctx.engine) as session:
            held = session.execute(
                select(CellClaim.job_id, IngestionJob.status).join(
                    IngestionJob,
                    IngestionJob.id == CellClaim.job_id,  # type: ignore[arg-type]
                )
            ).all()
        # the claim table's key makes one holder per cell; its holder must be live
        assert all(status in JOB_LIVE for _, status in held), held

    @invariant()
    def live_jobs_hold_every_cell_they_have_yet_to_do(self) -> None:
        """So no other job can claim (and run) a cell a live job will run: with the claim
        table's key, no two live jobs ever work on one cell."""
        with Session(self.ctx.engine) as session:
            for job_id in self._jobs(JOB_LIVE):
                held = set(
                    session.execute(
                        select(CellClaim.source, CellClaim.day, CellClaim.stage).where(
                            CellClaim.job_id == job_id
                        )
                    ).all()
                )
                done = set(
                    session.execute(
                        select(Checkpoint.source, Checkpoint.day, Checkpoint.stage).where(
                            Checkpoint.job_id == job_id
                        )
                    ).all()
                )
                steps = session.scalars(select(JobStep).where(JobStep.job_id == job_id))
                todo = {
                    (step.source, date.fromisoformat(day), step.stage)
                    for step in steps
                    for day in step.days
                }
                assert todo - done <= held, f"job {job_id} does not hold {todo - done - held}"

    @invariant()
    def no_live_job_with_an_expired_lease_after_a_read(self) -> None:
        """Each step makes the next read of READS, then the raw rows must hold no leased
        job whose lease expired or whose worker is gone."""
        name, read = READS[self.reads % len(READS)]
        self.reads += 1
        job_id = self._pick(self.reads)
        if job_id is None and name in NEEDS_A_JOB:
            name, read = READS[0]
        read(self.ctx, job_id or 0)
        before = leases.deadline(self.clock(), self.ctx.settings.lease_timeout)
        with Session(self.ctx.engine) as session:
            leased = session.scalars(
                select(IngestionJob).where(IngestionJob.status.in_(JOB_LEASED))  # type: ignore[attr-defined]
            ).all()
        for job in leased:
            assert not leases.lease_expired(job, before), (name, job)
            assert not leases.worker_is_gone(job), (name, job)

    @invariant()
    def checkpoints_only_under_the_current_epoch(self) -> None:
        assert self.stale_writes == []
        with Session(self.ctx.engine) as session:
            epochs = dict(session.execute(select(IngestionJob.id, IngestionJob.lease_epoch)).all())
            counts = session.execute(
                select(Checkpoint.job_id, Checkpoint.lease_epoch, func.count()).group_by(
                    Checkpoint.job_id, Checkpoint.lease_epoch
                )
            ).all()
        for job_id, epoch, n in counts:
            assert epoch <= epochs[job_id]
            if epoch < epochs[job_id]:  # superseded: it may never gain a checkpoint again
                seen = self.old_epochs.setdefault((job_id, epoch), n)
                assert n == seen, f"job {job_id}: epoch {epoch} wrote after it was fenced"

    @invariant()
    def checkpointed_days_are_never_redone(self) -> None:
        assert self.redone == []


WHOLE = service.PlanOptions(
    mode=PlanMode.backfill_range, range_start_day=DAYS[0], range_end_day=DAYS[-1]
)
# what the faces read (CLI, API, the dashboard's pollers), one after each step in turn
READS: list[tuple[str, Callable[[service.Context, int], object]]] = [
    ("jobs", lambda ctx, job_id: service.list_jobs(ctx, limit=1000)),
    ("show", lambda ctx, job_id: service.show_job(ctx, job_id=job_id)),
    ("logs", lambda ctx, job_id: service.job_logs(ctx, job_id=job_id)),
    ("log tail", lambda ctx, job_id: service.log_tail(ctx, job_id=job_id)),
    ("live cells", lambda ctx, job_id: service.live_cells(ctx)),
    ("snapshot", lambda ctx, job_id: service.latest_coverage(ctx)),
    ("preview", lambda ctx, job_id: service.preview_plan(ctx, options=WHOLE)),
    ("can resume", lambda ctx, job_id: service.check_resume(ctx, job_id=job_id)),
    ("held cells", lambda ctx, job_id: service.held_cells(ctx, sources=["notes", "chat"])),
]
NEEDS_A_JOB = {"show", "logs", "log tail", "can resume"}


def test_job_lifecycle_keeps_its_invariants(
    template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Lifecycle.template = template
    monkeypatch.setitem(
        EXECUTORS, EXECUTOR, lambda: InlineExecutor(stage_runner=Lifecycle.current.stage)
    )
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=20,
            stateful_step_count=15,
            deadline=None,
            database=None,
            # no shrinking: it keeps the suite's time bounded when a sequence fails (the
            # failing steps are printed as found; add Phase.shrink to shrink them locally)
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
