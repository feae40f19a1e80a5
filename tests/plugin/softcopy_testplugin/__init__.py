"""A softcopy plugin for the tests: the `daylog` source kind and the `recording` executor.

daylog: a text file of `YYYY-MM-DD text` lines. Unit: the file (mtime, size). Item: a
line, id `daylog:<date>:<text hash>`. Day: the line's date (a local date, whatever the
configured timezone).

recording: the inline executor that also appends each step's job and step ids to the file
named by SOFTCOPY_TESTPLUGIN_RECORD, so a test can see that the steps ran through it."""

from __future__ import annotations

import hashlib
import os
from datetime import date, datetime, time

from softcopy.errors import BadRecord
from softcopy.ingestion.executors import InlineExecutor, StepTicket
from softcopy.memory.sources.parsed import Entry, WholeUnitSource, file_stamp, title_of


class DayLogSource(WholeUnitSource):
    kind = "daylog"

    def _units(self):
        yield self.path.name, file_stamp(self.path)

    def _path(self, unit):
        return str(self.path)

    def _entries(self, unit):
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, start=1):
            where = f"line {n}"
            stamp, _, text = line.partition(" ")
            try:
                day = date.fromisoformat(stamp)
            except ValueError:
                yield Entry(where, BadRecord(self.path, where, f"no date: {stamp!r}"))
                continue
            ts = datetime.combine(day, time(12), tzinfo=self.tz)
            digest = hashlib.sha256(line.encode()).hexdigest()[:12]
            yield Entry(where, self._item(f"daylog:{day}:{digest}", ts, title_of(text), text, {}))


class RecordingExecutor(InlineExecutor):
    name = "recording"

    def run_step(self, ticket: StepTicket, on_day=None) -> str | None:
        with open(os.environ["SOFTCOPY_TESTPLUGIN_RECORD"], "a", encoding="utf-8") as record:
            record.write(f"{ticket.job_id}:{ticket.step_id}\n")
        return super().run_step(ticket, on_day)
