"""Commits of a git repository (bare or not), each commit a unit, read with the git CLI.

Commits are immutable, so a unit's stamp is its hash and a scanned commit is never
read again. Listing units is one `git log` call; `scan_units` reads any number of
commits in one more, so a 10,000-commit history costs two subprocesses, not 10,000.
A message with bytes that are not UTF-8 (git re-encodes what it can) is read with U+FFFD
and a warning naming the commit, like every source kind (memory/items.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar

from softcopy.errors import BadRecord, ConfigError, OperationFailed
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources.base import UnitScan, day_of

KIND = "git"

# A record starts with a marker that a commit message will not contain; fields are
# NUL-separated and the body comes last, so whatever it holds cannot shift the rest.
_MARKER = b"\x00\x1esoftcopy-commit\x1e"
_FORMAT = "--format=%x00%x1esoftcopy-commit%x1e%H%x00%aI%x00%an%x00%ae%x00%s%x00%b"
_HASH = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Read the repository at `path` only: no locating env vars inherited from a caller
# (a git hook, say), and the output's text encoding pinned.
_LOCATING_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)
_CONFIG = (
    "-c",
    "i18n.logOutputEncoding=UTF-8",
    "-c",
    "log.showSignature=false",
    "-c",
    "color.ui=never",
)
# Stash and notes commits are bookkeeping, not history anyone wrote.
_ALL_REFS = ("--exclude=refs/stash", "--exclude=refs/notes/*", "--all")


class GitSource:
    """A repository's commits: title = subject, text = body, ts = author date."""

    kind: ClassVar[str] = KIND

    def __init__(self, *, name: str, path: Path, tz: tzinfo, options: dict[str, Any]) -> None:
        self.name = name
        self.path = Path(path)
        self.tz = tz
        self.branches = _branches(name, options.get("branches"))

    def listing_stamp(self) -> str | None:
        """A digest of where HEAD and every ref point (and of what selects the commits): the
        same digest, the same commits. None when git fails (listing the units says why)."""
        result = self._git("show-ref", "--head")
        if result.returncode not in (0, 1):  # 1: no refs at all, an empty repository
            return None
        h = hashlib.sha256(result.stdout)
        h.update(repr((str(self.path.resolve()), self.branches, str(self.tz))).encode())
        return h.hexdigest()

    def units(self) -> Iterator[tuple[str, str]]:
        """Every commit reachable from the refs (or the configured branches): (hash, hash)."""
        revisions = ("--end-of-options", *self.branches) if self.branches else _ALL_REFS
        result = self._git("log", "--format=%H", *revisions, "--")
        if result.returncode != 0:
            self._raise_for_units(result.stderr)
            return
        for line in result.stdout.split():
            commit = line.decode("ascii")
            yield commit, commit

    def scan_unit(self, unit: str) -> UnitScan:
        """One commit's ref, or why it cannot be read."""
        return self.scan_units([unit])[unit]

    def scan_units(self, units: list[str]) -> dict[str, UnitScan]:
        """Many commits in one git call: a scan for each unit asked for."""
        scans = {unit: UnitScan() for unit in units}
        for unit, outcome in self._read(list(scans)).items():
            if isinstance(outcome, BadRecord):
                scans[unit].problems.append(outcome)
            else:
                scans[unit].add_item(outcome, unit, self.path, f"commit {unit}")
        return scans

    def load(self, unit: str, locators: Iterable[str]) -> Iterator[MemoryItem | BadRecord]:
        """The commit's item (a unit holds one item; its locator is the hash)."""
        if list(locators):
            yield self._read([unit])[unit]

    def load_many(
        self, wanted: list[tuple[str, list[str]]]
    ) -> Iterator[tuple[int, MemoryItem | BadRecord]]:
        """The commits of many requests in one git call (a step's days, not one per commit)."""
        asked = [(n, unit) for n, (unit, locators) in enumerate(wanted) if locators]
        read = self._read(sorted({unit for _, unit in asked}))
        for n, unit in asked:
            yield n, read[unit]

    def _read(self, units: list[str]) -> dict[str, MemoryItem | BadRecord]:
        """Each unit's item or bad record; one git call, or one per commit if that fails."""
        out: dict[str, MemoryItem | BadRecord] = {
            u: BadRecord(self.path, f"commit {u}", "not a commit hash")
            for u in units
            if not _HASH.fullmatch(u)
        }
        wanted = [u for u in units if u not in out]
        if not wanted:
            return out
        result = self._git(
            "log",
            "--no-walk=unsorted",
            "--ignore-missing",
            "--stdin",
            _FORMAT,
            input="\n".join(wanted).encode(),
        )
        if result.returncode != 0:
            self._raise_if_not_a_repo(result.stderr)
            if len(wanted) > 1:  # one odd object fails the batch: find it one by one
                return out | {k: v for u in wanted for k, v in self._read([u]).items()}
            reason = f"git log failed: {_last_line(result.stderr)}"
            return out | {wanted[0]: BadRecord(self.path, f"commit {wanted[0]}", reason)}
        records = dict(self._records(result.stdout))
        for unit in wanted:
            out[unit] = records.get(unit) or BadRecord(
                self.path, f"commit {unit}", "commit not found in the repository"
            )
        return out

    def _records(self, stdout: bytes) -> Iterator[tuple[str, MemoryItem | BadRecord]]:
        for record in stdout.split(_MARKER)[1:]:
            raw = record.split(b"\x00", 5)
            fields = [_text(f) for f in raw]
            if len(fields) == 6 and _HASH.fullmatch(fields[0]):
                repaired = any("\ufffd" in f for f in fields) and not all(_is_utf8(f) for f in raw)
                yield fields[0], self._item(*fields, repaired=repaired)

    def _item(
        self,
        commit: str,
        date: str,
        author: str,
        email: str,
        subject: str,
        body: str,
        *,
        repaired: bool = False,
    ) -> MemoryItem | BadRecord:
        try:
            ts = datetime.fromisoformat(date).astimezone(UTC)
        except ValueError:
            return BadRecord(self.path, f"commit {commit}", f"unreadable author date {date!r}")
        return MemoryItem(
            item_id=f"git:{commit}",
            source=self.name,
            ts=ts,
            day=day_of(ts, self.tz),
            title=subject.strip(),
            text=body.strip(),
            meta={"author": author, "email": email},
            repaired=repaired,
        )

    def _git(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in _LOCATING_ENV}
        # Stop git from walking up into a parent repository when `path` is not one.
        env["GIT_CEILING_DIRECTORIES"] = str(self.path.resolve().parent)
        env["LC_ALL"] = "C"  # English messages, which _raise_* below recognise
        command = ["git", "-C", str(self.path), *_CONFIG, *args]
        try:
            return subprocess.run(command, input=input, capture_output=True, env=env, check=False)
        except FileNotFoundError:
            raise ConfigError(f"source {self.name!r}: the git command is not installed") from None

    def _raise_if_not_a_repo(self, stderr: bytes) -> None:
        message = _text(stderr)
        if "not a git repository" in message or "cannot change to" in message:
            raise ConfigError(f"{self.path}: not a git repository (source {self.name!r})")
        if "dubious ownership" in message:  # git's safe.directory check
            raise ConfigError(f"{self.path}: {_last_line(stderr)} (see git's safe.directory)")

    def _raise_for_units(self, stderr: bytes) -> None:
        """Explain a failed listing, unless it failed only because the repository is empty."""
        self._raise_if_not_a_repo(stderr)
        message = _last_line(stderr)
        if self.branches and ("bad revision" in message or "unknown revision" in message):
            if not self._git("for-each-ref", "--count=1").stdout:
                return  # no commits at all yet, so no branch can exist
            raise ConfigError(f"source {self.name!r}: {message} (branches: {self.branches})")
        raise OperationFailed(f"{self.path}: git log failed for source {self.name!r}: {message}")


SOURCE = GitSource


def _branches(name: str, value: Any) -> list[str]:
    """The `branches` option as a list of revisions; empty means every ref."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(b, str) and b.strip() for b in items):
        raise ConfigError(f"source {name!r}: branches must be a list of branch or ref names")
    if any(b.startswith("-") for b in items):
        raise ConfigError(f"source {name!r}: a branch name cannot start with '-'")
    return list(items)


def _last_line(stderr: bytes) -> str:
    """Git's conclusion: the last line of its error output (the "fatal:" one)."""
    lines = _text(stderr).strip().splitlines()
    return lines[-1] if lines else "no error message"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text(data: bytes) -> str:
    """Git's output as text: UTF-8 (git re-encodes to it), bad bytes as U+FFFD."""
    return data.decode("utf-8", errors="replace")
