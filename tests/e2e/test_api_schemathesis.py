"""Property-based test of the HTTP API against its own OpenAPI document: schemathesis reads
the live `/api/ingestion/openapi.json` of a real `softcopy serve` (with its token) over a
small demo home and sends, for every operation, the document's examples, requests it
generates from the document (positive) and requests that violate it (negative).

Every response must be no 5xx, a status code the document lists for the operation, of the
documented content type and body schema, and an error body short and free of CLI flags; a
request that violates the document must be refused (4xx). Routes that start work (POST
/jobs, resume) run for real: a job cancelled beforehand is there to resume, and every
worker (and kernel) the server spawned is killed and reaped at the end. Bounded: EXAMPLES
generated requests per operation and mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import psutil
import pytest
import schemathesis
import typer.main
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from softcopy.api import app as api
from softcopy.cli.main import app as cli_app
from softcopy.ingestion import service
from softcopy.ingestion.states import JobStatus, PlanMode
from tests.conftest import DEMO_TODAY

TOKEN = "schemathesis-token-0123456789"
AUTH = {"Authorization": f"token {TOKEN}"}
EXAMPLES = 15  # generated requests per operation and mode (16 operations, 2 modes)
ERROR_BYTES = 4096  # an error body's size at most: messages and echoed values are cut


def cli_flags() -> set[str]:
    """Every --option of every softcopy command (--allow-shrink, --replan, …)."""
    flags: set[str] = set()
    commands = [typer.main.get_command(cli_app)]
    while commands:
        command = commands.pop()
        flags |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        commands += getattr(command, "commands", {}).values()
    return {flag for flag in flags if flag.startswith("--")}


CLI_FLAG = re.compile("|".join(rf"{re.escape(f)}(?![\w-])" for f in sorted(cli_flags())))


@schemathesis.check
def errors_are_short_and_worded_for_the_api(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error body is short whatever was sent, and names JSON fields, never CLI flags."""
    if response.status_code < 400:
        return None
    assert len(response.content) <= ERROR_BYTES, f"{len(response.content)} bytes of error body"
    flags = CLI_FLAG.findall(response.content.decode(errors="replace"))
    assert not flags, f"the error names CLI flags: {flags}"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    errors_are_short_and_worded_for_the_api,
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(demo_home: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`softcopy serve` on a loopback port over the demo home; at the end the server stops
    and every process it spawned (detached workers, their kernels) is killed and reaped."""
    port = free_port()
    argv = [sys.executable, "-m", "softcopy", "serve", "--home", str(demo_home)]
    argv += ["--port", str(port), "--token", TOKEN]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    env = os.environ | {
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        spawned = freeze_descendants(process.pid)
        process.kill()
        process.wait(timeout=30)
        for child in spawned:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(spawned, timeout=30)
        left = [p.pid for p in spawned if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == [], f"processes the server spawned are still running: {left}"


def freeze_descendants(pid: int) -> list[psutil.Process]:
    """Stop (SIGSTOP) every descendant of `pid` until no new one appears: a worker cannot
    start a kernel between being listed and being killed."""
    frozen: dict[int, psutil.Process] = {}
    while True:
        try:
            found = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        for known in list(frozen.values()):
            with contextlib.suppress(psutil.NoSuchProcess):
                found += known.children(recursive=True)
        new = [p for p in found if p.pid not in frozen]
        if not new:
            return list(frozen.values())
        for child in new:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.suspend()
            frozen[child.pid] = child


def cancelled_job(home: Path) -> int:
    """A job to resume: queued (no worker) over two days of the mail source (the document's
    example run is of the notes source), then cancelled."""
    ctx = service.open_context(home)
    day = DEMO_TODAY - timedelta(days=3)
    options = service.PlanOptions(
        PlanMode.backfill_range,
        sources=["mail"],
        range_start_day=day,
        range_end_day=day + timedelta(days=1),
    )
    queued = service.enqueue(ctx, options=options).job
    assert queued is not None and queued.job.id is not None
    assert service.cancel(ctx, job_id=queued.job.id).job.status is JobStatus.cancelled
    return queued.job.id


def exchange(
    base: str,
    strategy: Any,
    count: int,
    label: tuple[str, str],
    statuses: Counter[tuple[str, str, int]],
    failures: dict[tuple[str, str, str], str],
) -> Any:
    """A hypothesis test sending `count` cases of `strategy` with the token and checking
    each response; failures are collected (one per kind) rather than raised."""
    checks = CHECKS + [negative_data_rejection] * (label[1] == "negative")

    @given(case=strategy)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: schemathesis.Case) -> None:
        case.headers = {**(case.headers or {}), **AUTH}  # the real token, always
        if case.query:
            case.query.pop("token", None)
        response = case.call(base_url=f"{base}/api/ingestion", timeout=60)
        statuses[(*label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=checks, headers=AUTH)
        except (AssertionError, BaseExceptionGroup) as failure:
            first = str(failure).strip().splitlines()[0][:200]
            failures.setdefault((*label, first), str(failure)[:1500])

    return send


def test_the_live_api_keeps_to_its_openapi_document(served, demo_home: Path) -> None:
    process, base = served
    schema = schemathesis.openapi.from_url(
        f"{base}/api/ingestion/openapi.json", headers=AUTH, wait_for_schema=90, timeout=10
    )
    assert process.poll() is None
    assert cancelled_job(demo_home) == 1  # the id the document's examples use
    statuses: Counter[tuple[str, str, int]] = Counter()
    failures: dict[tuple[str, str, str], str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    served_routes = {
        f"{method.upper()} {template}"
        for template, methods in api.route_methods().items()
        for method in methods
    }
    # schemathesis leaves out the operation that serves the document it reads
    assert {o.label for o in operations} == served_routes - {"GET /openapi.json"}

    # Resume first: job 1 is resumable before any generated run can claim its cells.
    operations.sort(key=lambda o: o.label != "POST /jobs/{job_id}/resume")
    for operation in operations:
        explicit = schema.get_strategies_from_examples(operation)
        runs: list[tuple[str, Any, int]] = []
        if explicit:
            runs.append(("examples", st.one_of(explicit), 2 * len(explicit)))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            runs.append((mode.value, operation.as_strategy(generation_mode=mode), EXAMPLES))
        for mode_name, strategy, count in runs:
            label = (operation.label, mode_name)
            exchange(base, strategy, count, label, statuses, failures)()

    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert not [key for key in statuses if key[2] >= 500]
    started = sum(n for (label, _, code), n in statuses.items() if code == 202)
    resumed = statuses[("POST /jobs/{job_id}/resume", "examples", 202)]
    assert started >= 2 and resumed == 1, statuses
    assert sum(statuses.values()) >= len(operations) * EXAMPLES
