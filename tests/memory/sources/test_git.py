"""The git source kind, against real repositories built with the git CLI."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from softcopy.errors import BadRecord, ConfigError
from softcopy.memory.items import MemoryItem
from softcopy.memory.sources import git
from softcopy.memory.sources.git import GitSource

UTC_TZ = ZoneInfo("UTC")


def run_git(cwd: Path, *args: str, date: str | None = None, input: bytes | None = None) -> str:
    """Run git isolated from the machine's configuration, optionally at a fixed date."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Ann Example",
        "GIT_AUTHOR_EMAIL": "ann@example.com",
        "GIT_COMMITTER_NAME": "Ann Example",
        "GIT_COMMITTER_EMAIL": "ann@example.com",
    }
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    result = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        check=True,
    )
    return result.stdout.decode().strip()


def commit(repo: Path, message: bytes, when: str, *extra: str) -> str:
    """A commit at author date `when` with this raw message; returns its hash."""
    (repo / "log.txt").write_bytes((repo / "log.txt").read_bytes() + message[:20] + b"\n")
    run_git(repo, "add", "log.txt")
    run_git(repo, *extra, "commit", "-q", "-F", "-", date=when, input=message)
    return run_git(repo, "rev-parse", "HEAD")


@dataclass
class Repo:
    path: Path
    bare: Path
    parser: str  # 2024-03-01 23:30 +05:00, i.e. 18:30 UTC
    fix: str  # 2024-03-02 01:15 -08:00, i.e. 09:15 UTC
    latin1: str  # message stored in ISO-8859-1 with an encoding header
    feature: str  # on branch "feature" only


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("git")
    path = root / "project"
    path.mkdir()
    run_git(path, "init", "-q")
    (path / "log.txt").write_bytes(b"")
    parser = commit(
        path,
        b"Add the parser\n\nIt reads the new format.\n\nSecond paragraph.\n",
        "2024-03-01T23:30:00+05:00",
    )
    fix = commit(path, b"Fix the parser\n", "2024-03-02T01:15:00-08:00")
    latin1 = commit(
        path,
        "Grüße aus Köln\n\nÄnderungen für März.\n".encode("latin-1"),
        "2024-03-03T12:00:00+01:00",
        "-c",
        "i18n.commitEncoding=ISO-8859-1",
    )
    run_git(path, "checkout", "-q", "-b", "feature")
    feature = commit(path, b"Try a feature\n", "2024-03-04T08:00:00+00:00")
    run_git(path, "checkout", "-q", "main")
    (path / "log.txt").write_bytes(b"uncommitted\n")
    run_git(path, "stash", "-q", date="2024-03-05T08:00:00+00:00")  # not history: excluded
    bare = root / "project.git"
    run_git(root, "clone", "-q", "--bare", str(path), str(bare))
    return Repo(path, bare, parser, fix, latin1, feature)


def source(path: Path, tz: ZoneInfo = UTC_TZ, **options: object) -> GitSource:
    return GitSource(name="code", path=path, tz=tz, options=dict(options))


def items_of(src: GitSource) -> dict[str, MemoryItem]:
    items = {}
    for unit, _stamp in src.units():
        [item] = list(src.load(unit, [unit]))
        assert isinstance(item, MemoryItem)
        items[unit] = item
    return items


def test_kind_constants() -> None:
    assert git.KIND == "git" == GitSource.kind
    assert git.SOURCE is GitSource


def test_units_are_every_commit_of_every_branch(repo: Repo) -> None:
    units = dict(source(repo.path).units())
    assert sorted(units) == sorted([repo.parser, repo.fix, repo.latin1, repo.feature])
    assert all(stamp == unit for unit, stamp in units.items())


def test_commit_becomes_an_item(repo: Repo) -> None:
    [ref] = source(repo.path).scan_unit(repo.parser).refs
    [item] = list(source(repo.path).load(repo.parser, [ref.locator]))
    assert isinstance(item, MemoryItem)
    assert item.item_id == f"git:{repo.parser}" == ref.item_id
    assert item.source == "code"
    assert item.ts == datetime(2024, 3, 1, 18, 30, tzinfo=UTC)
    assert item.day == date(2024, 3, 1) == ref.day
    assert item.title == "Add the parser"
    assert item.text == "It reads the new format.\n\nSecond paragraph."
    assert item.meta == {"author": "Ann Example", "email": "ann@example.com"}
    assert item.content_hash == ref.content_hash


def test_day_follows_the_configured_timezone(repo: Repo) -> None:
    def day(commit: str, tz: str) -> date:
        [ref] = source(repo.path, ZoneInfo(tz)).scan_unit(commit).refs
        return ref.day

    assert day(repo.parser, "UTC") == date(2024, 3, 1)
    assert day(repo.parser, "Asia/Tokyo") == date(2024, 3, 2)  # 03:30 on the 2nd
    assert day(repo.fix, "America/Los_Angeles") == date(2024, 3, 2)
    assert day(repo.fix, "Pacific/Honolulu") == date(2024, 3, 1)  # 23:15 on the 1st


def test_non_utf8_message_is_decoded(repo: Repo) -> None:
    [item] = list(source(repo.path).load(repo.latin1, [repo.latin1]))
    assert isinstance(item, MemoryItem)
    assert item.title == "Grüße aus Köln"
    assert item.text == "Änderungen für März."


def test_bare_clone_yields_the_same_items(repo: Repo) -> None:
    assert items_of(source(repo.bare)) == items_of(source(repo.path))


def test_scan_units_batch_equals_per_unit_scan(repo: Repo) -> None:
    src = source(repo.path, ZoneInfo("Europe/Berlin"))
    units = [unit for unit, _ in src.units()]
    batch = src.scan_units(units)
    assert batch == {unit: src.scan_unit(unit) for unit in units}
    assert all(len(scan.refs) == 1 and not scan.problems for scan in batch.values())


def test_missing_and_malformed_commits_are_bad_records(repo: Repo) -> None:
    gone, junk = "0" * 40, "--all"
    scans = source(repo.path).scan_units([repo.fix, gone, junk])
    assert len(scans[repo.fix].refs) == 1
    for unit in (gone, junk):
        [problem] = scans[unit].problems
        assert isinstance(problem, BadRecord)
        assert problem.where == f"commit {unit}"
        assert scans[unit].refs == []
    [problem] = list(source(repo.path).load(gone, [gone]))
    assert isinstance(problem, BadRecord)


def test_corrupt_commit_fails_alone(tmp_path: Path) -> None:
    run_git(tmp_path, "init", "-q", "small")
    path = tmp_path / "small"
    (path / "log.txt").write_bytes(b"")
    good = commit(path, b"Good\n", "2024-03-01T10:00:00+00:00")
    bad = commit(path, b"Bad\n", "2024-03-02T10:00:00+00:00")
    loose = path / ".git" / "objects" / bad[:2] / bad[2:]
    loose.chmod(0o644)
    loose.write_bytes(b"not a zlib stream")
    scans = source(path).scan_units([good, bad])
    assert [ref.item_id for ref in scans[good].refs] == [f"git:{good}"]
    [problem] = scans[bad].problems
    assert problem.where == f"commit {bad}"


def test_branches_option_restricts_the_refs(repo: Repo) -> None:
    units = {unit for unit, _ in source(repo.path, branches=["main"]).units()}
    assert units == {repo.parser, repo.fix, repo.latin1}
    with pytest.raises(ConfigError, match="no-such-branch"):
        list(source(repo.path, branches=["no-such-branch"]).units())
    with pytest.raises(ConfigError, match="branches"):
        source(repo.path, branches=[3])
    with pytest.raises(ConfigError, match="'-'"):
        source(repo.path, branches=["--all"])


def test_empty_repository_has_no_units(tmp_path: Path) -> None:
    run_git(tmp_path, "init", "-q", "empty")
    assert list(source(tmp_path / "empty").units()) == []
    assert list(source(tmp_path / "empty", branches=["main"]).units()) == []


def test_not_a_repository_is_a_config_error(tmp_path: Path, repo: Repo) -> None:
    for path in (tmp_path, tmp_path / "missing"):
        with pytest.raises(ConfigError, match="not a git repository"):
            list(source(path).units())
    # A folder inside a repository is not the repository itself.
    (repo.path / "sub").mkdir(exist_ok=True)
    with pytest.raises(ConfigError, match="not a git repository"):
        list(source(repo.path / "sub").units())
