"""Maildir: folders of `cur/`, `new/` and `tmp/`, one file per message, as offlineimap,
mbsync (isync), getmail and Dovecot write them.

The path is one Maildir, or a folder holding many (mbsync's `SubFolders Verbatim` nests
them as plain folders, Maildir++ and offlineimap's defaults as `.Sent`, `.Archive`); every
folder under it that has a `cur/` or `new/` is a Maildir. `tmp/` holds deliveries still
being written and is never read. The layout is listed with `os.scandir` rather than
`mailbox.Maildir`, which would list every folder again on each lookup; a message is parsed
exactly as an mbox message is (`mail.py`).

- Unit: one message file, keyed `<folder>/<unique name>`: the file name without its flags
  (`:2,S`) and without mbsync's `,U=<uid>`, so a message that is read (moved from `new/` to
  `cur/`, flags added) or renumbered keeps its key. The stamp is the file's current name,
  mtime and size: a flag change re-reads one small file.
- Item: the message; id `maildir:<folder>/<unique name>` (Maildir names every message
  uniquely for its life; a message copied to two folders is two items), Message-ID in meta.
- Day: the `Date:` header in the configured timezone; without a readable one the delivery
  time that starts a Maildir file name (Unix seconds), then the newest `Received:` header.
- Bad input: a message without any of these is a bad record naming the file (no day).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.base import UnitScan
from softcopy.memory.sources.mail import read_message

KIND = "maildir"
MESSAGE_DIRS = ("new", "cur")  # tmp/ holds messages still being delivered: never read

_FLAGS = re.compile(r"[:!]2,[A-Za-z]*$")  # `:2,FS`, or `!2,FS` where `:` is not allowed
_MBSYNC_UID = re.compile(r",U=\d+")
_DELIVERED = re.compile(r"^(\d{9,11})\.")


class MaildirSource:
    """A Maildir, or a tree of them, read one message file per unit."""

    kind: ClassVar[str] = KIND

    def __init__(self, *, name: str, path: Path, tz: tzinfo, options: dict[str, Any]) -> None:
        if options:
            unknown = ", ".join(sorted(options))
            raise ConfigError(f"source {name!r}: unknown maildir option(s) {unknown}")
        self.name = name
        self.path = Path(path)
        self.tz = tz
        self._files: dict[str, Path] = {}  # unit → the message file, as last listed

    def units(self) -> Iterator[tuple[str, str]]:
        if not self.path.is_dir():
            raise ConfigError(f"{self.path}: no such Maildir folder for source {self.name!r}")
        files: dict[str, Path] = {}
        stamps: dict[str, str] = {}
        for folder in _maildirs(self.path):
            rel = folder.relative_to(self.path).as_posix()
            for sub in MESSAGE_DIRS:
                for entry in _entries(folder / sub):
                    unit = f"{rel}/{_unique(entry.name)}" if rel != "." else _unique(entry.name)
                    try:
                        st = entry.stat()
                    except OSError:  # delivered and moved or deleted while we listed
                        continue
                    files[unit] = Path(entry.path)
                    stamps[unit] = f"{sub}/{entry.name}|{st.st_mtime_ns}:{st.st_size}"
        self._files = files
        yield from sorted(stamps.items())

    def scan_unit(self, unit: str) -> UnitScan:
        got = self._read(unit)
        if isinstance(got, BadRecord):
            return UnitScan(problems=[got])
        scan = UnitScan()
        scan.add_item(got, "", self._files.get(unit, self.path / unit), None)
        return scan

    def load(self, unit: str, locators: Iterable[str]) -> Iterator[MemoryItem | BadRecord]:
        if any(True for _ in locators):  # the file is the one item
            yield self._read(unit)

    def _read(self, unit: str) -> MemoryItem | BadRecord:
        file = self._file(unit)
        if file is None:
            return BadRecord(self.path / unit, None, "message gone; scan the folder again")
        try:
            raw = file.read_bytes()
        except OSError as exc:
            return BadRecord(file, None, f"cannot read: {exc.strerror}")
        envelope = ("", "")
        if match := _DELIVERED.match(file.name):
            delivered = datetime.fromtimestamp(int(match[1]), UTC)
            envelope = (format_datetime(delivered), "its file name")
        got = read_message(
            file, "", raw, source=self.name, tz=self.tz, prefix=KIND, envelope=envelope
        )
        if isinstance(got, BadRecord):
            return got
        message_id = got.item_id.partition(":")[2]
        meta = {**got.meta, "message_id": message_id, "folder": unit.rpartition("/")[0]}
        return dataclasses.replace(got, item_id=f"{KIND}:{unit}", meta=meta)

    def _file(self, unit: str) -> Path | None:
        """The unit's file now: the last listing, else a fresh look (it may have moved)."""
        file = self._files.get(unit)
        if file is not None and file.is_file():
            return file
        for _ in self.units():
            pass
        return self._files.get(unit)


def _maildirs(root: Path) -> Iterator[Path]:
    """Every folder under root (root included) that holds `cur/` or `new/`."""
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        if any(d in MESSAGE_DIRS for d in dirs):
            yield here
        dirs[:] = sorted(d for d in dirs if d not in ("cur", "new", "tmp"))


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".") and e.is_file()]
    except OSError:
        return []


def _unique(name: str) -> str:
    """A message file's name without flags and mbsync's UID: what stays while it lives."""
    return _MBSYNC_UID.sub("", _FLAGS.sub("", name))


SOURCE = MaildirSource
