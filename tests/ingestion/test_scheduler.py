"""The readiness graph of a job's steps (scheduler.Readiness), on steps made the way the
planner makes them (jobs.split_steps), and the stop file the coordinator asks steps with."""

from __future__ import annotations

import json
import queue
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from softcopy.ingestion import scheduler
from softcopy.ingestion.jobs import split_steps
from softcopy.ingestion.scheduler import (
    PROCESS_START_TIMEOUT,
    Readiness,
    Slot,
    StepNode,
    StepStopped,
    clear_stop,
    make_slot,
    request_stop,
    stop_path,
)
from softcopy.ingestion.states import Stage
from softcopy.ingestion.steps import CancelRequested, StepFailed, StepTicket

START = date(2026, 1, 1)


def nodes_of(sources: dict[str, int], chunk_days: int) -> list[StepNode]:
    """The steps of a plan holding every stage of `days` consecutive days per source."""
    items = [
        SimpleNamespace(source=source, day=START + timedelta(days=n), stage=stage)
        for source, days in sources.items()
        for n in range(days)
        for stage in Stage
    ]
    return [
        StepNode(ordinal, ordinal, source, days[0], days[-1])
        for ordinal, (_stage, source, days) in enumerate(split_steps(items, chunk_days))  # type: ignore[arg-type]
    ]


def stage_of(nodes: list[StepNode], step_id: int) -> str:
    """Steps come export, embed, publish per (source, chunk): the stage by position."""
    return list(Stage)[step_id % 3]


def test_the_first_step_of_every_source_and_chunk_is_ready_at_once() -> None:
    nodes = nodes_of({"chat": 14, "mail": 7}, chunk_days=7)  # 3 chunks x 3 stages
    graph = Readiness(nodes)
    ready = graph.ready()
    assert ready == [0, 3, 6]  # the exports of chat's two chunks and of mail's one
    assert all(stage_of(nodes, i) == "export" for i in ready)
    assert graph.remaining == 9


def test_each_chunk_keeps_export_embed_publish_order() -> None:
    graph = Readiness(nodes_of({"chat": 14}, chunk_days=7))
    assert graph.waits_on(1) == {0} and graph.waits_on(2) == {0, 1}
    graph.start(0)
    graph.start(3)
    assert graph.ready() == []  # embeds wait for their exports
    graph.finish(3)  # the second chunk's export ends first: its embed is ready, not the first's
    assert graph.ready() == [4]
    graph.finish(0)
    assert graph.ready() == [1, 4]  # in ordinal order
    graph.start(1)
    graph.finish(1)
    assert graph.ready() == [2, 4]
    assert graph.remaining == 3


def test_steps_of_one_source_whose_days_overlap_wait_for_each_other() -> None:
    """A resumed or odd plan: an embed step spanning two export steps waits for both."""
    nodes = [
        StepNode(10, 0, "chat", date(2026, 1, 1), date(2026, 1, 3)),
        StepNode(11, 1, "chat", date(2026, 1, 4), date(2026, 1, 6)),
        StepNode(12, 2, "chat", date(2026, 1, 2), date(2026, 1, 5)),
        StepNode(13, 3, "mail", date(2026, 1, 2), date(2026, 1, 5)),
    ]
    graph = Readiness(nodes)
    assert graph.ready() == [10, 11, 13]
    assert graph.waits_on(12) == {10, 11}
    graph.finish(10)
    assert 12 not in graph.ready()
    graph.finish(11)
    assert graph.ready() == [12, 13]


def test_a_step_finished_without_starting_releases_its_dependents() -> None:
    graph = Readiness(nodes_of({"notes": 3}, chunk_days=7))
    graph.finish(0)  # skipped: every day already checkpointed
    assert graph.ready() == [1]
    graph.finish(1)
    graph.finish(2)
    assert graph.remaining == 0 and graph.ready() == []


def test_a_large_job_builds_its_graph_in_linear_time() -> None:
    """20 years of one source in 7-day chunks (3,129 steps): only neighbours are compared."""
    nodes = nodes_of({"big": 7300}, chunk_days=7)
    graph = Readiness(nodes)
    assert len(graph.ready()) == len(nodes) // 3
    assert all(len(graph.waits_on(n.id)) == n.id % 3 for n in nodes)  # its chunk's earlier steps


def test_the_stop_file_is_per_job_and_epoch(settings) -> None:  # type: ignore[no-untyped-def]
    path = stop_path(settings, 7, 3)
    assert not path.exists()
    request_stop(path)
    assert path.exists() and not stop_path(settings, 7, 4).exists()
    clear_stop(path)
    assert not path.exists()


class Scripted:
    """An executor whose steps end as told, in this process."""

    name = "scripted"

    def __init__(self, endings: list[BaseException | None]) -> None:
        self.endings = endings
        self.closed = False

    def run_step(self, ticket: StepTicket, on_day=None) -> str | None:  # type: ignore[no-untyped-def]
        if on_day:
            on_day()
        ending = self.endings.pop(0)
        if ending is not None:
            raise ending
        return f"step-{ticket.step_id}"

    def close(self) -> None:
        self.closed = True


def test_a_slot_reports_days_and_how_each_step_ended(settings) -> None:  # type: ignore[no-untyped-def]
    events: queue.Queue = queue.Queue()  # type: ignore[type-arg]
    executor = Scripted([None, StepFailed(2, START, "bad day"), CancelRequested("stop"), None])
    slot = make_slot(executor, events, 0, own_process=True)  # not in_process: a thread slot
    assert type(slot) is Slot
    slot.start()
    assert events.get(timeout=5)[0] == "ready"
    kinds = []
    for step_id in (1, 2, 3):
        slot.submit(StepTicket(settings, 1, step_id, 1))
        assert events.get(timeout=5)[:3:2] == ("day", step_id)
        kind, _, (ended, outcome) = events.get(timeout=5)
        assert kind == "ended" and ended == step_id
        kinds.append((outcome.kind, outcome.artifact))
    assert kinds == [("ok", "step-1"), ("failed", None), ("cancel", None)]
    slot.close(owns_executor=False)
    assert not executor.closed  # the first slot's executor is its caller's to close
    assert StepStopped.__mro__[1].__name__ == "SoftcopyError"


@pytest.mark.parametrize("owns", [True, False])
def test_closing_an_idle_slot_ends_its_executor_when_it_is_the_slots(settings, owns) -> None:  # type: ignore[no-untyped-def]
    executor = Scripted([])
    slot = make_slot(executor, queue.Queue(), 1, own_process=False)
    slot.start()
    slot.close(owns_executor=owns)
    assert executor.closed is owns


def test_a_stopping_coordinator_waits_only_for_steps_it_handed_over(settings) -> None:  # type: ignore[no-untyped-def]
    """A Ctrl-C between taking a slot for a step and handing the step over left the job's
    `run` waiting forever for a step no slot had; now it waits for handed-over steps only,
    and keeps the ones that finished meanwhile."""
    from softcopy.ingestion.runtime import _Coordinator

    coordinator = _Coordinator(settings, 1, 1, lambda: None, None)  # type: ignore[arg-type,return-value]
    handed, never = (
        make_slot(Scripted([None]), coordinator.events, n, own_process=False) for n in (0, 1)
    )
    for slot in (handed, never):
        slot.start()
    coordinator.running = {1: handed, 2: never}  # step 2: interrupted before its hand-over
    handed.submit(StepTicket(settings, 1, 1, 1))
    coordinator._drain()
    assert not handed.busy and 1 not in coordinator.running
    assert coordinator.finished == [(1, "step-1")]
    for slot in (handed, never):
        slot.close(owns_executor=False)


def test_a_step_process_starts_with_the_runtime_already_imported(tmp_path: Path) -> None:
    """The forkserver imports the runtime, the stage functions and the embedders once, so
    a step process forked from it does not import them again (~0.15 s CPU each): naming
    `executors` alone stopped bringing them in when it began to import them lazily."""
    shown = tmp_path / "modules.json"
    probe = f"import json, sys; open({str(shown)!r}, 'w').write(json.dumps(sorted(sys.modules)))"
    process = scheduler._context().Process(target=exec, args=(probe,))
    process.start()
    process.join(PROCESS_START_TIMEOUT)
    assert process.exitcode == 0
    imported = set(json.loads(shown.read_text()))
    wanted = {"softcopy.ingestion.runtime", "softcopy.memory.pipeline", "softcopy.memory.embedders"}
    assert wanted <= imported, wanted - imported
