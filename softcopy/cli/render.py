"""Human output of stage runs, shared by `memory export|embed|publish` and `ingest`."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from softcopy.cli.common import console, err_console, print_json
from softcopy.memory.runner import RunSummary


def run_summary(summary: RunSummary, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "ok": summary.ok,
                "results": summary.results,
                "failures": summary.failures,
                "undated": summary.undated,
            }
        )
        return
    days = Counter((r.stage, r.source) for r in summary.results)
    items = Counter()
    for r in summary.results:
        items[(r.stage, r.source)] += r.items
    failed = Counter((f.stage, f.source) for f in summary.failures)
    table = Table("stage", "source", "days", "items", "skipped", "failed", title="stage runs")
    for key in sorted(set(days) | set(failed)):
        stage, source = key
        skipped = summary.skipped(source, stage)
        table.add_row(
            str(stage), source, str(days[key]), str(items[key]), str(skipped), str(failed[key])
        )
    console.print(table)
    problems = sorted({p for r in summary.results for p in r.problems})
    _lines("skipped", problems)
    undated = [p for lines in summary.undated.values() for p in lines]
    _lines("skipped, day unknown", undated)
    if undated and not summary.skip_bad_records:
        err_console.print(
            f"not ok: {len(undated)} record(s) whose day cannot be told (no day failed); "
            "fix them, or --skip-bad-records accepts them",
            soft_wrap=True,
        )
    _lines("failed", [failure.error for failure in summary.failures])
    if any(failure.unreadable for failure in summary.failures):
        err_console.print("--skip-bad-records skips (and counts) unreadable records")
    if any(failure.shrink for failure in summary.failures):
        err_console.print("--allow-shrink publishes them anyway (the days' items are removed)")


def _lines(label: str, lines: list[str], most: int = 10) -> None:
    for line in lines[:most]:
        err_console.print(f"{label}: {line}", markup=False, highlight=False, soft_wrap=True)
    if len(lines) > most:
        err_console.print(f"{label}: … and {len(lines) - most} more", soft_wrap=True)
