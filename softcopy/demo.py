"""A realistic sample archive: an Obsidian-style notes vault, a JSONL chat export and an
mbox, spread over the last N days with gaps, quiet weekends and a few busy days.

Deterministic for a given (today, days, seed), so tests and screenshots are repeatable.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from softcopy.config import add_source

PEOPLE = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Guido", "Frances"]
TOPICS = [
    ("standup notes", "blocked on the flaky integration test; pairing after lunch"),
    ("release plan", "cut the release branch Thursday, staging rollout Friday morning"),
    ("budget review", "cloud spend is up 12% after the new search cluster"),
    ("hiring loop", "two onsite interviews for the platform role; debrief at four"),
    ("retro", "what went well: faster deploys; what to change: fewer meetings"),
    ("incident review", "the queue backed up when the cache expired all at once"),
    ("design doc", "proposal to split the ingestion worker from the API server"),
    ("reading notes", "chapter on write-ahead logging and checkpoint intervals"),
    ("garden", "planted garlic and tulip bulbs before the frost"),
    ("travel", "train to the conference, hotel near the venue, slides on the way"),
]
CHANNELS = ["#platform", "#release", "#random", "#search"]


@dataclass(frozen=True)
class DemoSummary:
    home: Path
    start: date
    end: date
    notes: int
    messages: int
    mails: int


def build_demo(
    home: Path, *, days: int = 120, today: date | None = None, seed: int = 7
) -> DemoSummary:
    """Write the sample sources under `<home>/sources` and register them."""
    end = today or datetime.now(UTC).date()
    start = end - timedelta(days=days - 1)
    rng = random.Random(f"{seed}:{start}:{days}")
    root = home / "sources"
    notes = _write_notes(root / "notes", start, end, rng)
    messages = _write_chat(root / "chat.jsonl", start, end, rng)
    mails = _write_mbox(root / "mail.mbox", start, end, rng)
    add_source(home, name="notes", kind="notes", path="sources/notes")
    add_source(home, name="chat", kind="jsonl", path="sources/chat.jsonl")
    add_source(home, name="mail", kind="mbox", path="sources/mail.mbox")
    return DemoSummary(home, start, end, notes, messages, mails)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _topic(rng: random.Random) -> tuple[str, str]:
    return rng.choice(TOPICS)


def _write_notes(folder: Path, start: date, end: date, rng: random.Random) -> int:
    (folder / ".obsidian").mkdir(parents=True, exist_ok=True)
    (folder / ".obsidian" / "app.json").write_text('{"newFileLocation": "folder"}\n')
    count = 0
    for day in _days(start, end):
        weekend = day.weekday() >= 5
        if rng.random() < (0.15 if weekend else 0.7):
            title, body = _topic(rng)
            tags = sorted({title.split()[0], rng.choice(["work", "life", "ideas"])})
            text = (
                f"---\ntags: [{', '.join(tags)}]\n---\n# {title.capitalize()}\n\n"
                f"- {body}\n- talked with {rng.choice(PEOPLE)} about {_topic(rng)[0]}\n"
            )
            path = folder / "Daily" / f"{day:%Y}" / f"{day.isoformat()}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            count += 1
    for i, (title, body) in enumerate(TOPICS[:4]):
        day = start + timedelta(days=(i * 29) % max(1, (end - start).days + 1))
        page = folder / "Projects" / f"{title.capitalize()}.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"---\ndate: {day.isoformat()}\ntitle: {title.capitalize()}\n---\n{body}\n")
        count += 1
    return count


def _write_chat(path: Path, start: date, end: date, rng: random.Random) -> int:
    lines = []
    for day in _days(start, end):
        if day.weekday() >= 5 or rng.random() < 0.2:
            continue
        burst = rng.choice([1, 1, 2, 3, 8]) if rng.random() < 0.9 else 0
        for n in range(burst):
            ts = datetime.combine(day, time(9 + n, rng.randrange(60)), UTC)
            title, body = _topic(rng)
            lines.append(
                {
                    "id": f"msg-{day:%Y%m%d}-{n}",
                    "ts": ts.isoformat().replace("+00:00", "Z"),
                    "user": rng.choice(PEOPLE),
                    "channel": rng.choice(CHANNELS),
                    "text": f"{title}: {body}",
                }
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return len(lines)


def _write_mbox(path: Path, start: date, end: date, rng: random.Random) -> int:
    chunks = []
    for day in _days(start, end):
        if rng.random() < 0.55:
            continue
        for n in range(rng.choice([1, 1, 1, 2, 4])):
            ts = datetime.combine(day, time(7 + 2 * n, rng.randrange(60)), UTC)
            title, body = _topic(rng)
            sender = rng.choice(PEOPLE)
            message = EmailMessage()
            message["From"] = f"{sender} <{sender.lower()}@example.org>"
            message["To"] = "me@example.org"
            message["Subject"] = f"Re: {title}"
            message["Date"] = format_datetime(ts)
            message["Message-ID"] = f"<{day:%Y%m%d}.{n}@demo.softcopy>"
            if n == 1:  # a mail client that still writes Latin-1
                message.set_content(f"{body}\n\nGrüße, {sender}\n", charset="iso-8859-1")
            else:
                message.set_content(f"{body}\n\n-- {sender}\n")
            if n == 2:
                message.add_alternative(f"<p>{body}</p><p>&mdash; {sender}</p>", subtype="html")
            chunks.append(f"From {sender.lower()}@example.org {ts:%a %b %d %H:%M:%S %Y}\n")
            chunks.append(_mbox_body(message.as_bytes().decode("ascii", "replace")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(chunks))
    return sum(1 for c in chunks if c.startswith("From "))


def _mbox_body(raw: str) -> str:
    lines = [(">" + line if line.startswith("From ") else line) for line in raw.splitlines()]
    return "\n".join(lines) + "\n\n"
