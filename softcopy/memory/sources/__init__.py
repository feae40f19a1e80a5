"""Source kinds, one module each, looked up by name in the `softcopy.sources` registry
(softcopy.registry: the built-in kinds are entry points of softcopy itself)."""

from __future__ import annotations

import contextlib
from datetime import tzinfo

from softcopy.config import SourceConfig
from softcopy.errors import ConfigError
from softcopy.memory.sources.base import ItemRef, Repaired, Source, Tail, UnitScan, load_many
from softcopy.registry import SOURCES


def register(kind: str, cls: type) -> None:
    """Add a source kind in this process; an installed plugin declares it instead as an
    entry point in the `softcopy.sources` group (softcopy.registry)."""
    SOURCES.register(kind, cls)


def open_source(config: SourceConfig, tz: tzinfo) -> Source:
    """A ready-to-read source for a configured entry."""
    cls = SOURCES.get(config.kind)
    if cls is None:  # the settings were checked against the registry; a plugin went away
        raise ConfigError(
            f"source {config.name!r}: unknown kind {config.kind!r}; "
            f"kinds: {', '.join(SOURCES.names())}"
        )
    source = cls(name=config.name, path=config.path, tz=tz, options=config.options)
    # part of what a scan's days depend on (memory.scan): another ts_field re-reads every unit
    with contextlib.suppress(AttributeError):  # a plugin's class with __slots__: not compared
        source.options_seen = dict(config.options)  # type: ignore[attr-defined]
    return source


__all__ = [
    "ItemRef",
    "Repaired",
    "Source",
    "Tail",
    "UnitScan",
    "load_many",
    "open_source",
    "register",
]
