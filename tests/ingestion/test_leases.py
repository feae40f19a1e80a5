"""leases.py on its own: taking a lease, keeping it fresh with the injected clock, and
telling how long a queued job has waited. (Whether a worker's process is still there, and
signalling it, is tested with real processes in test_stuck_jobs.py.)"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from sqlalchemy import update

from softcopy.db import session_scope
from softcopy.ingestion import leases
from softcopy.ingestion.models import IngestionJob
from softcopy.ingestion.states import JobStatus
from tests.ingestion.jobkit import Clock, cells, claimed_job, job_row, queue_job


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_claim_takes_the_oldest_queued_job_first_and_none_once_all_are_taken(
    settings, engine, clock
) -> None:
    first = queue_job(engine, cells("chat", 1), clock)
    second = queue_job(engine, cells("mail", 1), clock)
    assert leases.claim(settings, owner="w1", now=clock()) == (first, 1)
    assert leases.claim(settings, owner="w2", now=clock()) == (second, 1)
    assert leases.claim(settings, owner="w3", now=clock()) is None
    job = job_row(engine, first)
    assert (job.status, job.lease_owner, job.heartbeat_at, job.started_at) == (
        JobStatus.running,
        "w1",
        clock(),
        clock(),
    )


def test_claim_of_a_named_job_skips_the_others_and_refuses_a_running_one(
    settings, engine, clock
) -> None:
    older = queue_job(engine, cells("chat", 1), clock)
    named = queue_job(engine, cells("mail", 1), clock)
    assert leases.claim(settings, owner="w", job_id=named, now=clock()) == (named, 1)
    assert leases.claim(settings, owner="w", job_id=named, now=clock()) is None
    assert job_row(engine, older).status is JobStatus.queued


def test_a_resumed_job_is_claimed_under_a_new_epoch(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    with session_scope(engine) as session:  # as resume leaves it: queued, epoch kept
        session.execute(
            update(IngestionJob)
            .where(IngestionJob.id == job_id)  # type: ignore[arg-type]
            .values(status=JobStatus.queued, lease_epoch=4)
        )
    assert leases.claim(settings, owner="w", job_id=job_id, now=clock()) == (job_id, 5)


def test_the_heartbeat_beats_with_the_injected_clock_until_stopped(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    beats: list[int] = []

    def ticking() -> object:
        beats.append(1)
        if len(beats) == 3:
            heartbeat.stop()  # the loop ends before a fourth beat
        clock.advance(10)
        return clock.now

    heartbeat = leases.Heartbeat(settings, job_id=job_id, epoch=1, clock=ticking)  # type: ignore[arg-type]
    heartbeat.interval = 0  # beat at once, again and again: no wall-clock wait
    heartbeat.run()  # in this thread
    assert len(beats) == 3
    assert job_row(engine, job_id).heartbeat_at == clock()


def test_the_heartbeat_stops_by_itself_once_the_lease_is_lost(settings, engine, clock) -> None:
    job_id = claimed_job(settings, engine, cells("chat", 1), clock)
    with session_scope(engine) as session:  # another worker took over
        session.execute(
            update(IngestionJob).where(IngestionJob.id == job_id).values(lease_epoch=2)  # type: ignore[arg-type]
        )
    heartbeat = leases.Heartbeat(settings, job_id=job_id, epoch=1, clock=clock)
    heartbeat.interval = 0
    heartbeat.run()  # returns (instead of beating forever): the lease is not its own
    clock.advance(5)
    assert job_row(engine, job_id).heartbeat_at == clock() - timedelta(seconds=5)


def test_unclaimed_for_counts_a_queued_jobs_wait_only_past_the_timeout(engine, clock) -> None:
    job_id = queue_job(engine, cells("chat", 1), clock)
    clock.advance(60)
    job = job_row(engine, job_id)
    assert leases.unclaimed_for(job, now=clock(), timeout=60) is None
    clock.advance(30)
    assert leases.unclaimed_for(job, now=clock(), timeout=60) == 90.0
    job.status = JobStatus.running
    assert leases.unclaimed_for(job, now=clock(), timeout=60) is None


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (90, "unclaimed for 90 s"),
        (119.9, "unclaimed for 119 s"),
        (120, "unclaimed for 2 min"),
        (7199, "unclaimed for 119 min"),
        (7200, "unclaimed for 2.0 h"),
        (5 * 3600 + 1800, "unclaimed for 5.5 h"),
    ],
)
def test_describe_wait_picks_the_unit_by_size(seconds: float, said: str) -> None:
    assert leases.describe_wait(seconds) == said


def test_a_worker_on_another_host_or_without_a_pid_is_never_taken_for_gone(engine, clock) -> None:
    job = job_row(engine, queue_job(engine, cells("chat", 1), clock))
    assert not leases.worker_is_gone(job)  # no pid recorded
    job.worker_pid, job.worker_host = 2**22 + 7, "elsewhere"  # no such pid here: proves nothing
    assert not leases.worker_is_gone(job) and not leases.is_the_worker(job)
    job.worker_host = socket.gethostname()
    assert leases.worker_is_gone(job)  # on this host, no process has that pid


def test_this_process_is_the_worker_only_with_its_own_start_time(engine, clock) -> None:
    job = job_row(engine, queue_job(engine, cells("chat", 1), clock))
    me = leases.this_worker()
    job.worker_pid, job.worker_host, job.worker_started = me.pid, me.host, me.started
    assert me.pid == os.getpid()
    assert leases.is_the_worker(job) and not leases.worker_is_gone(job)
    job.worker_started = me.started - 100  # the pid was another process's when it claimed
    assert not leases.is_the_worker(job) and leases.worker_is_gone(job)
