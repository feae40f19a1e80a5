"""The jobs panel: recent jobs with their status and a live progress bar, and the chosen
job in detail. While any shown job is live, a kernel thread polls the database about once a
second; a reopened dashboard finds running jobs again because they are rows, not memory."""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets
import traitlets

from softcopy.dashboard.app import linked_job  # noqa: F401  (where tests find it)
from softcopy.dashboard.base import Panel, badge, button, guarded
from softcopy.dashboard.job import BAR_STYLES, JobDetail
from softcopy.dashboard.poller import Poller
from softcopy.ingestion import service
from softcopy.ingestion.leases import describe_wait, unclaimed_for
from softcopy.ingestion.models import IngestionJob
from softcopy.ingestion.states import JOB_LIVE, JobStatus
from softcopy.ingestion.summary import JobSummary
from softcopy.views.timeline import duration, plural

RECENT_JOBS = 12


def pace_text(summary: JobSummary | None) -> tuple[str, str, str]:
    """(duration, rate, ETA) for a job's row."""
    if summary is None:
        return "", "", ""
    took = duration(summary.elapsed_seconds) if summary.elapsed_seconds is not None else ""
    rate = f"{summary.rate:.1f} cells/s" if summary.rate else ""
    eta = f"ETA {duration(summary.eta_seconds)}" if summary.eta_seconds is not None else ""
    return took, rate, eta


class JobRow(widgets.HBox):
    """One line of the jobs list: choose it, its title, status, progress, cells, duration,
    rate and ETA."""

    job_id = traitlets.Int()

    def __init__(
        self,
        job: IngestionJob,
        choose: Any,
        summary: JobSummary | None = None,
        unclaimed_seconds: float | None = None,
    ):
        super().__init__(layout={"flex_flow": "row wrap", "align_items": "center"})
        self.job_id = job.id or 0
        self.choose = widgets.Button(description=f"#{self.job_id}", layout={"width": "64px"})
        self.choose.on_click(lambda _: choose(self.job_id))
        self.title = widgets.HTML(layout={"width": "340px"})
        self.title.add_class("sc-job-row-title")
        self.status = widgets.HTML(layout={"width": "100px"})
        self.progress = widgets.IntProgress(min=0, max=1, layout={"width": "140px"})
        self.cells = widgets.HTML(layout={"width": "130px"})
        self.took = widgets.HTML(layout={"width": "70px"})
        self.rate = widgets.HTML(layout={"width": "90px"})
        self.eta = widgets.HTML(layout={"width": "90px"})
        self.children = [
            self.choose,
            self.title,
            self.status,
            self.progress,
            self.cells,
            self.took,
            self.rate,
            self.eta,
        ]
        self.add_class("sc-job-row")
        self.add_class(f"sc-job-row-{self.job_id}")
        self.update(job, summary, unclaimed_seconds)

    def update(
        self,
        job: IngestionJob,
        summary: JobSummary | None = None,
        unclaimed_seconds: float | None = None,
    ) -> None:
        """`unclaimed_seconds`: queued, and no worker claimed it within the lease timeout (for
        so long, `leases.unclaimed_for`): marked under its status, as the job view does."""
        if summary is not None:
            self.title.value = (
                f'<span title="{html.escape(summary.title)}">{html.escape(summary.title)}</span>'
            )
        self.status.value = badge(job.status) + (
            '<div class="sc-unclaimed" title="no worker claimed it within the lease timeout">'
            f"{html.escape(describe_wait(unclaimed_seconds))}</div>"
            if unclaimed_seconds
            else ""
        )
        self.progress.max = max(job.cells_total, 1)
        self.progress.value = min(job.cells_done, self.progress.max)
        self.progress.bar_style = BAR_STYLES.get(job.status, "info")
        self.cells.value = f"{job.cells_done:,}/{plural(job.cells_total, 'cell')}"
        took, rate, eta = pace_text(summary)
        self.took.value, self.rate.value, self.eta.value = took, rate, eta


class JobsPanel(Panel):
    """Recent jobs and the chosen one. `job_id` is the chosen job; `live` says whether any
    shown job is queued, running or cancelling; `finished` counts jobs seen ending."""

    job_id = traitlets.Int(None, allow_none=True)
    live = traitlets.Bool(False)
    finished = traitlets.Int(0)
    polling = traitlets.Bool(False)

    def __init__(self, ctx: service.Context, *, poll_interval: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.ctx = ctx
        self._lock = threading.RLock()  # the poller thread and button callbacks both refresh
        self._rows: dict[int, JobRow] = {}
        self._last_status: dict[int, JobStatus] = {}
        self.poller = Poller(self._tick, poll_interval)
        self.list_box = widgets.VBox()
        self.list_box.add_class("sc-job-list")
        self.poll_label = widgets.HTML()
        self.detail = JobDetail(ctx)
        self.children = [
            widgets.HBox([button("Refresh", self.refresh), self.poll_label]),
            self.message_area,
            self.list_box,
            self.detail,
        ]
        self.add_class("sc-jobs")
        widgets.dlink((self, "job_id"), (self.detail, "job_id"))
        self.detail.observe(lambda _: self.poll(), names="started")
        self.observe(self._show_polling, names="polling")

    def show(self, job_id: int) -> None:
        """Choose a job (one just started, say) and follow it."""
        self.refresh()
        self.job_id = job_id
        self.poll()

    def poll(self) -> None:
        self.poller.start()
        self.polling = self.poller.running

    def stop(self) -> None:
        self.poller.stop()
        self.polling = False

    @guarded("list jobs")
    def refresh(self) -> None:
        with self._lock:
            # the chosen job before the list: a job the detail shows ended is then ended in
            # the list too, so `finished` never lags behind what the detail says
            self.detail.refresh()
            jobs = service.list_jobs(self.ctx, limit=RECENT_JOBS)
            self._show(jobs, service.job_summaries(self.ctx, jobs=jobs))
            if self.job_id is None and jobs:
                live = [j for j in jobs if j.status in JOB_LIVE]
                self.job_id = (live or jobs)[0].id
        if self.live or self.detail.status in JOB_LIVE:
            self.poll()

    def _tick(self) -> bool:
        self.refresh()
        keep = self.live or self.detail.status in JOB_LIVE
        self.polling = keep
        return keep

    def _show(self, jobs: list[IngestionJob], summaries: dict[int, JobSummary]) -> None:
        now, timeout = self.ctx.clock(), self.ctx.settings.lease_timeout
        for job in jobs:
            assert job.id is not None
            waited = unclaimed_for(job, now=now, timeout=timeout)
            row = self._rows.get(job.id)
            if row is None:
                row = JobRow(job, self._choose, summaries.get(job.id), waited)
                self._rows[job.id] = row
            else:
                row.update(job, summaries.get(job.id), waited)
            before = self._last_status.get(job.id)
            if before in JOB_LIVE and job.status not in JOB_LIVE:
                self.finished += 1
            self._last_status[job.id] = job.status
            selected = job.id == self.job_id
            (row.add_class if selected else row.remove_class)("sc-selected")
        kept = {j.id for j in jobs}
        for gone in [i for i in self._rows if i not in kept]:
            self._rows.pop(gone).close()
        shown = [self._rows[j.id] for j in jobs if j.id is not None]
        if list(self.list_box.children) != shown:
            self.list_box.children = shown
        if not jobs:
            self.list_box.children = [widgets.HTML("<i>no jobs yet: make one in Plan</i>")]
        self.live = any(j.status in JOB_LIVE for j in jobs)

    def _choose(self, job_id: int) -> None:
        self.job_id = job_id
        for row_id, row in self._rows.items():
            (row.add_class if row_id == job_id else row.remove_class)("sc-selected")
        if self.detail.status in JOB_LIVE:
            self.poll()

    def _show_polling(self, _: object = None) -> None:
        self.poll_label.value = (
            f"<i>live: polling every {self.poller.interval:g} s</i>" if self.polling else ""
        )
