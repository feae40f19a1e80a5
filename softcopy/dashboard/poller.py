"""Live updates: a kernel thread that polls the database while a job is live.

The dashboard's kernel only reads rows the worker writes; it never runs or owns a job, so
closing the tab (which ends the kernel and this thread) never stops one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Poller:
    """Calls `tick` every `interval` seconds in a daemon thread until it returns False
    or `stop()` is called; `start()` again after it stopped begins a new round."""

    def __init__(self, tick: Callable[[], bool], interval: float) -> None:
        self.tick = tick
        self.interval = interval
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wanted = False  # start() was called since the last tick began

    @property
    def running(self) -> bool:
        with self._lock:
            return self._alive()

    def start(self) -> None:
        """Poll until `tick` says there is nothing live (a no-op while already polling)."""
        with self._lock:
            self._wanted = True
            if self._alive() or self.interval <= 0:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._loop, args=(self._stop,), name="softcopy-dashboard-poller", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()

    def _alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            with self._lock:
                self._wanted = False
            try:
                keep = self.tick()
            except Exception:  # keep polling; the failure is in the server log
                log.exception("dashboard poll failed")
                keep = True
            with self._lock:
                # a start() during the tick wins over the tick's "nothing live"
                if not keep and not self._wanted:
                    stop.set()
                    return
