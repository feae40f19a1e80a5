"""A real S3-compatible object store for the tests, started on loopback and stopped after.

The store is OpenStack Swift, from Debian's packages (swift-proxy, swift-account,
swift-container, swift-object; `make s3server` installs them), answering the S3 protocol
through its s3api middleware, with memcached for its auth tokens. (The issue asked for
SeaweedFS's `weed`, but no Debian suite ships a seaweedfs package, and this workplace
downloads nothing else.) Each session gets its own: free loopback ports, rings and data in
a temporary folder, and generated credentials (a tempauth user; S3 access key
"<account>:<user>", secret its password).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where the swift packages are
SERVERS = ("account", "container", "object")
PROGRAMS = ("swift-object-server", "swift-proxy-server", "memcached")
STARTUP_SECONDS = 60.0

# One process serves Swift's four servers (eventlet green threads), after making their
# rings: a quarter of the start-up of four processes, each importing Swift.
_SERVE = """
import sys
import eventlet
eventlet.monkey_patch()
import eventlet.wsgi
from swift.common.ring import RingBuilder
from swift.common.wsgi import loadapp

folder, *specs = sys.argv[1:]  # kind=port=conf, the proxy last
servers = [spec.split("=", 2) for spec in specs]
for kind, port, _ in servers[:-1]:
    builder = RingBuilder(4, 1, 1)  # 16 partitions, one replica, no wait between moves
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 1.0})
    builder.rebalance()
    builder.get_ring().save(f"{folder}/{kind}.ring.gz")
pool = eventlet.GreenPool()
for kind, port, conf in servers:
    app = loadapp(conf)
    pool.spawn(eventlet.wsgi.server, eventlet.listen(("127.0.0.1", int(port))), app,
               log_output=False)
pool.waitall()
"""


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


def missing() -> str | None:
    """Why the store cannot start here, or None."""
    absent = [p for p in PROGRAMS if shutil.which(p) is None]
    if absent or not Path(SYSTEM_PYTHON).exists():
        return (
            f"no {', '.join(absent) or SYSTEM_PYTHON}: the S3 tests need Debian's OpenStack "
            "Swift and memcached (`make s3server` installs them as root)"
        )
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


def _conf(folder: Path, devices: Path, name: str, port: int, pipeline: str, extra: str) -> Path:
    path = folder / f"{name}.conf"
    path.write_text(
        f"[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {port}\nworkers = 0\n"
        f"devices = {devices}\nmount_check = false\nswift_dir = {folder}\n"
        f"log_level = WARNING\n\n[pipeline:main]\npipeline = {pipeline}\n\n{extra}"
    )
    return path


def _proxy_extra(account: str, user: str, secret: str, memcache_port: int) -> str:
    # pipeline name → the egg entry point of that filter
    filters = {
        "catch_errors": "catch_errors",
        "gatekeeper": "gatekeeper",
        "healthcheck": "healthcheck",
        "proxy-logging": "proxy_logging",
        "copy": "copy",
        "slo": "slo",
        "dlo": "dlo",
    }
    return (
        "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
        f"[filter:tempauth]\nuse = egg:swift#tempauth\nuser_{account}_{user} = {secret} .admin\n\n"
        "[filter:s3api]\nuse = egg:swift#s3api\n\n"
        "[filter:cache]\nuse = egg:swift#memcache\n"
        f"memcache_servers = 127.0.0.1:{memcache_port}\n\n"
        + "".join(f"[filter:{name}]\nuse = egg:swift#{egg}\n\n" for name, egg in filters.items())
    )


@contextmanager
def swift_s3(folder: Path) -> Iterator[S3Server]:
    """Start Swift with s3api (and memcached) on free loopback ports, data under `folder`;
    yield the endpoint and credentials once a bucket can be made; stop every process."""
    # the objects in memory where the machine has a tmpfs (Swift syncs every write)
    shm = Path("/dev/shm")
    devices = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else folder, prefix="swift-"))
    (devices / "d1").mkdir()
    ports = dict(zip((*SERVERS, "proxy", "memcached"), _free_ports(5), strict=True))
    account, user, secret = "softcopy", "tester", secrets.token_hex(16)
    confs = {
        s: _conf(
            folder, devices, s, ports[s], f"{s}-server", f"[app:{s}-server]\nuse = egg:swift#{s}\n"
        )
        for s in SERVERS
    }
    pipeline = (
        "catch_errors gatekeeper healthcheck proxy-logging cache s3api tempauth copy slo dlo "
        "proxy-logging proxy-server"
    )
    confs["proxy"] = _conf(
        folder,
        devices,
        "proxy",
        ports["proxy"],
        pipeline,
        _proxy_extra(account, user, secret, ports["memcached"]),
    )
    commands = [
        [
            "memcached",
            "-l",
            "127.0.0.1",
            "-p",
            str(ports["memcached"]),
            "-U",
            "0",
            "-m",
            "16",
            "-u",
            "root",
        ],
        [
            SYSTEM_PYTHON,
            "-c",
            _SERVE,
            str(folder),
            *(f"{s}={ports[s]}={confs[s]}" for s in (*SERVERS, "proxy")),
        ],
    ]
    server = S3Server(f"http://127.0.0.1:{ports['proxy']}", f"{account}:{user}", secret)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, devices, ignore_errors=True)
        processes = []
        for command in commands:
            name = "swift" if command[0] == SYSTEM_PYTHON else command[0]
            log = stack.enter_context((folder / f"{name}.log").open("wb"))
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            stack.callback(_stop, process)
            processes.append(process)
        _wait_ready(server, folder, processes)
        yield server


def _wait_ready(server: S3Server, folder: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    """Until every server takes connections and the proxy answers its health check (cheap
    polls: an S3 client would back off for seconds), or fail with the logs."""
    deadline = time.monotonic() + STARTUP_SECONDS
    health = f"{server.endpoint}/healthcheck"
    pending = [_port_of(folder, s) for s in (*SERVERS, "proxy")]
    while True:
        ended = [str(p.args[0]) for p in processes if p.poll() is not None]
        pending = [port for port in pending if not _listening(port)]
        if not pending and not ended:
            try:
                with urllib.request.urlopen(health, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
        if ended or time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                for p in sorted(folder.glob("*.log"))
            )
            why = f"{', '.join(ended)} ended" if ended else "no answer in time"
            raise RuntimeError(f"Swift's S3 API did not come up: {why}\n{logs}")
        time.sleep(0.1)


def _port_of(folder: Path, name: str) -> int:
    for line in (folder / f"{name}.conf").read_text().splitlines():
        if line.startswith("bind_port"):
            return int(line.split("=")[1])
    raise AssertionError(f"no bind_port in {name}.conf")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
