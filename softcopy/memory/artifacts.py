"""Reading a stage's upstream artifact back, checked against what the ledger recorded."""

from __future__ import annotations

import hashlib
import io
from datetime import date
from pathlib import Path

import numpy as np
from sqlmodel import Session

from softcopy.errors import StageFailed
from softcopy.memory import ledger
from softcopy.memory.stages import Stage
from softcopy.memory.tables import LedgerEntry


def require_done(
    session: Session, *, source: str, day: date, stage: Stage, wanted_by: Stage
) -> LedgerEntry:
    """The ledger entry of an upstream stage, which must describe a good run."""
    entry = ledger.get(session, source=source, day=day, stage=stage)
    if entry is None or entry.output_digest is None:
        raise StageFailed(wanted_by, source, day, f"no {stage} yet; run {stage} first")
    return entry


def read_checked(path: Path, entry: LedgerEntry, wanted_by: Stage) -> bytes:
    """The artifact's bytes, refusing a missing file or one changed since it was written."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StageFailed(
            wanted_by, entry.source, entry.day, f"{entry.stage} artifact missing: {path}"
        ) from None
    if hashlib.sha256(data).hexdigest() != entry.artifact_sha:
        raise StageFailed(
            wanted_by,
            entry.source,
            entry.day,
            f"{entry.stage} artifact changed since it was written: {path}; redo {entry.stage}",
        )
    return data


def vectors_to_bytes(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, matrix.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def vectors_from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
