"""One job in detail: what it is (its title, a link that opens the dashboard on it), how far
it got and how fast, what runs now; Resume / Cancel / Verify with their results in place;
a timeline of its steps; its steps (failed and running first, a page at a time) and its log
(the newest rows, older pages on request)."""

from __future__ import annotations

import html
import os
import threading
from datetime import datetime
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.base import Panel, badge, button, fmt, guarded, html_table
from softcopy.dashboard.job_logs import LogView
from softcopy.dashboard.job_steps import StepsView, step_seconds
from softcopy.dashboard.plan import ALLOW_SHRINK
from softcopy.ingestion import service
from softcopy.ingestion.leases import describe_wait
from softcopy.ingestion.models import IngestionJob, Verification
from softcopy.ingestion.states import JOB_LIVE, JOB_RESUMABLE, JobStatus
from softcopy.ingestion.summary import JobSummary
from softcopy.views.timeline import duration, plural, timeline_svg

BAR_STYLES = {
    JobStatus.succeeded: "success",
    JobStatus.failed: "danger",
    JobStatus.interrupted: "danger",
    JobStatus.cancelled: "warning",
    JobStatus.cancelling: "warning",
}
CONFIRM_CELLS = 100  # cancelling a job of this many cells or more asks first
RECHECK_SECONDS = 10.0  # how often a shown resumable job asks again whether it can resume
SKIP_LABEL = "Skip bad records"


def job_link(job_id: int) -> str:
    """The dashboard's URL opened on this job (`?job=N`), relative to the server."""
    path = os.environ.get("SCRIPT_NAME", "")
    page = path if "voila/" in path else ""
    return f"{page}?job={job_id}"


def progress_text(summary: JobSummary) -> str:
    """'360/777 cells (46%) · elapsed 3m 05s · 2.0 cells/s · ETA 3m 10s'."""
    parts = [f"{summary.cells_done:,}/{plural(summary.cells_total, 'cell')} ({summary.percent}%)"]
    if summary.elapsed_seconds is not None:
        parts.append(f"elapsed {duration(summary.elapsed_seconds)}")
    if summary.rate:
        parts.append(f"{summary.rate:.1f} cells/s")
    if summary.eta_seconds is not None:
        parts.append(f"ETA {duration(summary.eta_seconds)}")
    return " · ".join(parts)


def now_running(view: service.JobView, now: Any) -> str:
    """What the job does right now, in a line ('' once it ended)."""
    job, summary = view.job, view.summary
    if job.status is JobStatus.queued:
        if view.unclaimed_seconds:
            return f"waiting for a worker: {describe_wait(view.unclaimed_seconds)}"
        return "waiting for a worker"
    if job.status is JobStatus.cancelling:
        return "cancelling: the worker stops at the end of the day it is on"
    if job.status is not JobStatus.running or summary is None:
        return ""
    if not summary.running_steps:
        return "between steps"
    step = summary.running_steps[0]
    done = next((s.days_done for s in view.steps if s.step.id == step.id), 0)
    took = step_seconds(step, now)
    return (
        f"now running: step {step.ordinal} of {len(view.steps)} · {step.stage} {step.source} "
        f"{step.start_day} … {step.end_day} · {done}/{plural(len(step.days), 'cell')}"
        + (f" · for {duration(took)}" if took is not None else "")
    )


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
        f"{plural(len(found.problems), 'problem')} in {plural(found.cells_checked, 'cell')}"
        f"</div>{problems}"
    )


class JobDetail(Panel):
    """The chosen job; `refresh()` reads it again (the poller calls it while it is live)."""

    job_id = traitlets.Int(None, allow_none=True)
    status = traitlets.Unicode("")  # of the shown job, as last read
    cells_done = traitlets.Int(0)
    cells_total = traitlets.Int(0)
    started = traitlets.Int(0)  # bumped when Resume starts a worker: the list should poll
    resume_reason = traitlets.Unicode("")  # why Resume is off ('' when it is on)

    def __init__(self, ctx: service.Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self._lock = threading.RLock()  # the jobs poller thread refreshes while buttons act
        self._resume_key: tuple[Any, ...] | None = None
        self._checked_at: datetime | None = None
        self.recheck_seconds = RECHECK_SECONDS
        self._resume_check: service.ResumeCheck | None = None
        self._view: service.JobView | None = None
        self.header = widgets.HTML()
        self.header.add_class("sc-job-header")
        self.progress = widgets.IntProgress(min=0, max=1, description="Progress")
        self.progress_label = widgets.Label()
        self.progress_label.add_class("sc-progress-label")
        self.running_line = widgets.HTML()
        self.running_line.add_class("sc-now-running")
        self.resume_button = button("Resume", self.resume)
        self.skip_box = widgets.Checkbox(
            value=False, description=SKIP_LABEL, indent=False, layout={"display": "none"}
        )
        self.skip_box.add_class("sc-skip-bad-records")
        # shown where resume is refused because its rest would remove published items
        self.shrink_box = widgets.Checkbox(
            value=False, description=ALLOW_SHRINK, indent=False, layout={"display": "none"}
        )
        self.shrink_box.add_class("sc-resume-allow-shrink")
        self.cancel_button = button("Cancel", self.cancel, style="warning")
        self.verify_button = button("Verify", self.verify)
        self.reason = widgets.HTML()
        self.reason.add_class("sc-resume-reason")
        self.confirm_text = widgets.HTML()
        self.confirm = widgets.HBox(
            [
                self.confirm_text,
                button("Cancel the job", self.confirm_cancel, style="danger"),
                button("Keep it running", self.keep_running),
            ],
            layout={"display": "none", "flex_flow": "row wrap", "align_items": "center"},
        )
        self.confirm.add_class("sc-cancel-confirm")
        self.verification = widgets.HTML()
        self.verification.add_class("sc-verification")
        # as wide as the panel at most: a long timeline scrolls sideways inside it
        self.timeline = widgets.HTML(layout={"max_width": "100%", "overflow": "auto"})
        self.timeline.add_class("sc-timeline-area")
        self.steps = StepsView(ctx)
        self.logs = LogView(ctx)
        self.children = [
            self.header,
            widgets.HBox(
                [self.progress, self.progress_label],
                layout={"flex_flow": "row wrap", "align_items": "center"},
            ),
            self.running_line,
            widgets.HBox(
                [
                    self.resume_button,
                    self.skip_box,
                    self.shrink_box,
                    self.cancel_button,
                    self.verify_button,
                ],
                layout={"flex_flow": "row wrap", "align_items": "center"},
            ),
            self.reason,
            self.confirm,
            self.message_area,
            self.verification,
            widgets.HTML("<b>Timeline</b>"),
            self.timeline,
            widgets.HTML("<b>Steps</b>"),
            self.steps,
            widgets.HTML("<b>Log</b>"),
            self.logs,
        ]
        self.add_class("sc-job")
        self.skip_box.observe(lambda _: self._resume_buttons(), names="value")
        self.shrink_box.observe(lambda _: self._resume_buttons(), names="value")
        self.observe(self._job_changed, names="job_id")
        self._job_changed()

    @guarded("show job")
    def refresh(self) -> None:
        with self._lock:
            if self.job_id is None:
                return
            view = service.show_job(self.ctx, job_id=self.job_id)
            self._show(view)
            if self.logs.before_id is None:  # the newest page: show what was written since
                self.logs.refresh()

    @guarded("resume")
    def resume(self) -> None:
        assert self.job_id is not None
        skip = self.skip_box.value
        shrink = self._shrink_allowed()
        view = service.resume(
            self.ctx,
            job_id=self.job_id,
            detach=True,
            skip_bad_records=skip,
            allow_shrink=shrink,
        )
        skipping = ", skipping bad records" if skip else ""
        skipping += ", removing published items" if shrink else ""
        self.say(f"job {self.job_id} resumed from its checkpoints in a new worker{skipping}", "ok")
        self._show(view)
        self.started += 1

    def cancel(self) -> None:
        """Cancel; a large job asks first (its cells stay done, but the rest waits)."""
        view = self._view
        if view is not None and view.job.cells_total >= CONFIRM_CELLS:
            left = view.job.cells_total - view.job.cells_done
            self.confirm_text.value = (
                f"<b>Cancel job {view.job.id}?</b> {left:,} of its "
                f"{plural(view.job.cells_total, 'cell')} are not done; the done ones stay, "
                "and Resume goes on from them."
            )
            self.confirm.layout.display = "flex"
            return
        self.confirm_cancel()

    @guarded("cancel")
    def confirm_cancel(self) -> None:
        assert self.job_id is not None
        self.confirm.layout.display = "none"
        view = service.cancel(self.ctx, job_id=self.job_id)
        if view.job.status in JOB_LIVE:
            self.say(f"cancel requested for job {self.job_id}: its worker stops at the next day")
        else:
            self.say(f"job {self.job_id} {view.job.status}", "ok")
        self._show(view)

    def keep_running(self) -> None:
        self.confirm.layout.display = "none"
        self.say(f"job {self.job_id} goes on")

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
            self.logs.job_id = self.job_id
        if self.job_id is not None:
            self.refresh()

    def _reset(self) -> None:
        self._view = None
        self._resume_key = self._resume_check = self._checked_at = None
        self.say("")
        self.verification.value = self.timeline.value = self.running_line.value = ""
        self.reason.value = ""
        self.confirm.layout.display = "none"
        self.skip_box.value = False
        self.skip_box.layout.display = "none"
        self.shrink_box.value = False
        self.shrink_box.layout.display = "none"
        self.steps.clear()
        self.status = ""
        if self.job_id is None:
            self.header.value = "<i>choose a job above</i>"
            for b in (self.resume_button, self.cancel_button, self.verify_button):
                b.disabled = True

    def _show(self, view: service.JobView) -> None:
        with self._lock:
            if view.job.id == self.job_id:  # else another job was chosen meanwhile
                self._draw(view)

    def _draw(self, view: service.JobView) -> None:
        job, summary = view.job, view.summary
        assert summary is not None and job.id is not None
        self._view = view
        now = self.ctx.clock()
        self.header.value = _header_html(job, summary)
        self.progress.max = max(job.cells_total, 1)
        self.progress.value = min(job.cells_done, self.progress.max)
        self.progress.bar_style = BAR_STYLES.get(job.status, "info")
        self.progress_label.value = progress_text(summary)
        line = now_running(view, now)
        self.running_line.value = (
            f'<div class="sc-facts"><b>{html.escape(line)}</b></div>' if line else ""
        )
        self.cancel_button.disabled = job.status not in JOB_LIVE
        self.verify_button.disabled = job.status in JOB_LIVE
        if job.status not in JOB_LIVE:
            self.confirm.layout.display = "none"
        self._check_resume(job)
        if view.verification is not None:
            self.verification.value = verification_html(view.verification)
        self.timeline.value = timeline_svg([s.step for s in view.steps], now=now)
        self.steps.show(view)
        self.cells_done, self.cells_total = job.cells_done, job.cells_total
        self.status = str(job.status)

    def _check_resume(self, job: IngestionJob) -> None:
        """Ask the service whether Resume can succeed, once per state of the job (it reads
        the sources), and show the checkbox where its failure advises skipping."""
        if job.status not in JOB_RESUMABLE:
            self._resume_key = self._resume_check = None
        else:
            key = (job.id, job.status, job.finished_at, job.cells_done)
            now = self.ctx.clock()
            stale = self._checked_at is None or (
                (now - self._checked_at).total_seconds() >= self.recheck_seconds
            )
            if key != self._resume_key or stale:  # other jobs may take or free its cells
                self._resume_check = service.check_resume(self.ctx, job_id=job.id or 0)
                self._resume_key, self._checked_at = key, now
        check = self._resume_check
        advised = check is not None and check.fails_on_bad_records
        self.skip_box.layout.display = "" if advised else "none"
        shrinks = check is not None and check.removes_published
        self.shrink_box.layout.display = "" if shrinks else "none"
        if not shrinks:
            self.shrink_box.value = False
        self._resume_buttons()

    def _shrink_allowed(self) -> bool:
        """The box is ticked where it is offered: resume may remove published items."""
        check = self._resume_check
        return bool(check and check.removes_published and self.shrink_box.value)

    def _resume_buttons(self) -> None:
        job, check = (self._view.job if self._view else None), self._resume_check
        reason = ""
        if job is None or job.status not in JOB_RESUMABLE:
            pass
        elif check is not None and check.blocker and not self._shrink_allowed():
            hint = f"; tick “{ALLOW_SHRINK}” to do it anyway" if check.removes_published else ""
            reason = check.blocker + hint
        elif check is not None and check.fails_on_bad_records and not self.skip_box.value:
            reason = (
                f"its export would fail again on unreadable records "
                f"({plural(check.bad_record_days, 'day')} of them): tick “{SKIP_LABEL}” to skip "
                "and count them"
            )
        resumable = job is not None and job.status in JOB_RESUMABLE
        self.resume_button.disabled = not resumable or bool(reason)
        self.resume_reason = reason
        self.reason.value = (
            f'<div class="sc-msg sc-info">Resume is off: {html.escape(reason)}</div>'
            if reason
            else ""
        )


def _header_html(job: IngestionJob, summary: JobSummary) -> str:
    facts = [
        f"executor {job.executor}",
        f"plan {job.plan_id}",
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
    link = html.escape(job_link(job.id or 0))
    return (
        f'<div><b class="sc-job-title">Job {job.id} · {html.escape(summary.title)}</b> '
        f"{badge(job.status)} "
        f'<a class="sc-job-link" href="{link}">link to this job</a><br>'
        f'<span class="sc-facts">{html.escape(" · ".join(f for f in facts if f))}</span>'
        f"</div>{error}"
    )
