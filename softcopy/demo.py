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
# Hand-written journal entries, each about something different and worded its own way, so
# search can be judged on more than the templated topics (bench/search_quality.py labels
# queries against these titles). Each lands `days_ago` before the demo's last day.
JOURNAL = [
    (
        3,
        "Car trouble",
        "Took the Volvo to the mechanic: the brakes were squealing and the "
        "front pads were worn through. Replaced both, plus a new battery.",
    ),
    (
        5,
        "Kubernetes upgrade",
        "Upgraded the production cluster from 1.28 to 1.29. Two nodes "
        "drained slowly because a pod disruption budget was too strict.",
    ),
    (
        8,
        "Dentist",
        "Check-up at the dentist; one small cavity filled, next cleaning in six months. Gums fine.",
    ),
    (
        11,
        "Sourdough",
        "Fed the starter twice, baked a loaf at 250 degrees with steam. Crumb "
        "was open, crust too dark; shorten the bake next time.",
    ),
    (
        13,
        "Quarterly taxes",
        "Paid the estimated income tax for the third quarter and filed "
        "the receipts for the home office deduction.",
    ),
    (
        16,
        "Flight to Lisbon",
        "Booked the flight to Lisbon for the conference; aisle seat, "
        "checked bag, landing at 14:05. Airbnb near Alfama.",
    ),
    (
        19,
        "Database migration",
        "Moved the orders table to the new Postgres instance with "
        "logical replication; cut-over took four minutes of read-only time.",
    ),
    (
        22,
        "Running",
        "Ran 10 km along the river in 52 minutes; left knee sore after 7 km, try new shoes.",
    ),
    (
        26,
        "Birthday party",
        "Planned Mia's seventh birthday: cake from the bakery, eight kids, "
        "treasure hunt in the park, invitations sent.",
    ),
    (
        29,
        "Laptop died",
        "The laptop would not boot after the update; recovered files from "
        "the backup drive and ordered a replacement SSD.",
    ),
    (
        33,
        "Onboarding Priya",
        "First week plan for Priya, our new backend engineer: access "
        "requests, a buddy, and a small first bug to fix.",
    ),
    (
        36,
        "Rent increase",
        "Landlord wrote that rent goes up 6% from March; compare with "
        "flats nearby before signing the renewal.",
    ),
    (
        40,
        "Security patch",
        "Patched the OpenSSL vulnerability on all web servers and rotated "
        "the TLS certificates the same night.",
    ),
    (
        43,
        "Piano lesson",
        "Worked on the left hand of the Chopin nocturne; teacher says slow "
        "practice with a metronome at 60.",
    ),
    (
        47,
        "Power outage",
        "Electricity was out for three hours in the storm; freezer held, "
        "router on the battery pack.",
    ),
    (
        51,
        "Conference talk",
        "Submitted the talk proposal about incremental indexing to "
        "PyCon; abstract, outline and a short bio.",
    ),
    (
        55,
        "Flu",
        "Stayed home with a fever and a sore throat; slept most of the day, tea "
        "and soup, cancelled the meetings.",
    ),
    (
        58,
        "Salary negotiation",
        "Asked for a raise in the one-on-one: listed the projects "
        "shipped this year; manager will come back after calibration.",
    ),
    (62, "Bird watching", "Saw a kingfisher by the canal at dawn and two herons on the far bank."),
    (
        66,
        "Printer",
        "The office printer jams on double-sided jobs; ordered a new fuser "
        "unit and set single-sided as the default.",
    ),
    (
        70,
        "Moving boxes",
        "Packed the kitchen into twelve boxes for the move; labelled each "
        "by room, fragile glasses wrapped in towels.",
    ),
    (
        74,
        "API rate limits",
        "Customers hit 429 errors at peak; raised the per-token limit "
        "and added a retry-after header.",
    ),
    (
        78,
        "Vet visit",
        "Took the cat for vaccinations; she has lost weight, switch to the kidney diet food.",
    ),
    (
        82,
        "Book club",
        "Discussed The Left Hand of Darkness; most liked the ice crossing "
        "chapter, next month is Piranesi.",
    ),
    (
        86,
        "Solar panels",
        "Got a quote for rooftop solar: 14 panels, payback in about nine "
        "years with the feed-in tariff.",
    ),
    (
        90,
        "Code review backlog",
        "Twenty open pull requests waiting more than a week; agreed "
        "on a daily review slot and smaller diffs.",
    ),
    (
        95,
        "Wedding anniversary",
        "Dinner at the Italian place where we had our first date; ten years married.",
    ),
    (
        100,
        "Data loss scare",
        "A cron job deleted last week's exports; restored them from "
        "object storage snapshots, then added a dry-run flag.",
    ),
    (
        105,
        "Garden shed",
        "Built the shed floor from pressure-treated timber; walls and roof felt next weekend.",
    ),
    (
        110,
        "Interview feedback",
        "Candidate for the frontend role was strong on CSS and "
        "accessibility, weaker on testing; lean hire.",
    ),
]


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
    for days_ago, title, body in JOURNAL:
        day = end - timedelta(days=days_ago)
        if day < start:
            continue
        page = folder / "Journal" / f"{title.lower().replace(' ', '-')}.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"---\ndate: {day.isoformat()}\ntitle: {title}\n---\n{body}\n")
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
