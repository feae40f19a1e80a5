"""Settings: the home folder, the database URL, the timezone and the configured sources.

Read from `<home>/softcopy.toml` and the environment (`SOFTCOPY_HOME`,
`SOFTCOPY_DATABASE_URL`, `SOFTCOPY_TIMEZONE`, `SOFTCOPY_ARTIFACTS_URL`,
`SOFTCOPY_INDEX_URL`); the environment wins over the file.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
import tomlkit

from softcopy.db import parse_url
from softcopy.errors import ConfigError, SourceExists, UnknownSource
from softcopy.registry import EMBEDDERS, EXECUTORS, SOURCES

CONFIG_FILE = "softcopy.toml"
SETTING_KEYS = (
    "database_url",
    "timezone",
    "embedder",
    "lease_timeout",
    "parallel",
    "artifacts_url",
    "artifacts_options",
    "index_url",
    "executor",
    "dask_scheduler",
    "sources",
)
# protocols whose files stay on the machine that wrote them (or in its process)
LOCAL_PROTOCOLS = frozenset({"file", "local", "memory"})
DEFAULT_LEASE_TIMEOUT = 60.0
# A lease shorter than a second would expire between two heartbeats of a busy worker;
# a day is the longest anyone should wait to learn that a worker died.
LEASE_TIMEOUT_RANGE = (1.0, 86400.0)
# Steps of a job run at once by its worker; the default is one per core.
PARALLEL_RANGE = (1, 64)


def default_parallel() -> int:
    return max(1, min(PARALLEL_RANGE[1], os.cpu_count() or 1))


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
    lease_timeout: float = DEFAULT_LEASE_TIMEOUT  # seconds without a heartbeat: interrupted
    parallel: int = field(default_factory=default_parallel)  # steps of a job run at once
    # where day shards and vectors live: None is the home folder; else a folder path or an
    # fsspec URL such as "s3://bucket/prefix"; `artifacts_options` are its fsspec
    # storage_options (e.g. {"endpoint_url": ...} for an S3-compatible store)
    artifacts_url: str | None = None
    artifacts_options: dict[str, Any] = field(default_factory=dict)

    @property
    def artifacts_root(self) -> str:
        """The artifacts' root: a local folder's path, or an fsspec URL."""
        return self.artifacts_url or str(self.home)

    @property
    def artifacts_shared(self) -> bool:
        """Whether artifacts are in a store every machine reaches (an object store such as
        S3), not on one machine's disk: what steps run on other machines need."""
        return _protocol(self.artifacts_root) not in LOCAL_PROTOCOLS

    # the search index: None is the embedded SQLite file <home>/index.db; a postgresql://
    # URL is the team index in that database (softcopy.memory.pg_index)
    index_url: str | None = None
    # where the faces run a job's steps when not told (None: their default), and the Dask
    # scheduler the `dask` executor submits them to ("tcp://host:8786")
    executor: str | None = None
    dask_scheduler: str | None = None

    @property
    def index_shared(self) -> bool:
        """Whether the search index is a server every machine reaches (PostgreSQL), so
        publish steps may run anywhere; the embedded file is on this machine only."""
        return self.index_url is not None

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
    """Settings for `home` (else SOFTCOPY_HOME, else the user data dir), validated: a bad
    value is a ConfigError naming the file (or environment variable), the key, the value
    and what is allowed."""
    home_path = (Path(home).expanduser() if home else default_home(env)).resolve()
    _check_home(home_path)
    config = home_path / CONFIG_FILE
    doc = _read_toml(config)
    unknown = sorted(set(doc) - set(SETTING_KEYS))
    if unknown:
        raise ConfigError(
            f"{config}: unknown setting {unknown[0]!r}; settings: {', '.join(SETTING_KEYS)}"
        )
    url_origin, url = _setting(env, "SOFTCOPY_DATABASE_URL", doc, config, "database_url")
    tz_origin, tz_name = _setting(env, "SOFTCOPY_TIMEZONE", doc, config, "timezone")
    lease_origin, lease = _setting(env, "SOFTCOPY_LEASE_TIMEOUT", doc, config, "lease_timeout")
    parallel_origin, parallel = _setting(env, "SOFTCOPY_PARALLEL", doc, config, "parallel")
    art_origin, art_url = _setting(env, "SOFTCOPY_ARTIFACTS_URL", doc, config, "artifacts_url")
    index_origin, index_url = _setting(env, "SOFTCOPY_INDEX_URL", doc, config, "index_url")
    exec_origin, executor = _setting(env, "SOFTCOPY_EXECUTOR", doc, config, "executor")
    dask_origin, dask = _setting(env, "SOFTCOPY_DASK_SCHEDULER", doc, config, "dask_scheduler")
    embedder = doc.get("embedder", "hashing")
    if embedder not in EMBEDDERS:
        raise ConfigError(
            f"{config}: embedder = {_shown(embedder)}: "
            f"must be one of {', '.join(EMBEDDERS.names())}"
        )
    return Settings(
        lease_timeout=_lease_timeout(lease_origin, lease),
        parallel=_parallel(parallel_origin, parallel),
        home=home_path,
        database_url=_database_url(url_origin, url) or f"sqlite:///{home_path / 'softcopy.db'}",
        timezone=_zone(tz_origin, tz_name),
        embedder=embedder,
        sources=_sources(home_path, doc.get("sources", {})),
        artifacts_url=_artifacts_url(home_path, art_origin, art_url),
        artifacts_options=_artifacts_options(config, doc.get("artifacts_options")),
        index_url=_index_url(index_origin, index_url),
        executor=_executor(exec_origin, executor),
        dask_scheduler=_dask_scheduler(dask_origin, dask),
    )


def add_source(
    home: Path,
    *,
    name: str,
    kind: str,
    path: Path | str,
    options: dict[str, Any] | None = None,
    replace: bool = False,
) -> SourceConfig:
    """Add a source to `<home>/softcopy.toml`, keeping the file's comments.

    Adding a name again with the same path and kind updates its options (the same again
    changes nothing); another path or kind re-points the name, whose published days would
    then be removed by plans that run, so it needs `replace` (`SourceExists` otherwise)."""
    if kind not in SOURCES:
        raise ConfigError(f"unknown source kind {kind!r}; kinds: {', '.join(SOURCES.names())}")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"bad source name {name!r}: use letters, digits, '-' and '_'")
    for what, value in (
        ("path", str(path)),
        *(("option", k) for k in options or {}),
        *((f"option {k!r}", v) for k, v in (options or {}).items()),
    ):
        if not _utf8(value):
            raise ConfigError(
                f"source {name!r}: {what} {value!r} is not valid UTF-8, which "
                f"{CONFIG_FILE} cannot hold; rename it"
            )
    resolved = (home / path).resolve() if not Path(path).is_absolute() else Path(path)
    if not resolved.exists():
        raise ConfigError(f"{resolved}: no such file or folder for source {name!r}")
    config_path = home / CONFIG_FILE
    home.mkdir(parents=True, exist_ok=True)
    doc = tomlkit.parse(config_path.read_text()) if config_path.exists() else tomlkit.document()
    sources = doc.setdefault("sources", tomlkit.table(is_super_table=True))
    old = sources.get(name)
    if old is not None and not replace:
        _check_same(home, name, old, kind, resolved)
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


def _utf8(value: Any) -> bool:
    """Can `value`, text or an option's JSON value (lists and tables of text), be written
    as UTF-8 (a name from the file system or argv may hold the lone surrogates that stand
    for bytes that were not, and a JSON value the escape "\\udcff")?"""
    if isinstance(value, dict):
        return all(_utf8(k) and _utf8(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_utf8(v) for v in value)
    if not isinstance(value, str):
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_same(home: Path, name: str, old: Any, kind: str, resolved: Path) -> None:
    """Refuse to re-point source `name` at another path or kind without `replace`."""
    old_kind = old.get("kind") if isinstance(old, Mapping) else None
    old_path = old.get("path") if isinstance(old, Mapping) else None
    if not isinstance(old_path, str):
        raise SourceExists(name, f"an entry without a path ({home / CONFIG_FILE})", str(resolved))
    was = Path(old_path).expanduser()
    was = was if was.is_absolute() else (home / was).resolve()
    if was != resolved:
        raise SourceExists(name, str(was), str(resolved))
    if old_kind != kind:
        raise SourceExists(name, f"{was} as {old_kind}", f"{resolved} as {kind}")


def _check_home(home: Path) -> None:
    """The home is a folder, or can become one (no file stands in its path)."""
    for folder in (home, *home.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == home else f"cannot be made: {folder} is a file"
                raise ConfigError(f"home {home} {what}, not a folder")
            return


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _setting(
    env: Mapping[str, str], variable: str, doc: dict[str, Any], config: Path, key: str
) -> tuple[str, Any]:
    """(where the value comes from, the value): the environment wins over the file."""
    if env.get(variable):
        return variable, env[variable]
    return f"{config}: {key}", doc.get(key)


def _parallel(origin: str, value: Any) -> int:
    """Steps run at once: a whole number in PARALLEL_RANGE (the default: one per core)."""
    if value is None:
        return default_parallel()
    low, high = PARALLEL_RANGE
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not low <= number <= high:
        raise ConfigError(
            f"{origin} = {_shown(value)}: must be a whole number of steps from {low} to {high}"
        )
    return number


def _shown(value: object, limit: int = 60) -> str:
    """A value as a message may echo it: short, and a string quoted."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _lease_timeout(origin: str, value: Any) -> float:
    low, high = LEASE_TIMEOUT_RANGE
    problem = f"must be a number of seconds between {low:g} and {high:g}"
    if value is None:
        return DEFAULT_LEASE_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{origin} = {_shown(value)}: {problem}")
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{origin} = {_shown(value)}: {problem}") from None
    if not (math.isfinite(seconds) and low <= seconds <= high):
        raise ConfigError(f"{origin} = {_shown(value)}: {problem}")
    return seconds


def _database_url(origin: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{origin}: must be a database URL (a string)")
    try:
        parse_url(value)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None  # the value may hold a password
    return value


def _executor(origin: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in EXECUTORS:
        raise ConfigError(
            f"{origin} = {_shown(value)}: must be one of {', '.join(EXECUTORS.names())}"
        )
    return str(value)


# a Dask scheduler address: [protocol://]host[:port], as `dask scheduler` prints it
SCHEDULER_ADDRESS = re.compile(
    r"^(?:[a-z][a-z0-9+]*://)?"  # tcp://, tls://, ws://, inproc://
    r"(?:\[[0-9a-fA-F:]+\]|[^\s/:\[\]]+)"  # a host name, an IPv4 or a bracketed IPv6
    r"(?::\d+)?/?$"
)


def _dask_scheduler(origin: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SCHEDULER_ADDRESS.match(value.strip()):
        raise ConfigError(
            f"{origin} = {_shown(value)}: must be a Dask scheduler address such as "
            "'tcp://host:8786'"
        )
    return value.strip()


def _index_url(origin: str, value: Any) -> str | None:
    """A postgresql:// URL for the team index, or None for the embedded <home>/index.db."""
    url = _database_url(origin, value)
    if url is not None and parse_url(url).get_backend_name() != "postgresql":
        raise ConfigError(
            f"{origin}: the index URL must be postgresql://<user>@<host>/<db>; "
            "leave it out for the embedded index <home>/index.db"
        )
    return url


def _protocol(url: str) -> str:
    """The protocol that stores a URL's files: of its last link ("simplecache::s3://…")."""
    last = url.rsplit("::", 1)[-1]
    return last.split("://", 1)[0].lower() if "://" in last else "file"


def _artifacts_url(home: Path, origin: str, value: Any) -> str | None:
    """None (the home), an absolute folder path, or an fsspec URL with its protocol."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{origin} = {_shown(value)}: must be a folder or a URL such as 's3://bucket/prefix'"
        )
    value = value.strip()
    if _protocol(value) == "file" and "://" not in value:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (home / path).resolve())
    if _protocol(value) == "file":
        return str(Path(value.split("://", 1)[1]))  # file:///srv/x is the folder /srv/x
    if value.split("://", 1)[1].strip("/") == "":
        raise ConfigError(f"{origin} = {_shown(value)}: names no bucket (s3://bucket/prefix)")
    return value.rstrip("/")


def _artifacts_options(config: Path, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{config}: artifacts_options = {_shown(value)}: must be a table of fsspec "
            "storage options, e.g. { endpoint_url = 'http://127.0.0.1:8333' }"
        )
    return dict(value)


def _zone(origin: str, name: Any) -> ZoneInfo:
    if name is None:
        return ZoneInfo("UTC")
    if not isinstance(name, str):
        raise ConfigError(f"{origin} = {_shown(name)}: must be a timezone name such as 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"{origin} = {_shown(name)}: unknown timezone") from None


def _sources(home: Path, table: Any) -> dict[str, SourceConfig]:
    config = home / CONFIG_FILE
    if not isinstance(table, dict):
        raise ConfigError(
            f"{config}: sources = {_shown(table)}: must be a table of [sources.<name>] entries"
        )
    out = {}
    for name, entry in table.items():
        where = f"{config}: sources.{name}"
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}: bad source name; use letters, digits, '-' and '_'")
        if not isinstance(entry, dict) or "kind" not in entry or "path" not in entry:
            raise ConfigError(f"{config}: source {name!r} needs 'kind' and 'path'")
        if entry["kind"] not in SOURCES:
            raise ConfigError(
                f"{where}.kind = {_shown(entry['kind'])}: unknown kind; "
                f"kinds: {', '.join(SOURCES.names())}"
            )
        if not isinstance(entry["path"], str) or not entry["path"].strip():
            raise ConfigError(
                f"{where}.path = {_shown(entry['path'])}: must be a file or folder path (a string)"
            )
        path = Path(entry["path"]).expanduser()
        options = {k: v for k, v in entry.items() if k not in ("kind", "path")}
        out[name] = SourceConfig(
            name=name,
            kind=entry["kind"],
            path=path if path.is_absolute() else (home / path).resolve(),
            options=options,
        )
    return out
