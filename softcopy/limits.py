"""The allowed range of every number a face accepts, defined once for the CLI and the API.

A number outside its range is an `OutOfRange` (exit 2, HTTP 400) naming the field and the
range, never an overflow deep in the database. Ids are INTEGER columns, 32-bit on
PostgreSQL, so an id above 2**31 - 1 cannot exist on either backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softcopy.errors import OutOfRange

MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Bound:
    """An inclusive integer range for one field."""

    field: str
    minimum: int
    maximum: int

    def check(self, value: int, *, field: str | None = None) -> int:
        """`value` if it is in range, else OutOfRange naming `field` (default: ours)."""
        if not self.minimum <= value <= self.maximum:
            raise OutOfRange(field or self.field, value, self.minimum, self.maximum)
        return value

    def schema(self, **extra: Any) -> dict[str, Any]:
        """The JSON schema of the field: an integer in range."""
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum, **extra}


PLAN_ID = Bound("plan_id", 1, MAX_ID)
JOB_ID = Bound("job_id", 1, MAX_ID)
STEP_ID = Bound("step_id", 1, MAX_ID)
RECONCILIATION_ID = Bound("reconciliation_id", 1, MAX_ID)
SINCE = Bound("since", 0, MAX_ID)  # a log row id; 0: from the first row
LOOKBACK_DAYS = Bound("lookback_days", 0, 36_500)  # a hundred years
CHUNK_DAYS = Bound("chunk_days", 1, 3_650)  # ten years of days in one step
PARALLEL = Bound("parallel", 1, 64)  # steps of a job run at once (config.PARALLEL_RANGE)
LIMIT = Bound("limit", 1, 1_000)  # a page of plans or jobs
LOG_LIMIT = Bound("limit", 1, 5_000)  # a page of log rows
LOG_PAGE = Bound("page", 1, 10**9)  # `ingestion logs --page`: 1 is the newest rows
BEFORE = Bound("before", 1, MAX_ID)  # `ingestion logs --before`: a log row id
STEP = Bound("step", 0, MAX_ID)  # a step's number in its job (its ordinal, from 0)
OFFSET = Bound("offset", 0, 10**9)
LEDGER_ROWS = Bound("limit", 1, 1_000_000)  # `softcopy ledger` rows
SEARCH_HITS = Bound("k", 1, 1_000)
UNUSED_DAYS = Bound("older_than_days", 0, 36_500)  # `softcopy cache prune`
DEMO_DAYS = Bound("days", 7, 3_660)
PORT = Bound("port", 0, 65_535)
CULL_IDLE_SECONDS = Bound("cull_idle_seconds", 0, 7 * 86_400)  # 0: never cull

BODY_BYTES = 1 << 20  # the largest request body the API reads (1 MiB)
BODY_DEPTH = 8  # the deepest nesting of a request body (the API's bodies use 2)
