"""The kernel manager `softcopy serve` runs: Jupyter's, with a culler that also ends the
kernel of an abandoned render that keeps talking.

Jupyter's culler ends a kernel idle for `cull_idle_timeout`, where idle means no message
on its IOPub channel. A dashboard kernel nobody is connected to (a fetched page, a closed
tab) is not quiet while a job runs: its poller thread redraws the job's widgets every
second, each redraw is a message, and Jupyter counts it as activity, so the kernel (and its
polling of the database) lived as long as the job, hours for a long backfill.

Here a kernel nobody is connected to is also culled once it has been idle for
`cull_idle_timeout` since it last handled a request (a render's cell, a click: the kernel
announces each with a status message), whatever its threads send meanwhile. A kernel
starting or handling a request (a render in progress) is not culled, nor one a tab holds
a connection to (`cull_connected` stays off).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from jupyter_client.session import Session
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import ensure_async


class DashboardKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager, also culling kernels left alone that only talk."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._last_request: dict[str, datetime] = {}  # a kernel's last status message
        self._request_streams: dict[str, Any] = {}  # the IOPub stream that watches for it

    def start_watching_activity(self, kernel_id: str) -> None:
        super().start_watching_activity(kernel_id)
        kernel = self._kernels[kernel_id]
        self._last_request[kernel_id] = utcnow()
        session = Session(config=kernel.session.config, key=kernel.session.key)

        def record_request(parts: list[Any]) -> None:
            _, message = session.feed_identities(parts)
            if session.deserialize(message, content=False)["header"]["msg_type"] == "status":
                self._last_request[kernel_id] = utcnow()  # a request began or ended

        stream = kernel.connect_iopub()
        stream.on_recv(record_request)
        self._request_streams[kernel_id] = stream

    def stop_watching_activity(self, kernel_id: str) -> None:
        super().stop_watching_activity(kernel_id)
        stream = self._request_streams.pop(kernel_id, None)
        if stream is not None and not stream.closed():
            stream.close()
        self._last_request.pop(kernel_id, None)

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        kernel = self._kernels[kernel_id]
        timeout = kernel.kernel_spec.metadata.get("cull_idle_timeout", self.cull_idle_timeout)
        alone = not self._kernel_connections.get(kernel_id, 0)
        working = getattr(kernel, "execution_state", None) in ("starting", "busy")
        quiet = utcnow() - self._last_request.get(kernel_id, utcnow())
        if alone and not working and timeout > 0 and quiet > timedelta(seconds=timeout):
            self.log.warning(
                "Culling kernel '%s' (%s): no connection, and no request for %d s",
                kernel.kernel_name,
                kernel_id,
                int(quiet.total_seconds()),
            )
            await ensure_async(self.shutdown_kernel(kernel_id))
            return
        await super().cull_kernel_if_idle(kernel_id)
