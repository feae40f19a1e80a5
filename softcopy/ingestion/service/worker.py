"""The detached worker's process: `python -m softcopy.ingestion.service.worker JOB_ID HOME`
runs one queued job. `spawn_worker` starts it, so starting a worker depends on no face's
command line (the CLI's `softcopy ingestion worker` is one face of the same `work`).

The database comes from SOFTCOPY_DATABASE_URL, which `spawn_worker` sets to its own. Its
output goes to the job's worker log: what it ran, or the one-line error it stopped on.
"""

from __future__ import annotations

import sys

from softcopy.errors import SoftcopyError
from softcopy.ingestion.service.context import open_context
from softcopy.ingestion.service.runs import work


def main(argv: list[str]) -> int:
    job_id, home = int(argv[0]), argv[1]
    try:
        ran = work(open_context(home), once=True, job_id=job_id)
    except SoftcopyError as error:
        print(f"worker for job {job_id}: {error}", file=sys.stderr)
        return 1
    print(f"worker for job {job_id}: ran jobs: {', '.join(map(str, ran)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
