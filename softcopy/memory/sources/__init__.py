"""Source kinds, one module each, looked up by name in a small registry."""

from __future__ import annotations

from datetime import tzinfo

from softcopy.config import SourceConfig
from softcopy.memory.sources.base import ItemRef, Repaired, Source, Tail, UnitScan, load_many

_KINDS: dict[str, type] = {}
_BUILTIN_LOADED = False


def register(kind: str, cls: type) -> None:
    _KINDS[kind] = cls


def open_source(config: SourceConfig, tz: tzinfo) -> Source:
    """A ready-to-read source for a configured entry."""
    if not _BUILTIN_LOADED:  # not `if not _KINDS`: a plugin may have registered first
        _load_builtin_kinds()
    return _KINDS[config.kind](name=config.name, path=config.path, tz=tz, options=config.options)


def _load_builtin_kinds() -> None:
    global _BUILTIN_LOADED
    from softcopy.memory.sources import (
        browser,
        chatgpt,
        git,
        jsonl,
        maildir,
        mbox,
        notes,
        slack,
        telegram,
    )

    for module in (notes, jsonl, mbox, git, slack, telegram, chatgpt, maildir, browser):
        _KINDS.setdefault(module.KIND, module.SOURCE)
    _BUILTIN_LOADED = True


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
