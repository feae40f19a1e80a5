"""Use cases that start, continue, stop and check jobs, and the worker that runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlmodel import Session

from softcopy.db import session_scope
from softcopy.errors import (
    Conflict,
    DestructivePlan,
    EnvironmentFault,
    Interrupted,
    NotFound,
    SoftcopyError,
)
from softcopy.ingestion import jobs, leases, planner, runtime
from softcopy.ingestion import verify as verify_
from softcopy.ingestion.executors import check_executor, get_executor
from softcopy.ingestion.models import (
    Checkpoint,
    IngestionPlan,
    Verification,
)
from softcopy.ingestion.runtime import Progress
from softcopy.ingestion.service.context import (
    Context,
    artifact_presence,
    embed_model,
    expire_leases,
    refresh_sources,
)
from softcopy.ingestion.service.plans import make_plan, options_of, plan_facts
from softcopy.ingestion.service.reads import show_job
from softcopy.ingestion.service.views import (
    JobView,
    PlanOptions,
    ResumeCheck,
    RunOutcome,
    TakenOver,
)
from softcopy.ingestion.states import (
    JOB_RESUMABLE,
    PlanStatus,
    Stage,
)
from softcopy.memory import artifacts, scan
from softcopy.memory.indexes import open_index


def enqueue(
    ctx: Context,
    *,
    plan_id: int | None = None,
    options: PlanOptions | None = None,
    executor: str = "inline",
    chunk_days: int = jobs.DEFAULT_CHUNK_DAYS,
    replan: bool = False,
) -> RunOutcome:
    """Make a queued job from a saved plan (refused when stale, unless `replan`) or from a
    new one; any worker (`softcopy ingestion worker`) can then run it."""
    # an unknown executor, or one that cannot run here, is refused before anything is written
    check_executor(executor, ctx.settings)
    artifacts.check(ctx.settings)  # and a bucket that is missing or cannot be reached
    check_index(ctx)
    expire_leases(ctx)  # in its own transaction: a refusal below must not undo it
    with session_scope(ctx.engine) as session:
        chosen = _plan_to_run(ctx, session, plan_id, options, replan)
        if chosen.cells == 0:
            return RunOutcome(plan=chosen, job=None, facts=plan_facts(ctx, session, chosen))
        job = jobs.create_job(
            session,
            plan=chosen,
            executor=executor,
            chunk_days=chunk_days,
            now=ctx.clock(),
            lease_timeout=ctx.settings.lease_timeout,
        )
    assert job.id is not None
    return RunOutcome(plan=chosen, job=show_job(ctx, job_id=job.id))


def run(
    ctx: Context,
    *,
    plan_id: int | None = None,
    options: PlanOptions | None = None,
    executor: str = "inline",
    chunk_days: int = jobs.DEFAULT_CHUNK_DAYS,
    replan: bool = False,
    detach: bool = False,
    progress: Progress | None = None,
    parallel: int | None = None,
) -> RunOutcome:
    """Enqueue a job, then run it here (with progress), or in a detached worker;
    `parallel` steps at once (default: the settings', one per core)."""
    queued = enqueue(
        ctx,
        plan_id=plan_id,
        options=options,
        executor=executor,
        chunk_days=chunk_days,
        replan=replan,
    )
    if queued.job is None:
        return queued
    assert queued.job.job.id is not None
    ran = _execute(ctx, queued.job.job.id, detach, progress, parallel)
    return RunOutcome(plan=queued.plan, job=ran.job, worker_pid=ran.worker_pid)


def resume(
    ctx: Context,
    *,
    job_id: int,
    detach: bool = False,
    skip_bad_records: bool = False,
    allow_shrink: bool = False,
    progress: Progress | None = None,
    parallel: int | None = None,
) -> JobView:
    """Continue a failed, cancelled or interrupted job from its checkpoints;
    `skip_bad_records` and `allow_shrink` turn those options of its plan on from now on
    (without `allow_shrink`, a job whose remaining cells would now remove published items
    is refused: DestructivePlan)."""
    check_index(ctx)
    artifacts.check(ctx.settings)  # a bucket missing or unreachable: refused, nothing written
    with Session(ctx.engine) as session:
        check_executor(jobs.get_job(session, job_id).executor, ctx.settings)
    expire_leases(ctx)
    with session_scope(ctx.engine) as session:
        if not allow_shrink:  # before any write: a refusal leaves none
            _check_resume_shrink(ctx, session, job_id)
        turned_on = {
            name: True
            for name, on in (("skip_bad_records", skip_bad_records), ("allow_shrink", allow_shrink))
            if on
        }
        if turned_on:
            saved = session.get(IngestionPlan, jobs.get_job(session, job_id).plan_id)
            assert saved is not None
            saved.params = {**saved.params, **turned_on}  # a new dict: persisted
            session.add(saved)
        jobs.prepare_resume(
            session, job_id=job_id, now=ctx.clock(), lease_timeout=ctx.settings.lease_timeout
        )
    view = _execute(ctx, job_id, detach, progress, parallel).job
    assert view is not None
    return view


def check_resume(ctx: Context, *, job_id: int) -> ResumeCheck:
    """Whether `resume` can succeed, asked without resuming (a face disables its Resume with
    the reason): what resume would refuse (the job is not resumable, its rest would shrink
    published days, a live job holds its cells), and how many of its remaining export days
    hold unreadable records, which fail again unless its plan skips them."""
    expire_leases(ctx)
    with session_scope(ctx.engine) as session:  # the sources' scan is refreshed: it writes
        job = jobs.get_job(session, job_id)
        if job.status not in JOB_RESUMABLE:
            return ResumeCheck(
                blocker=f"job {job_id} is {job.status}; only failed, cancelled or interrupted "
                "jobs can be resumed"
            )
        try:
            _check_resume_shrink(ctx, session, job_id)
        except DestructivePlan as refused:
            return ResumeCheck(blocker=str(refused), removes_published=True)
        done = jobs.checkpointed_cells(session, job_id)
        todo = {
            (step.source, date.fromisoformat(d), step.stage)
            for step in jobs.steps_of(session, job_id)
            for d in step.days
        } - done
        sources = sorted({source for source, _, _ in todo})
        holding = {
            holder
            for cell, holder in jobs.held_cells(session, sources).items()
            if cell in todo and holder != job_id
        }
        # as in resume: a queued job no worker claimed within the lease gives its cells up
        now, timeout = ctx.clock(), ctx.settings.lease_timeout
        holders = {
            holder
            for holder in holding
            if leases.unclaimed_for(jobs.get_job(session, holder), now=now, timeout=timeout) is None
        }
        saved = session.get(IngestionPlan, job.plan_id)
        assert saved is not None
        export_days = {(source, day) for source, day, stage in todo if stage is Stage.export}
        bad_days = set()
        if export_days:
            first, last = min(d for _, d in export_days), max(d for _, d in export_days)
            bad_days = {
                (p.source, p.day)
                for p in scan.source_problems(session, sources, first, last)
                if (p.source, p.day) in export_days
            }
    blocker = None
    if holders:
        held_by = ", ".join(str(h) for h in sorted(holders))
        blocker = f"live job {held_by} holds some of its cells; wait for it, or cancel it"
    return ResumeCheck(
        blocker=blocker,
        bad_record_days=len(bad_days),
        skips_bad_records=bool(saved.params.get("skip_bad_records")),
    )


def cancel(ctx: Context, *, job_id: int, force: bool = False) -> JobView:
    """Stop a job: a queued one, or one whose worker is gone, at once; a running one at its
    next day boundary (`force`: now, fencing its worker)."""
    with session_scope(ctx.engine) as session:
        jobs.cancel(
            session,
            job_id=job_id,
            force=force,
            now=ctx.clock(),
            lease_timeout=ctx.settings.lease_timeout,
        )
    return show_job(ctx, job_id=job_id)


def check_index(ctx: Context) -> None:
    """A team index (PostgreSQL) that does not answer is one error before a job is written
    (the embedded index is a file of this home: its faults are the day's, as always)."""
    if ctx.settings.index_shared:
        open_index(ctx.settings).check()


def verify(ctx: Context, *, job_id: int) -> Verification:
    with session_scope(ctx.engine) as session:
        return verify_.verify_job(session, settings=ctx.settings, job_id=job_id, now=ctx.clock())


def held_cells(ctx: Context, *, sources: list[str]) -> Callable[[str, date, Stage], int | None]:
    """Which live job holds a cell (source, day, stage), as the legacy in-process runner
    (`memory.runner.run_stages(held=...)`) asks: the stage primitives leave such cells to
    their job. Read once, now, after ending the jobs whose worker is gone."""
    expire_leases(ctx)
    with Session(ctx.engine) as session:
        held = jobs.held_cells(session, sources)

    def holder(source: str, day: date, stage: Stage) -> int | None:
        return held.get((source, day, stage))

    return holder


def take_unclaimed_cells(
    ctx: Context,
    *,
    sources: list[str],
    stages: list[Stage],
    start: date | None,
    end: date | None,
    taker: str,
) -> list[TakenOver]:
    """A stage run outside the jobs (the legacy in-process runner, whose cells `held_cells`
    tells) is not blocked by a queued job no worker claimed within the lease timeout, as a
    run or resume is not: that job gives up its cells of `sources` x `stages` in [start,
    end] and becomes interrupted (no worker claims it any more, so nothing races the stage
    run; resuming it later redoes its cells). `taker` says what took them, for the job's
    error. Call before `held_cells`; the jobs given up, oldest first."""
    expire_leases(ctx)
    with session_scope(ctx.engine) as session:
        given = jobs.give_up_unclaimed(
            session,
            sources=sources,
            stages=stages,
            start=start,
            end=end,
            taker=taker,
            now=ctx.clock(),
            lease_timeout=ctx.settings.lease_timeout,
        )
        taken = []
        for job, waited in given:
            assert job.id is not None
            since = job.queued_at or job.created_at
            taken.append(TakenOver(job_id=job.id, queued_at=since, unclaimed_seconds=waited))
    return taken


def work(
    ctx: Context,
    *,
    once: bool,
    job_id: int | None = None,
    idle_seconds: float = 1.0,
    stop: threading.Event | None = None,
    on_fault: Callable[[SoftcopyError], None] | None = None,
    parallel: int | None = None,
) -> list[int]:
    """Be a worker: claim queued jobs and run them (one with `once`); the job ids run.

    A polling worker (not `once`, no `job_id`) outlives faults of the machine: a database
    that does not answer, a job's end that could not be written (its lease then expires
    and the job becomes interrupted, resumable). Each is passed to `on_fault` and the worker
    polls again after `idle_seconds`; `stop` ends the loop between jobs."""
    artifacts.check(ctx.settings)  # a worker that cannot write artifacts claims no job
    owner = runtime.new_owner()
    ran: list[int] = []
    polling = not once and job_id is None
    while stop is None or not stop.is_set():
        try:
            expire_leases(ctx)
            claimed = runtime.claim(ctx.settings, owner=owner, job_id=job_id, now=ctx.clock())
            if claimed is not None:
                ran.append(claimed[0])
                _run_claimed(ctx, *claimed, progress=None, parallel=parallel)
        except (EnvironmentFault, runtime.JobNotEnded) as fault:
            if not polling:
                raise
            if on_fault is not None:
                on_fault(fault)
            claimed = None
        if not polling:
            return ran
        if claimed is None:
            (stop or threading.Event()).wait(idle_seconds)
    return ran


@dataclass(frozen=True)
class Executed:
    """How `_execute` left a job: its view, and the detached worker's pid if it started one."""

    job: JobView
    worker_pid: int | None = None


def _execute(
    ctx: Context, job_id: int, detach: bool, progress: Progress | None, parallel: int | None
) -> Executed:
    if detach:
        pid = spawn_worker(ctx, job_id, parallel=parallel)
        return Executed(show_job(ctx, job_id=job_id), worker_pid=pid)
    claimed = runtime.claim(ctx.settings, owner=runtime.new_owner(), job_id=job_id, now=ctx.clock())
    if claimed is not None:
        try:
            _run_claimed(ctx, *claimed, progress=progress, parallel=parallel)
        except KeyboardInterrupt:  # the runtime left the job cancelled, checkpoints kept
            summary = show_job(ctx, job_id=job_id).summary
            assert summary is not None
            raise Interrupted(job_id, summary.cells_done, summary.cells_total) from None
    return Executed(show_job(ctx, job_id=job_id))


def _run_claimed(
    ctx: Context, job_id: int, epoch: int, *, progress: Progress | None, parallel: int | None
) -> None:
    with Session(ctx.engine) as session:
        name = jobs.get_job(session, job_id).executor
    executor = get_executor(name)
    try:
        runtime.execute(
            ctx.settings,
            job_id=job_id,
            epoch=epoch,
            executor=executor,
            clock=ctx.clock,
            progress=progress,
            parallel=ctx.settings.parallel if parallel is None else parallel,
            more_executors=lambda: get_executor(name),
        )
    finally:
        executor.close()  # e.g. the notebook executor's warm kernel


# the detached worker's process (service/worker.py), started by module name: no face's
# command line is involved
WORKER_MODULE = "softcopy.ingestion.service.worker"


def spawn_worker(ctx: Context, job_id: int, *, parallel: int | None = None) -> int:
    """A worker in its own process session: it survives the terminal that started it."""
    steps = {"SOFTCOPY_PARALLEL": str(ctx.settings.parallel if parallel is None else parallel)}
    log_dir = ctx.settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"worker-job-{job_id}.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(job_id), str(ctx.settings.home)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ | {"SOFTCOPY_DATABASE_URL": ctx.settings.database_url} | steps,
        )
    return process.pid


def _plan_to_run(
    ctx: Context,
    session: Session,
    plan_id: int | None,
    options: PlanOptions | None,
    replan: bool,
) -> IngestionPlan:
    if plan_id is None:
        assert options is not None, "run needs a plan id or plan options"
        return make_plan(ctx, session, options)
    saved = session.get(IngestionPlan, plan_id)
    if saved is None:
        raise NotFound("plan", plan_id)
    if saved.status is not PlanStatus.ready:
        raise Conflict(f"plan {plan_id} was already run; make a new plan")
    items = planner.plan_items(session, plan_id)
    refresh_sources(ctx, session, sorted({i.source for i in items}))
    if replan:
        return make_plan(ctx, session, options_of(saved))
    planner.check_current(
        session, plan=saved, model=embed_model(ctx), present=artifact_presence(ctx)
    )
    return saved


def _check_resume_shrink(ctx: Context, session: Session, job_id: int) -> None:
    """The job's remaining cells must not shrink published days its plan did not allow to."""
    job = jobs.get_job(session, job_id)
    if job.status not in JOB_RESUMABLE:
        return  # prepare_resume says why it cannot be resumed
    saved = session.get(IngestionPlan, job.plan_id)
    assert saved is not None
    done = {
        (source, day, Stage(stage))
        for source, day, stage in session.execute(
            select(Checkpoint.source, Checkpoint.day, Checkpoint.stage).where(
                Checkpoint.job_id == job_id
            )
        )
    }
    refresh_sources(
        ctx, session, sorted({i.source for i in planner.plan_items(session, job.plan_id)})
    )
    planner.check_resume(
        session,
        plan=saved,
        done=done,
        model=embed_model(ctx),
        timezone=ctx.settings.timezone,
        present=artifact_presence(ctx),
    )
