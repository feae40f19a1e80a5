"""The coverage heatmap as a widget whose clicks reach Python: an anywidget (a small ES
module synced with traitlets; offline, no build step, works under Voilà) that draws
`softcopy.views.calendar.heatmap_data` and reports a clicked cell or a selected range.

One row per source coloured by its worst stage, expandable to its stages; cells are days,
weeks or months (with counts in the tooltip) so ten years fit one screen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from softcopy.views.calendar import PROBLEM_CODES

HERE = Path(__file__).parent
CSS = """
.sc-hm { position: relative; width: 100%; min-width: 0; }
.sc-hm-scroll { overflow-x: auto; overflow-y: hidden; max-width: 100%; touch-action: pan-x pan-y;
  user-select: none; -webkit-user-select: none; }
.sc-hm-cell { cursor: pointer; }
.sc-hm-cell:hover { stroke: #24292f; stroke-width: 1; }
.sc-hm-source { cursor: pointer; }
.sc-hm-tip { display: none; position: absolute; z-index: 10; pointer-events: none;
  background: #24292f; color: #fff; font-size: 11px; padding: 3px 6px; border-radius: 4px;
  max-width: 260px; white-space: normal; }
.sc-hm-empty { color: #57606a; font-style: italic; }
"""


@dataclass(frozen=True)
class Pick:
    """What the user pointed at: a day range of some sources (one stage, or all of them)."""

    start: date
    end: date
    sources: list[str]
    stage: str | None = None  # a stage row was clicked
    row: int = 0
    col: int = 0


class HeatmapWidget(anywidget.AnyWidget):
    """`data` is what `heatmap_data` returns; `on_click(pick)` and `on_select(pick)` are
    called with what the user did. `selection` and `focus` are drawn (Python sets them)."""

    _esm = (HERE / "heatmap.js").read_text()
    _css = CSS
    data = traitlets.Dict().tag(sync=True)
    expanded = traitlets.List(traitlets.Unicode()).tag(sync=True)  # sources showing stages
    problems_only = traitlets.Bool(False).tag(sync=True)
    selection = traitlets.Dict().tag(sync=True)  # {start, end, sources} ISO days, or {}
    focus = traitlets.List(traitlets.Int()).tag(sync=True)  # [row, col] outlined, or []

    def __init__(
        self,
        *,
        on_click: Callable[[Pick], None] | None = None,
        on_select: Callable[[Pick], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_click = on_click
        self.on_select = on_select
        self.on_msg(self._message)

    def _message(self, _widget: object, content: dict[str, Any], _buffers: object) -> None:
        self.handle(content)

    def handle(self, event: dict[str, Any]) -> None:
        """One event from the browser (tests send the same dicts)."""
        rows, columns = self.data.get("rows", []), self.data.get("columns", [])
        if event.get("event") == "click":
            r, c = int(event["row"]), int(event["col"])
            if not (0 <= r < len(rows) and 0 <= c < len(columns)):
                return
            row = rows[r]
            first, last = columns[c]
            pick = Pick(
                date.fromisoformat(first),
                date.fromisoformat(last),
                [row["source"]],
                row["stage"],
                r,
                c,
            )
            self.focus = [r, c]
            if self.on_click:
                self.on_click(pick)
        elif event.get("event") == "select":
            r0, r1 = sorted(int(r) for r in event["rows"])
            c0, c1 = sorted(int(c) for c in event["cols"])
            if not (r0 >= 0 and r1 < len(rows) and c0 >= 0 and c1 < len(columns)):
                return
            sources = self._sources_between(r0, r1)
            pick = Pick(
                date.fromisoformat(columns[c0][0]),
                date.fromisoformat(columns[c1][1]),
                sources,
            )
            self.select(pick)
            if self.on_select:
                self.on_select(pick)

    def select(self, pick: Pick | None) -> None:
        self.selection = (
            {}
            if pick is None
            else {
                "start": pick.start.isoformat(),
                "end": pick.end.isoformat(),
                "sources": list(pick.sources),
            }
        )

    def _sources_between(self, r0: int, r1: int) -> list[str]:
        """The sources whose rows lie between rows r0 and r1, in the order drawn."""
        rows = self.data["rows"]
        order = [row["source"] for row in rows if row["stage"] is None]
        i0, i1 = sorted(order.index(rows[r]["source"]) for r in (r0, r1))
        return order[i0 : i1 + 1]

    def problems(self) -> list[tuple[int, int]]:
        """Every (row, column) of a source row showing a problem, in time order."""
        found = []
        for r, row in enumerate(self.data.get("rows", [])):
            if row["stage"] is not None:
                continue
            found += [(c, r) for c, code in enumerate(row["codes"]) if code in PROBLEM_CODES]
        return [(r, c) for c, r in sorted(found)]

    def next_problem(self) -> tuple[int, int] | None:
        """The problem after the focused cell (wrapping round), focused; None if none."""
        found = self.problems()
        if not found:
            return None
        here = (self.focus[1], self.focus[0]) if len(self.focus) == 2 else (-1, -1)
        after = [(r, c) for r, c in found if (c, r) > here]
        r, c = (after or found)[0]
        self.focus = [r, c]
        return r, c
