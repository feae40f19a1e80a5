"""A job in a few facts (ingestion/summary.py): title, cells, rate, ETA, failed steps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from softcopy.ingestion.models import IngestionJob, JobStep
from softcopy.ingestion.states import JobStatus, PlanMode, Stage, StepStatus
from softcopy.ingestion.summary import FAILED_LISTED, summarize, title

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def job(status: JobStatus, total: int, finished: datetime | None = None) -> IngestionJob:
    return IngestionJob(
        id=7,
        plan_id=1,
        status=status,
        executor="inline",
        chunk_days=7,
        created_at=T0,
        started_at=T0,
        finished_at=finished,
        cells_total=total,
    )


def step(ordinal: int, status: StepStatus, days: int = 10) -> JobStep:
    return JobStep(
        id=ordinal + 1,
        job_id=7,
        ordinal=ordinal,
        stage=Stage.export,
        source="notes",
        start_day=date(2026, 1, 1),
        end_day=date(2026, 1, days),
        days=[f"2026-01-{d:02d}" for d in range(1, days + 1)],
        status=status,
    )


def test_a_running_job_has_a_rate_and_an_eta_from_its_checkpoints() -> None:
    steps = [(step(0, StepStatus.succeeded), 10), (step(1, StepStatus.running), 5)]
    steps += [(step(2, StepStatus.pending), 0)]
    got = summarize(job(JobStatus.running, 30), steps, title="t", now=T0 + timedelta(seconds=60))
    assert (got.cells_done, got.cells_total, got.percent) == (15, 30, 50)
    assert got.elapsed_seconds == 60 and got.rate == 0.25 and got.eta_seconds == 60
    assert [s.ordinal for s in got.running_steps] == [1] and got.failed_total == 0


def test_an_ended_job_has_no_eta_and_its_time_stops_at_its_end() -> None:
    failed = [(step(i, StepStatus.failed), 0) for i in range(FAILED_LISTED + 2)]
    ended = job(JobStatus.failed, 90, finished=T0 + timedelta(seconds=30))
    got = summarize(
        ended,
        [(step(99, StepStatus.succeeded), 9), *failed],
        title="t",
        now=T0 + timedelta(hours=5),
    )
    assert got.elapsed_seconds == 30 and got.rate == 0.3 and got.eta_seconds is None
    assert len(got.failed_steps) == FAILED_LISTED and got.failed_total == FAILED_LISTED + 2


def test_titles_say_mode_days_and_sources() -> None:
    every = ["chat", "mail", "notes"]
    params = {"range_start_day": "2016-12-01", "range_end_day": "2026-12-01", "sources": every}
    assert (
        title(
            mode=PlanMode.backfill_range,
            params=params,
            sources_all=every,
            first_day=None,
            last_day=None,
        )
        == "backfill 2016-12-01 → 2026-12-01 · all sources"
    )
    catch_up = {"lookback_days": 7, "sources": ["mail"], "stages": ["export"]}
    assert (
        title(
            mode=PlanMode.catch_up_recent,
            params=catch_up,
            sources_all=every,
            first_day=None,
            last_day=None,
        )
        == "catch-up last 7 days · mail · export only"
    )
    repair = {"reconciliation_id": 4, "sources": every}
    assert (
        title(
            mode=PlanMode.repair,
            params=repair,
            sources_all=every,
            first_day=date(2019, 6, 1),
            last_day=date(2019, 6, 3),
        )
        == "repair 2019-06-01 → 2019-06-03 from reconciliation 4 · all sources"
    )
