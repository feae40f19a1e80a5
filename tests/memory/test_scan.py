"""The scan index re-reads only what changed."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from softcopy.config import load_settings
from softcopy.db import get_engine
from softcopy.memory import scan
from softcopy.memory.sources import open_source


def test_refresh_reads_only_changed_units(demo_home: Path) -> None:
    settings = load_settings(demo_home)
    engine = get_engine(settings.database_url)
    notes = open_source(settings.source("notes"), settings.timezone)
    with Session(engine) as session:
        first = scan.refresh(session, notes)
        session.commit()
        assert first.units_read > 20 and first.days_changed
        assert scan.refresh(session, notes).units_read == 0

        page = sorted((settings.source("notes").path / "Daily").rglob("*.md"))[0]
        page.write_text(page.read_text() + "\nmore\n")
        again = scan.refresh(session, notes)
        assert again.units_read == 1 and len(again.days_changed) == 1

        page.unlink()
        gone = scan.refresh(session, notes)
        session.commit()
        assert gone.units_removed == 1
        assert scan.days_refs(session, "notes", [next(iter(again.days_changed))]) == []
