"""Settings: the home folder, the database URL, the timezone and the configured sources.

Read from `<home>/softcopy.toml` and the environment (`SOFTCOPY_HOME`,
`SOFTCOPY_DATABASE_URL`, `SOFTCOPY_TIMEZONE`); the environment wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
import tomlkit

from softcopy.errors import ConfigError, UnknownSource

CONFIG_FILE = "softcopy.toml"
SOURCE_KINDS = ("notes", "jsonl", "mbox", "git")
EMBEDDERS = ("hashing", "minilm")


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    path: Path
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    timezone: ZoneInfo
    embedder: str = "hashing"
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    lease_timeout: float = 60.0  # seconds without a heartbeat before a job is interrupted

    @property
    def export_dir(self) -> Path:
        return self.home / "export"

    @property
    def vectors_dir(self) -> Path:
        return self.home / "vectors"

    @property
    def index_path(self) -> Path:
        return self.home / "index.db"

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]
        except KeyError:
            raise UnknownSource(name, sorted(self.sources)) from None

    def selected_sources(self, names: list[str] | None) -> list[SourceConfig]:
        """The named sources (validated), or all of them when no name is given."""
        if names:
            return [self.source(n) for n in names]
        return [self.sources[n] for n in sorted(self.sources)]


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("SOFTCOPY_HOME"):
        return Path(env["SOFTCOPY_HOME"]).expanduser()
    return Path(platformdirs.user_data_dir("softcopy", appauthor=False))


def load_settings(home: Path | str | None = None, env: Mapping[str, str] = os.environ) -> Settings:
    """Settings for `home` (else SOFTCOPY_HOME, else the user data dir)."""
    home_path = (Path(home).expanduser() if home else default_home(env)).resolve()
    doc = _read_toml(home_path / CONFIG_FILE)
    url = env.get("SOFTCOPY_DATABASE_URL") or doc.get("database_url")
    tz_name = env.get("SOFTCOPY_TIMEZONE") or doc.get("timezone") or "UTC"
    embedder = doc.get("embedder", "hashing")
    if embedder not in EMBEDDERS:
        raise ConfigError(f"{home_path / CONFIG_FILE}: embedder must be one of {EMBEDDERS}")
    try:
        lease_timeout = float(env.get("SOFTCOPY_LEASE_TIMEOUT") or doc.get("lease_timeout", 60))
    except ValueError:
        raise ConfigError("lease_timeout must be a number of seconds") from None
    return Settings(
        lease_timeout=lease_timeout,
        home=home_path,
        database_url=url or f"sqlite:///{home_path / 'softcopy.db'}",
        timezone=_zone(tz_name),
        embedder=embedder,
        sources=_sources(home_path, doc.get("sources", {})),
    )


def add_source(
    home: Path, *, name: str, kind: str, path: Path | str, options: dict[str, Any] | None = None
) -> SourceConfig:
    """Add (or replace) a source in `<home>/softcopy.toml`, keeping the file's comments."""
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"unknown source kind {kind!r}; kinds: {', '.join(SOURCE_KINDS)}")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"bad source name {name!r}: use letters, digits, '-' and '_'")
    resolved = (home / path).resolve() if not Path(path).is_absolute() else Path(path)
    if not resolved.exists():
        raise ConfigError(f"{resolved}: no such file or folder for source {name!r}")
    config_path = home / CONFIG_FILE
    home.mkdir(parents=True, exist_ok=True)
    doc = tomlkit.parse(config_path.read_text()) if config_path.exists() else tomlkit.document()
    sources = doc.setdefault("sources", tomlkit.table(is_super_table=True))
    entry = tomlkit.table()
    entry.add("kind", kind)
    entry.add("path", str(path))
    for key, value in (options or {}).items():
        entry.add(key, value)
    sources[name] = entry
    tmp = config_path.with_suffix(".toml.tmp")
    tmp.write_text(tomlkit.dumps(doc))
    tmp.replace(config_path)
    return SourceConfig(name=name, kind=kind, path=resolved, options=dict(options or {}))


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {name!r}") from None


def _sources(home: Path, table: dict[str, Any]) -> dict[str, SourceConfig]:
    out = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or "kind" not in entry or "path" not in entry:
            raise ConfigError(f"{home / CONFIG_FILE}: source {name!r} needs 'kind' and 'path'")
        if entry["kind"] not in SOURCE_KINDS:
            raise ConfigError(f"{home / CONFIG_FILE}: source {name!r} has unknown kind")
        path = Path(entry["path"]).expanduser()
        options = {k: v for k, v in entry.items() if k not in ("kind", "path")}
        out[name] = SourceConfig(
            name=name,
            kind=entry["kind"],
            path=path if path.is_absolute() else (home / path).resolve(),
            options=options,
        )
    return out
