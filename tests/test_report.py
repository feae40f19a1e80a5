"""Notebook tables and the scheduled report's drift error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from softcopy.errors import OperationFailed
from softcopy.ingestion.states import CellState
from softcopy.report import DriftFound, fmt, table


@dataclass
class Row:
    name: str
    state: CellState
    day: date | None


def test_table_reads_attributes_and_keys() -> None:
    from_objects = table([Row("a", CellState.stale, date(2026, 3, 1))], ["name", "state", "day"])
    from_dicts = table(
        [{"name": "a", "state": CellState.stale, "day": "2026-03-01"}], ["name", "state", "day"]
    )
    assert from_objects.rows == from_dicts.rows == [["a", "stale", "2026-03-01"]]


def test_table_prints_aligned_text_and_renders_escaped_html() -> None:
    shown = table([{"a": "<b>", "b": None}], ["a", "b"], caption="Caption")
    assert str(shown).splitlines() == ["Caption", "a    b", "---  -", "<b>"]
    assert "<td>&lt;b&gt;</td><td></td>" in shown._repr_html_()
    assert "<caption>Caption</caption>" in shown._repr_html_()


def test_table_limits_rows_and_says_how_many_it_left_out() -> None:
    shown = table(({"n": i} for i in range(7)), ["n"], limit=5)
    assert len(shown.rows) == 5 and shown.hidden == 2
    assert str(shown).endswith("… and 2 more rows")
    assert "… and 2 more rows" in shown._repr_html_()


def test_an_empty_table_says_so() -> None:
    assert str(table([], ["a"])).endswith("(none)")
    assert "(none)" in table([], ["a"])._repr_html_()


def test_fmt() -> None:
    assert fmt(datetime(2026, 3, 1, 6, 0, 1, 500, tzinfo=UTC)) == "2026-03-01 06:00:01 UTC"
    assert fmt(datetime(2026, 3, 1, 6, 0)) == "2026-03-01 06:00:00"
    assert fmt(0.0321987) == "0.0322"
    assert fmt(None) == ""


def test_drift_found_is_an_operation_failure_naming_the_days() -> None:
    cells = [("notes", date(2026, 3, d)) for d in range(1, 8)]
    error = DriftFound(4, cells)
    assert isinstance(error, OperationFailed)
    assert error.reconciliation_id == 4 and error.cells == cells
    assert str(error) == (
        "reconciliation 4 found drift in 7 source-days: notes 2026-03-01, notes 2026-03-02, "
        "notes 2026-03-03, notes 2026-03-04, notes 2026-03-05 and 2 more"
    )
