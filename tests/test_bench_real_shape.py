"""bench/real_shape.py makes what it says, at a tiny size: commits, days, branches, tags
and busy days of a git history; Logseq journal pages; an mbox's messages and span."""

from __future__ import annotations

import importlib.util
import mailbox
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).parents[1] / "bench" / "real_shape.py"


def real_shape() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_shape", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("real_shape", module)
    spec.loader.exec_module(module)
    return module


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def test_git_history_has_the_shape_asked_for(tmp_path: Path) -> None:
    shape = real_shape()
    asked = shape.GitShape(commits=900, days=30, span_days=400, busy_share=0.2)
    made = shape.make_git(tmp_path / "repo", asked)
    repo = tmp_path / "repo"
    assert made["commits"] == 900 == int(git(repo, "rev-list", "--all", "--count"))
    per_day = Counter(
        datetime.fromtimestamp(int(t), UTC).date()
        for t in git(repo, "log", "--all", "--format=%at").split()
    )
    assert len(per_day) == 30
    assert sum(n >= 50 for n in per_day.values()) == 6  # a fifth of the days are busy
    assert min(per_day) >= shape.END - timedelta(days=399) and max(per_day) <= shape.END
    assert len(git(repo, "branch", "--list").split("\n")) - 1 == made["branches"] >= 3
    assert len(git(repo, "tag").split()) == made["tags"] == 2  # one per 400 commits on main
    subjects = git(repo, "log", "--all", "--format=%s").splitlines()
    assert all(20 <= len(s) <= 120 for s in subjects)
    bodies = git(repo, "log", "--all", "--format=%b%x00").split("\x00")
    assert 0.3 < sum(bool(b.strip()) for b in bodies) / 900 < 0.6


def test_journals_and_mailbox(tmp_path: Path) -> None:
    shape = real_shape()
    assert shape.make_journals(tmp_path / "journals", 12, 365) == 12
    pages = sorted(p.name for p in (tmp_path / "journals").iterdir())
    assert len(pages) == 12 and all(p[4] == "_" and p.endswith(".md") for p in pages)
    assert all(
        line.startswith(("- ", "\t- "))
        for p in (tmp_path / "journals").iterdir()
        for line in p.read_text().splitlines()
    )
    shape.make_mbox(tmp_path / "mail.mbox", 300, 3650)
    box = mailbox.mbox(tmp_path / "mail.mbox")
    messages = list(box)
    box.close()
    assert len(messages) == 300 and len({m["Message-ID"] for m in messages}) == 300
    days = {parsedate_to_datetime(m["Date"]).date() for m in messages}
    assert (max(days) - min(days)).days > 3000


def test_history_shapes_scale_with_years() -> None:
    shape = real_shape()
    sixteen = shape.history_shape(16)
    assert (sixteen.commits, sixteen.days, sixteen.span_days) == (12_114, 2_481, 5_840)
    assert shape.history_shape(1).commits == round(12_114 / 16)
    large = shape.large_shape(203_352)
    assert large.days == 7_548 and large.span_days == 20 * 365 and large.busy_share > 0
