"""Verify a job: for every cell it completed, the artifact is there with the checkpointed
digest, and the index holds exactly the items that were published. Persisted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from softcopy.config import Settings
from softcopy.ingestion import jobs
from softcopy.ingestion.models import Checkpoint, Verification
from softcopy.ingestion.states import Stage
from softcopy.memory.artifacts import artifacts, stage_key
from softcopy.memory.indexes import open_index


def verify_job(session: Session, *, settings: Settings, job_id: int, now: datetime) -> Verification:
    jobs.get_job(session, job_id)
    checkpoints = list(
        session.exec(select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.id))
    )
    latest = {(c.source, c.day, c.stage): c for c in checkpoints}  # a redone day: its last run
    indexed = open_index(settings).day_digests()
    problems = [
        problem for cp in latest.values() if (problem := _check(settings, cp, indexed)) is not None
    ]
    verification = Verification(
        job_id=job_id, created_at=now, ok=not problems, cells_checked=len(latest), problems=problems
    )
    session.add(verification)
    session.flush()
    return verification


def _check(
    settings: Settings, cp: Checkpoint, indexed: dict[tuple[str, Any], tuple[int, str]]
) -> dict[str, Any] | None:
    where = {"source": cp.source, "day": cp.day.isoformat(), "stage": str(cp.stage)}
    if cp.stage is Stage.publish:
        rows, found = indexed.get((cp.source, cp.day), (0, None))
        if rows != cp.items or (rows and found != cp.output_digest):
            return where | {
                "problem": f"the index holds {rows} items for this day, published {cp.items}"
                + ("" if rows != cp.items else " (other items than were published)")
            }
        return None
    store, key = artifacts(settings), stage_key(cp.stage, cp.source, cp.day)
    found = store.sha256(key)
    if found is None:
        return where | {"problem": f"artifact missing: {store.location(key)}"}
    if found != cp.artifact_sha:
        return where | {"problem": f"artifact changed since the checkpoint: {store.location(key)}"}
    return None
