"""The HTTP face of a sick machine: an environment fault answers 503 with its one line,
never a 500 with a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from softcopy.api import app as api
from softcopy.db import dispose_engines
from softcopy.ingestion import service

pytest_plugins = ["pytest_jupyter.jupyter_server"]

UNREACHABLE = "postgresql://ops:s3cret@127.0.0.1:1/softcopy"


@pytest.fixture
def jp_server_config(tmp_path: Path) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {
                    "softcopy.api": True,
                    "jupyter_server_terminals": False,
                },
                "allow_unauthenticated_access": False,
            },
            "SoftcopyAPI": {"home": str(tmp_path)},
        }
    )


async def test_an_unreachable_database_answers_503_with_one_line(
    jp_fetch: Any, jp_serverapp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTCOPY_DATABASE_URL", UNREACHABLE)
    jp_serverapp.web_app.settings[api.CONTEXT_SETTING] = lambda: service.open_context(tmp_path)
    try:
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("api", "ingestion", "jobs")
    finally:
        dispose_engines()
    response = caught.value.response
    assert response is not None and response.code == 503
    body = json.loads(response.body)
    assert body["error"] == "DatabaseUnavailable"
    assert body["message"].startswith("database postgresql://ops:***@127.0.0.1:1/softcopy: ")
    assert "\n" not in body["message"] and "s3cret" not in response.body.decode()
    assert "Traceback" not in response.body.decode()
