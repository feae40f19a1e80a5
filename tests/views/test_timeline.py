"""The job timeline (Gantt): a bar per step where it ran, rows per source and stage, running
steps up to now, and thousands of sub-pixel steps drawn as a few merged bars."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from softcopy.ingestion.states import Stage, StepStatus
from softcopy.views.timeline import LABEL_WIDTH, STATUS_COLOURS, duration, timeline_svg

T0 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


@dataclass
class Step:
    ordinal: int
    source: str
    stage: Stage
    status: StepStatus
    started_at: datetime | None
    finished_at: datetime | None
    start_day: date = date(2026, 3, 1)
    end_day: date = date(2026, 3, 7)


def bars(svg: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'(\w+)="([^"]*)"', m)) for m in re.findall(r"<rect ([^>]*)>", svg)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_each_step_is_a_bar_where_it_ran_in_its_source_and_stage_row() -> None:
    steps = [
        Step(0, "notes", Stage.export, StepStatus.succeeded, at(0), at(10)),
        Step(1, "notes", Stage.embed, StepStatus.failed, at(10), at(30)),
        Step(2, "chat", Stage.export, StepStatus.running, at(30), None),
        Step(3, "chat", Stage.embed, StepStatus.pending, None, None),
    ]
    svg = timeline_svg(steps, now=at(40), width=LABEL_WIDTH + 8 + 400)
    drawn = bars(svg)
    assert len(drawn) == 3  # the pending step has no bar
    scale = 400 / 40  # px per second: the job spans 0..40 s (the running step to now)
    export, embed, running = drawn
    assert float(export["x"]) == LABEL_WIDTH and float(export["width"]) == 10 * scale
    assert float(embed["x"]) == LABEL_WIDTH + 10 * scale
    assert float(running["width"]) == 10 * scale  # 30 s .. now (40 s)
    assert embed["fill"] == STATUS_COLOURS[StepStatus.failed]
    assert running["fill"] == STATUS_COLOURS[StepStatus.running]
    # rows: sources in the order they first run, stages in pipeline order
    labels = re.findall(r"<text x=\"0\" y=\"\d+\">([^<]*)</text>", svg)
    assert labels == ["notes · export", "notes · embed", "chat · export", "chat · embed"]
    assert export["y"] < embed["y"] < running["y"]
    assert "1 step not started" in svg and "3 steps started over 40s" in svg
    assert "step 1 · embed notes 2026-03-01 … 2026-03-07\nfailed · 20s" in svg


def test_thousands_of_steps_draw_as_a_few_merged_bars_with_counts() -> None:
    steps = [
        Step(i, "notes", Stage.export, StepStatus.succeeded, at(i * 0.01), at(i * 0.01 + 0.01))
        for i in range(4000)
    ]
    steps[2000].status = StepStatus.failed
    svg = timeline_svg(steps, now=at(100), width=900)
    drawn = bars(svg)
    assert 3 <= len(drawn) <= 5, len(drawn)  # succeeded run, the failure, succeeded run
    assert [d["fill"] for d in drawn].count(STATUS_COLOURS[StepStatus.failed]) == 1
    counts = [int(n) for n in re.findall(r"(\d+) steps \(", svg)]
    assert sum(counts) + (len(drawn) - len(counts)) == 4000


def test_no_started_step_says_so() -> None:
    assert "no steps" in timeline_svg([], now=T0)
    pending = [Step(0, "notes", Stage.export, StepStatus.pending, None, None)]
    assert "1 step, none started yet" in timeline_svg(pending, now=T0)


def test_durations_read_at_every_scale() -> None:
    assert [duration(s) for s in (0.4, 3, 42, 185, 7620)] == [
        "0.4s",
        "3s",
        "42s",
        "3m 05s",
        "2h 07m",
    ]
