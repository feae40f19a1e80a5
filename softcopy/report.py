"""Small display helpers for the notebooks (the reconcile report, the tour): tables that render
as HTML in JupyterLab and as aligned text in papermill logs, and the error a scheduled
report raises when it finds drift.

Notebooks stay thin: they call the service, then hand its results to `table()`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from softcopy.errors import OperationFailed

DEFAULT_LIMIT = 50


class DriftFound(OperationFailed):
    """A scheduled reconcile found that sources changed since they were published."""

    def __init__(self, reconciliation_id: int, cells: Sequence[tuple[str, date]]) -> None:
        self.reconciliation_id = reconciliation_id
        self.cells = list(cells)
        shown = ", ".join(f"{source} {day}" for source, day in self.cells[:5])
        more = f" and {len(self.cells) - 5} more" if len(self.cells) > 5 else ""
        days = "source-day" if len(self.cells) == 1 else "source-days"
        super().__init__(
            f"reconciliation {reconciliation_id} found drift in {len(self.cells)} "
            f"{days}: {shown}{more}"
        )


@dataclass(frozen=True)
class Table:
    """Rows of already formatted cells; `_repr_html_` for notebooks, `str` for logs."""

    columns: list[str]
    rows: list[list[str]]
    caption: str | None = None
    hidden: int = 0  # rows left out past the limit

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = (
            "".join(
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                for row in self.rows
            )
            or f'<tr><td colspan="{len(self.columns)}">(none)</td></tr>'
        )
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        more = f"<p>… and {self.hidden} more rows</p>" if self.hidden else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"

    def __str__(self) -> str:
        widths = [
            max([len(c), *(len(row[i]) for row in self.rows)]) for i, c in enumerate(self.columns)
        ]
        lines = [self.caption] if self.caption else []
        header = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))
        lines.append(header.rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in self.rows
        ]
        if not self.rows:
            lines.append("(none)")
        if self.hidden:
            lines.append(f"… and {self.hidden} more rows")
        return "\n".join(lines)

    __repr__ = __str__


def table(
    records: Iterable[Any],
    columns: Sequence[str],
    *,
    caption: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> Table:
    """A table of `columns` read from each record (an attribute, or a key of a mapping)."""
    rows: list[list[str]] = []
    hidden = 0
    for record in records:
        if limit is not None and len(rows) >= limit:
            hidden += 1
            continue
        rows.append([fmt(_field(record, c)) for c in columns])
    return Table(columns=list(columns), rows=rows, caption=caption, hidden=hidden)


def fmt(value: object) -> str:
    """One cell as text: enums by value, times to the second, None as blank."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
        return text.removesuffix("+00:00") + (" UTC" if value.utcoffset() == timedelta(0) else "")
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _field(record: Any, name: str) -> object:
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)
