"""Settings: the home, the database URL, the timezone and sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from softcopy.config import add_source, load_settings
from softcopy.errors import ConfigError, UnknownSource


def test_defaults_and_environment(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'softcopy.db'}"
    assert settings.timezone.key == "UTC" and settings.sources == {}
    env = {"SOFTCOPY_DATABASE_URL": "postgresql://x/y", "SOFTCOPY_TIMEZONE": "Europe/Berlin"}
    settings = load_settings(tmp_path, env=env)
    assert settings.database_url == "postgresql://x/y" and settings.timezone.key == "Europe/Berlin"
    assert load_settings(None, env={"SOFTCOPY_HOME": str(tmp_path)}).home == tmp_path.resolve()


def test_add_source_keeps_comments_and_resolves_paths(tmp_path: Path) -> None:
    (tmp_path / "softcopy.toml").write_text('# my sources\ntimezone = "Asia/Tokyo"\n')
    (tmp_path / "notes").mkdir()
    add_source(tmp_path, name="notes", kind="notes", path="notes", options={"x": 1})
    text = (tmp_path / "softcopy.toml").read_text()
    assert text.startswith("# my sources")
    settings = load_settings(tmp_path, env={})
    assert settings.timezone.key == "Asia/Tokyo"
    assert settings.source("notes").path == (tmp_path / "notes").resolve()
    assert settings.source("notes").options == {"x": 1}
    with pytest.raises(UnknownSource, match="known sources: notes"):
        settings.source("mail")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('timezone = "Mars/Olympus"', "unknown timezone"),
        ("[sources.a]\nkind = 'notes'", "needs 'kind' and 'path'"),
        ("[sources.a]\nkind = 'fax'\npath = '.'", "unknown kind"),
        ("embedder = 'gpt'", "embedder = 'gpt': must be one of hashing, minilm"),
        ("not toml at all =", "softcopy.toml"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "softcopy.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env={})
