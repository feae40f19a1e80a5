"""Settings: the home, the database URL, the timezone and sources."""

from __future__ import annotations

import re
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
        ("embedder = 'gpt'", "embedder = 'gpt': must be one of hashing"),
        ("not toml at all =", "softcopy.toml"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "softcopy.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env={})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "lease_timeout = -1",
            "softcopy.toml: lease_timeout = -1: must be a number of seconds between 1 and 86400",
        ),
        ("lease_timeout = nan", "lease_timeout = nan: must be a number of seconds"),
        ("lease_timeout = inf", "lease_timeout = inf: must be a number of seconds"),
        ("lease_timeout = 1e9", "lease_timeout = 1000000000.0: must be a number of seconds"),
        ("lease_timeout = true", "lease_timeout = True: must be a number of seconds"),
        ("lease_timeout = 'soon'", "lease_timeout = 'soon': must be a number of seconds"),
        ("sources = 5", "softcopy.toml: sources = 5: must be a table of [sources.<name>]"),
        ("[sources.a]\nkind = 'notes'\npath = 5", "sources.a.path = 5: must be a file or folder"),
        ("[sources.a]\nkind = 'notes'\npath = ''", "sources.a.path = '': must be a file or"),
        ("[sources.a]\nkind = 5\npath = '.'", "sources.a.kind = 5: unknown kind"),
        ("[sources.'../up']\nkind = 'notes'\npath = '.'", "sources.../up: bad source name"),
        ("database_url = 'garbage'", "softcopy.toml: database_url: not a database URL"),
        ("database_url = 'mysql://h/db'", "unsupported backend 'mysql'"),
        ("database_url = 5", "softcopy.toml: database_url: must be a database URL"),
        ("timezone = 5", "softcopy.toml: timezone = 5: must be a timezone name"),
        ("lease_timout = 30", "softcopy.toml: unknown setting 'lease_timout'"),
    ],
)
def test_every_setting_is_validated_naming_file_key_and_range(
    tmp_path: Path, toml: str, message: str
) -> None:
    (tmp_path / "softcopy.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, env={})
    assert message in str(caught.value)
    assert str(tmp_path / "softcopy.toml") in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOFTCOPY_LEASE_TIMEOUT": "-1"}, "SOFTCOPY_LEASE_TIMEOUT = '-1': must be a number"),
        ({"SOFTCOPY_LEASE_TIMEOUT": "nan"}, "SOFTCOPY_LEASE_TIMEOUT = 'nan': must be a number"),
        ({"SOFTCOPY_DATABASE_URL": "::"}, "SOFTCOPY_DATABASE_URL: not a database URL"),
        ({"SOFTCOPY_TIMEZONE": "Mars/Olympus"}, "SOFTCOPY_TIMEZONE = 'Mars/Olympus': unknown"),
    ],
)
def test_environment_settings_are_validated_naming_the_variable(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(tmp_path, env=env)


def test_lease_timeouts_inside_the_range_load(tmp_path: Path) -> None:
    (tmp_path / "softcopy.toml").write_text("lease_timeout = 1\n")
    assert load_settings(tmp_path, env={}).lease_timeout == 1.0
    assert load_settings(tmp_path, env={"SOFTCOPY_LEASE_TIMEOUT": "86400"}).lease_timeout == 86400


def test_a_home_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        load_settings(tmp_path / "file", env={})
    with pytest.raises(ConfigError, match=f"cannot be made: {re.escape(str(tmp_path))}/file is"):
        load_settings(tmp_path / "file" / "home", env={})


def test_a_source_path_or_option_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """A folder name that is not UTF-8 (argv gives it as lone surrogates) cannot be written
    to softcopy.toml: one ConfigError naming it, and the file is left as it was."""
    (tmp_path / "caf\udce9").mkdir()
    with pytest.raises(ConfigError, match=r"path 'caf\\udce9' is not valid UTF-8"):
        add_source(tmp_path, name="n", kind="notes", path="caf\udce9")
    (tmp_path / "ok").mkdir()
    with pytest.raises(ConfigError, match=r"option 'x' '\\udcff' is not valid UTF-8"):
        add_source(tmp_path, name="n", kind="notes", path="ok", options={"x": "\udcff"})
    # a JSON value from --option (extensions=[".m\\udcff"]): in a list or a table too
    with pytest.raises(ConfigError, match=r"option 'extensions' \[.*\] is not valid UTF-8"):
        add_source(
            tmp_path, name="n", kind="notes", path="ok", options={"extensions": [".m\udcff"]}
        )
    with pytest.raises(ConfigError, match=r"option 'x' \{.*\} is not valid UTF-8"):
        add_source(tmp_path, name="n", kind="notes", path="ok", options={"x": {"\udcff": 1}})
    assert not (tmp_path / "softcopy.toml").exists()
    assert not (tmp_path / "softcopy.toml.tmp").exists()
