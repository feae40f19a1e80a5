"""Pieces of the job view that need no database: notebook links and verification results."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from softcopy.dashboard.job import notebook_link, server_base_url, verification_html
from softcopy.ingestion.models import JobStep, Verification
from softcopy.ingestion.states import Stage, StepStatus


def step(artifact: str | None) -> JobStep:
    return JobStep(
        id=9,
        job_id=3,
        ordinal=0,
        stage=Stage.export,
        source="notes",
        start_day=date(2026, 3, 1),
        end_day=date(2026, 3, 1),
        status=StepStatus.succeeded,
        artifact=artifact,
    )


def test_step_notebooks_link_to_the_api_under_the_servers_base_url(monkeypatch) -> None:
    monkeypatch.setenv("SCRIPT_NAME", "/user/ada/voila/render/dashboards/ingestion.ipynb")
    assert server_base_url() == "/user/ada/"
    link = notebook_link(3, step("runs/3/1-export.ipynb"))
    assert 'href="/user/ada/api/ingestion/jobs/3/steps/9/notebook"' in link
    assert ">1-export.ipynb</a>" in link
    assert notebook_link(3, step(None)) == ""
    monkeypatch.delenv("SCRIPT_NAME")
    assert server_base_url() == "/"


@pytest.mark.parametrize("ok", [True, False])
def test_a_verification_shows_its_outcome_and_every_problem(ok: bool) -> None:
    problems = [] if ok else [{"source": "notes", "day": "2026-03-01", "problem": "<gone>"}]
    found = Verification(
        job_id=3,
        created_at=datetime(2026, 3, 31, tzinfo=UTC),
        ok=ok,
        cells_checked=12,
        problems=problems,
    )
    shown = verification_html(found)
    if ok:
        assert "sc-ok" in shown and "12 cells checked" in shown
    else:
        assert "sc-error" in shown and "1 problems in 12 cells" in shown
        assert "problem: &lt;gone&gt;" in shown  # escaped
    assert verification_html(None) == ""
