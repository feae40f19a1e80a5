"""The registries of the pluggable parts: source kinds, embedders and executors.

Each is filled from an entry point group, the way papermill finds its engines: softcopy's
own parts are declared in its pyproject.toml like any plugin's, so installing a
distribution that declares, say,

    [project.entry-points."softcopy.sources"]
    dayone = "my_package.dayone:DayOneSource"

makes `kind = "dayone"` valid in softcopy.toml. `register(name, obj)` adds one in process
(and wins over an entry point of the same name).

Names are read from the installed distributions' metadata without importing anything, so
configuration (a base module) validates kinds, embedders and executors against the
registry while the objects themselves (which live in memory and the control plane) are
imported only when `get` asks for one.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any


class Registry:
    """Names to objects: explicit registrations first, then the group's entry points."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._registered: dict[str, Any] = {}
        self._points: dict[str, EntryPoint] | None = None

    def register(self, name: str, obj: Any) -> None:
        self._registered[name] = obj

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def names(self) -> list[str]:
        return sorted({*self._registered, *self._entry_points()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._registered or name in self._entry_points())

    # item access, so that a test can stand one in with `monkeypatch.setitem(REGISTRY, ...)`
    __setitem__ = register
    __delitem__ = unregister

    def get(self, name: str, default: Any = None) -> Any:
        """The object registered as `name` (its entry point loaded once), else `default`."""
        if name in self._registered:
            return self._registered[name]
        point = self._entry_points().get(name)
        if point is None:
            return default
        obj = point.load()
        self._registered[name] = obj
        return obj

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._points is None:
            points: dict[str, EntryPoint] = {}
            for point in entry_points(group=self.group):
                points.setdefault(point.name, point)  # the first distribution on the path wins
            self._points = points
        return self._points


SOURCES = Registry("softcopy.sources")  # kind -> Source class (memory/sources)
EMBEDDERS = Registry("softcopy.embedders")  # name -> Embedder factory (memory/embedders)
EXECUTORS = Registry("softcopy.executors")  # name -> StepExecutor factory (ingestion/executors)
