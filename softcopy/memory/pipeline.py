"""The stage table: which memory function does the work of a stage for one (source, day).
Both runners use it: the legacy in-process runner (`memory.runner`) and the control plane's
executors (`ingestion.executors`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from softcopy.memory import embed, export, publish
from softcopy.memory.stage import StageContext, StageResult
from softcopy.memory.stages import Stage

STAGE_FUNCTIONS: dict[Stage, Callable[[StageContext, str, date], StageResult]] = {
    Stage.export: export.run,
    Stage.embed: embed.run,
    Stage.publish: publish.run,
}


def run_stage(ctx: StageContext, stage: Stage, source: str, day: date) -> StageResult:
    """The real work of one cell."""
    return STAGE_FUNCTIONS[stage](ctx, source, day)
