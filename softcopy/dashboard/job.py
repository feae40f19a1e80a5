"""One job in detail: status and progress, Resume / Cancel / Verify with their results in
place, its steps with their checkpoints and notebooks, and the tail of its logs."""

from __future__ import annotations

import html
import os
import threading
from collections import deque
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import Panel, badge, button, day_span, fmt, guarded, html_table
from softcopy.ingestion import service
from softcopy.ingestion.leases import describe_wait
from softcopy.ingestion.models import IngestionJob, JobStep, LogRecord, Verification
from softcopy.ingestion.states import JOB_LIVE, JOB_RESUMABLE, JobStatus

LOG_TAIL = 40
BAR_STYLES = {
    JobStatus.succeeded: "success",
    JobStatus.failed: "danger",
    JobStatus.interrupted: "danger",
    JobStatus.cancelled: "warning",
    JobStatus.cancelling: "warning",
}


def server_base_url() -> str:
    """The server's base URL as Voilà tells the kernel (its request path), else '/'."""
    path = os.environ.get("SCRIPT_NAME", "")
    return path.split("voila/", 1)[0] if "voila/" in path else "/"


def notebook_link(job_id: int, step: JobStep) -> str:
    """A link to the step's executed notebook, served by the ingestion API."""
    if not step.artifact:
        return ""
    url = f"{server_base_url()}api/ingestion/jobs/{job_id}/steps/{step.id}/notebook"
    name = html.escape(step.artifact.rsplit("/", 1)[-1])
    return f'<a href="{html.escape(url)}" target="_blank" download="{name}">{name}</a>'


def verification_html(found: Verification | None) -> str:
    if found is None:
        return ""
    when = fmt(found.created_at)
    if found.ok:
        return (
            f'<div class="sc-msg sc-ok">verified at {when}: {found.cells_checked} cells checked, '
            "artifacts and index match the checkpoints</div>"
        )
    problems = html_table(
        ["problem"],
        [(" · ".join(f"{k}: {fmt(v)}" for k, v in p.items()),) for p in found.problems],
        limit=20,
    )
    return (
        f'<div class="sc-msg sc-error">verification failed at {when}: '
        f"{len(found.problems)} problems in {found.cells_checked} cells</div>{problems}"
    )


def log_line(row: LogRecord) -> str:
    where = " ".join(x for x in (row.source, fmt(row.day)) if x)
    return f"{row.ts:%H:%M:%S} {row.level:<7} {row.event:<18} {where:<18} {row.message}"


class JobDetail(Panel):
    """The chosen job; `refresh()` reads it again (the poller calls it while it is live)."""

    job_id = traitlets.Int(None, allow_none=True)
    status = traitlets.Unicode("")  # of the shown job, as last read
    cells_done = traitlets.Int(0)
    cells_total = traitlets.Int(0)
    started = traitlets.Int(0)  # bumped when Resume starts a worker: the list should poll

    def __init__(self, ctx: service.Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self._lock = threading.RLock()  # the jobs poller thread refreshes while buttons act
        self._logs: deque[str] = deque(maxlen=LOG_TAIL)
        self._log_after = 0
        self.header = widgets.HTML()
        self.header.add_class("sc-job-header")
        self.progress = widgets.IntProgress(min=0, max=1, description="Progress")
        self.progress_label = widgets.Label()
        self.progress_label.add_class("sc-progress-label")
        self.resume_button = button("Resume", self.resume)
        self.cancel_button = button("Cancel", self.cancel, style="warning")
        self.verify_button = button("Verify", self.verify)
        self.verification = widgets.HTML()
        self.verification.add_class("sc-verification")
        self.steps = widgets.HTML()
        self.logs = widgets.HTML()
        self.children = [
            self.header,
            widgets.HBox([self.progress, self.progress_label]),
            widgets.HBox([self.resume_button, self.cancel_button, self.verify_button]),
            self.message_area,
            self.verification,
            widgets.HTML("<b>Steps</b> (done = days checkpointed)"),
            self.steps,
            widgets.HTML("<b>Log tail</b>"),
            self.logs,
        ]
        self.add_class("sc-job")
        self.observe(self._job_changed, names="job_id")
        self._job_changed()

    @guarded("show job")
    def refresh(self) -> None:
        with self._lock:
            if self.job_id is None:
                return
            view = service.show_job(self.ctx, job_id=self.job_id)
            new_logs = service.job_logs(self.ctx, job_id=self.job_id, after_id=self._log_after)
            self._show(view, new_logs)

    @guarded("resume")
    def resume(self) -> None:
        assert self.job_id is not None
        view = service.resume(self.ctx, job_id=self.job_id, detach=True)
        self.say(f"job {self.job_id} resumed from its checkpoints in a new worker", "ok")
        self._show(view, [])
        self.started += 1

    @guarded("cancel")
    def cancel(self) -> None:
        assert self.job_id is not None
        view = service.cancel(self.ctx, job_id=self.job_id)
        if view.job.status in JOB_LIVE:
            self.say(f"cancel requested for job {self.job_id}: its worker stops at the next day")
        else:
            self.say(f"job {self.job_id} {view.job.status}", "ok")
        self._show(view, [])

    @guarded("verify")
    def verify(self) -> None:
        assert self.job_id is not None
        found = service.verify(self.ctx, job_id=self.job_id)
        self.verification.value = verification_html(found)
        self.say(
            f"job {self.job_id} verified" if found.ok else f"job {self.job_id} failed to verify",
            "ok" if found.ok else "error",
        )

    def _job_changed(self, _: object = None) -> None:
        with self._lock:
            self._reset()
        if self.job_id is not None:
            self.refresh()

    def _reset(self) -> None:
        self._logs.clear()
        self._log_after = 0
        self.say("")
        self.verification.value = ""
        self.steps.value = self.logs.value = ""
        self.status = ""
        if self.job_id is None:
            self.header.value = "<i>choose a job above</i>"
            for b in (self.resume_button, self.cancel_button, self.verify_button):
                b.disabled = True

    def _show(self, view: service.JobView, new_logs: list[LogRecord]) -> None:
        with self._lock:
            if view.job.id == self.job_id:  # else another job was chosen meanwhile
                self._draw(view, new_logs)

    def _draw(self, view: service.JobView, new_logs: list[LogRecord]) -> None:
        job = view.job
        for row in new_logs:
            self._logs.append(log_line(row))
            self._log_after = max(self._log_after, row.id or 0)
        self.header.value = _header_html(job, view.unclaimed_seconds)
        self.progress.max = max(job.cells_total, 1)
        self.progress.value = min(job.cells_done, self.progress.max)
        self.progress.bar_style = BAR_STYLES.get(job.status, "info")
        percent = 100 * job.cells_done // max(job.cells_total, 1)
        self.progress_label.value = f"{job.cells_done}/{job.cells_total} cells ({percent}%)"
        self.resume_button.disabled = job.status not in JOB_RESUMABLE
        self.cancel_button.disabled = job.status not in JOB_LIVE
        self.verify_button.disabled = job.status in JOB_LIVE
        if view.verification is not None:
            self.verification.value = verification_html(view.verification)
        self.steps.value = html_table(
            ["#", "stage", "source", "days", "done", "status", "attempts", "error", "notebook"],
            [
                (
                    s.step.ordinal,
                    s.step.stage,
                    s.step.source,
                    day_span(s.step.days),
                    f"{s.days_done}/{len(s.step.days)}",
                    badge(s.step.status),
                    s.step.attempts,
                    s.step.error,
                    notebook_link(job.id or 0, s.step),
                )
                for s in view.steps
            ],
            raw=(5, 8),
            limit=200,
        )
        self.logs.value = f'<pre class="sc-logs">{html.escape(chr(10).join(self._logs))}</pre>'
        self.cells_done, self.cells_total = job.cells_done, job.cells_total
        self.status = str(job.status)


def _header_html(job: IngestionJob, unclaimed_seconds: float | None = None) -> str:
    facts = [
        f"queued, {describe_wait(unclaimed_seconds)}: no worker took it"
        if unclaimed_seconds
        else "",
        f"plan {job.plan_id}",
        f"executor {job.executor}",
        f"worker pid {job.worker_pid}" if job.worker_pid else "",
        f"on {job.worker_host}" if job.worker_host else "",
        f"lease epoch {job.lease_epoch}",
        f"heartbeat {fmt(job.heartbeat_at)}" if job.heartbeat_at else "",
        f"created {fmt(job.created_at)}",
        f"started {fmt(job.started_at)}" if job.started_at else "",
        f"finished {fmt(job.finished_at)}" if job.finished_at else "",
        "cancel requested" if job.cancel_requested else "",
    ]
    error = f'<div class="sc-msg sc-error">{html.escape(job.error)}</div>' if job.error else ""
    return (
        f'<div><b class="sc-job-title">Job {job.id}</b> {badge(job.status)} '
        f'<span class="sc-facts">{html.escape(" · ".join(f for f in facts if f))}</span>'
        f"</div>{error}"
    )
