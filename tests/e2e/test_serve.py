"""`softcopy serve` as a user runs it: a real server process, its token, and Ctrl-C; and
the web face is not a way in: only the dashboards are served, cookies are SameSite=Strict,
rendering writes nothing, and abandoned renders' kernels are culled."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.services.contents.manager import AsyncContentsManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import import_item
from sqlalchemy import func, inspect, select, table
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

import softcopy
from softcopy.cli.serve import (
    CONTENTS_MANAGER,
    CULL_IDLE_SECONDS,
    CULL_INTERVAL_SECONDS,
    DASHBOARD,
    DASHBOARDS,
    KERNEL_MANAGER,
    cull_interval,
    dashboard_root,
    server_argv,
)
from softcopy.errors import UserError
from softcopy.ingestion import service

TOKEN = "test-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes, list[str]]:
    """(status, body, Set-Cookie headers) of a GET, whatever the status."""
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read(), r.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get_all("Set-Cookie") or []


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    code, body, _ = fetch(url, token)
    return code, body


def wait_until_up(process: subprocess.Popen[str], url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"softcopy serve exited with {process.returncode}"
        try:
            if get(url, TOKEN)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"softcopy serve did not answer {url} in {timeout} s")


@pytest.fixture
def server(demo_home: Path, tmp_path: Path, request: pytest.FixtureRequest):
    """`softcopy serve` on a free port, with its own Jupyter runtime and config folders
    (and the extra arguments a test gives by parametrizing it indirectly)."""
    port = free_port()
    argv = [sys.executable, "-m", "softcopy", "serve", "--home", str(demo_home)]
    argv += ["--port", str(port), "--token", TOKEN]
    argv += getattr(request, "param", [])
    if os.geteuid() == 0:  # CI and containers run as root; Jupyter refuses that by default
        argv.append("--allow-root")
    env = os.environ | {
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def send(method: str, url: str, body: Any = None) -> int:
    """The status of a request with the token (in its header: no XSRF cookie needed) and a
    JSON body."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too: checkpoints) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def restore(folder: Path, files: dict[str, bytes]) -> None:
    """Put `folder` back as `files` (after a failing test wrote into the checkout)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        name = str(path.relative_to(folder))
        if path.is_file() and files.get(name) != path.read_bytes():
            path.unlink()
        elif path.is_dir() and not any(f.startswith(f"{name}/") for f in files):
            path.rmdir()
    for name, data in files.items():
        target = folder / name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def redirect_of(url: str) -> tuple[int, str | None]:
    """(status, Location) of a GET, not following a redirect."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request("GET", f"{parts.path or '/'}?{parts.query}" if parts.query else "/")
        response = connection.getresponse()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def test_serve_answers_with_the_token_only_and_stops_on_ctrl_c(server, demo_home: Path) -> None:
    """...and says where the dashboard is in a short banner, its URL last; the server root
    redirects to the dashboard, keeping the token."""
    process, base = server
    wait_until_up(process, f"{base}/api/ingestion/jobs")
    code, body = get(f"{base}/api/ingestion/jobs", TOKEN)
    assert code == 200 and json.loads(body) == {"jobs": [], "limit": 20, "offset": 0}
    assert get(f"{base}/api/ingestion/jobs")[0] == 403
    assert get(f"{base}/api/ingestion/jobs", "wrong")[0] == 403
    assert get(f"{base}/api/ingestion/openapi.json", TOKEN)[0] == 200
    assert redirect_of(f"{base}/?token={TOKEN}") == (
        302,
        f"/voila/render/{DASHBOARD}?token={TOKEN}",
    )
    code, location = redirect_of(f"{base}/")  # Jupyter appends the empty query's "?"
    assert (code, (location or "").rstrip("?")) == (302, f"/voila/render/{DASHBOARD}")

    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    lines = out.splitlines()  # stdout is the banner: Jupyter's log goes to stderr
    assert len(lines) == 4, out
    assert lines[0] == f"softcopy {softcopy.__version__} serving home {demo_home} (3 sources)"
    assert f"{base}/api/ingestion/openapi.json?token={TOKEN}" in lines[1]
    assert lines[-1] == f"dashboard: {base}/voila/render/{DASHBOARD}?token={TOKEN}"


def control_rows(home: Path) -> dict[str, int]:
    """The row count of every table of the home's database (ledger and control plane)."""
    ctx = service.open_context(home)
    with ctx.engine.connect() as connection:
        return {
            name: connection.scalar(select(func.count()).select_from(table(name))) or 0
            for name in inspect(connection).get_table_names()
        }


CHATTER = """
import threading, time, ipywidgets
counter = ipywidgets.IntText()
def chatter():  # what a dashboard's poller does while a job runs: redraw, every moment
    while True:
        counter.value += 1
        time.sleep(0.2)
threading.Thread(target=chatter, daemon=True).start()
"""


async def run_in_kernel(channels: Any, code: str) -> None:
    """Execute `code` through a kernel's channels (Jupyter's JSON websocket protocol) and
    wait until it ran and the kernel has sent three widget messages since."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "version": "5.3"}
    header |= {"session": uuid.uuid4().hex, "username": "test", "date": ""}
    content = {"code": code, "silent": False, "store_history": False}
    content |= {"user_expressions": {}, "allow_stdin": False}
    request = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    await channels.write_message(json.dumps({**request, "channel": "shell", "buffers": []}))
    replied, widget_messages = False, 0
    while not replied or widget_messages < 3:
        raw = await asyncio.wait_for(channels.read_message(), timeout=60)
        assert raw is not None, "the kernel's channels closed"
        if isinstance(raw, bytes):
            continue
        message = json.loads(raw)
        kind = message["header"]["msg_type"]
        if kind == "execute_reply" and message["parent_header"].get("msg_id") == msg_id:
            assert message["content"]["status"] == "ok", message["content"]
            replied = True
        elif kind == "comm_msg" and replied:
            widget_messages += 1


@pytest.mark.parametrize("server", [["--cull-idle-seconds", "2"]], indirect=True)
def test_the_web_face_is_not_a_way_in(server, demo_home: Path) -> None:
    """Only the dashboards are served, read-only; cookies are SameSite=Strict; rendering
    writes nothing; a render nobody connects to loses its kernel after the idle timeout,
    even one whose kernel keeps sending widget updates (a poller redrawing a running job),
    while a render whose page holds its kernel's channels open (an open tab) keeps it
    (`cull_connected` off)."""
    process, base = server
    wait_until_up(process, f"{base}/api/ingestion/jobs")
    before = control_rows(demo_home)
    assert before["coverage_snapshot"] == before["ingestion_plan"] == before["ingestion_job"] == 0
    # The tour notebook starts a forced backfill when run; nothing outside the dashboards
    # folder is a page, a file or a content, even with the token.
    for path in (
        "voila/render/notebooks/tour.ipynb",
        "voila/render/dashboards/ingestion.ipynb",
        "voila/render/../notebooks/tour.ipynb",
        "voila/render/%2E%2E/notebooks/tour.ipynb",
        "voila/tree/notebooks",
        "files/pyproject.toml",
        "files/notebooks/tour.ipynb",
        "api/contents/notebooks/tour.ipynb",
        "api/contents/pyproject.toml",
        "api/contents/%2E%2E%2Fnotebooks%2Ftour.ipynb",
        "nbconvert/html/notebooks/tour.ipynb",
        "view/notebooks/tour.ipynb",
        "voila/render/" + urllib.parse.quote(str(REPO / "notebooks" / "tour.ipynb"), safe=""),
    ):
        code, _, _ = fetch(f"{base}/{path}?token={TOKEN}")
        assert code == 404, path
    for path in ("voila/files/notebooks/tour.ipynb", "voila/files/%2E%2E/pyproject.toml"):
        code, _, _ = fetch(f"{base}/{path}?token={TOKEN}")
        assert code == 403, path  # Voilà's own refusal: not on its list of files to serve

    # The served folder is read-only, even with the token: nothing written through the
    # contents API becomes a page (or replaces the dashboard) that the next render runs.
    served = dashboard_root(None)
    assert served is not None
    files = snapshot(served)
    notebook = {"type": "notebook", "format": "json"}
    notebook["content"] = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    contents = f"{base}/api/contents"
    try:
        for method, path, body in (
            ("PUT", "evil.ipynb", notebook),  # a new notebook
            ("PUT", DASHBOARD, notebook),  # the dashboard replaced
            ("PUT", "evil.txt", {"type": "file", "format": "text", "content": "x"}),
            ("PUT", "evil", {"type": "directory"}),
            ("POST", "", {"type": "notebook"}),  # a new untitled notebook
            ("POST", "", {"type": "directory"}),
            ("POST", "", {"copy_from": DASHBOARD}),
            ("PATCH", DASHBOARD, {"path": "renamed.ipynb"}),
            ("DELETE", DASHBOARD, None),
            ("POST", f"{DASHBOARD}/checkpoints", None),
            ("POST", f"{DASHBOARD}/trust", None),
        ):
            assert send(method, f"{contents}/{path}", body) == 403, (method, path)
        assert snapshot(served) == files
    finally:
        restore(served, files)
    assert get(f"{contents}/{DASHBOARD}", TOKEN)[0] == 200  # reading is Jupyter's own

    def kernels() -> set[str]:
        code, body = get(f"{base}/api/kernels", TOKEN)
        assert code == 200
        return {k["id"] for k in json.loads(body)}

    cookies: list[str] = []

    def render() -> str:
        """Render the dashboard (its cells run); the id of the kernel the render started."""
        before = kernels()
        code, page, set_cookie = fetch(f"{base}/voila/render/{DASHBOARD}?token={TOKEN}", timeout=90)
        assert code == 200 and b"application/vnd.jupyter.widget-view+json" in page
        assert b"Dashboard(children=" in page and b"Traceback" not in page
        cookies.extend(set_cookie)
        (started,) = kernels() - before
        return started

    def channels_url(kernel: str) -> str:
        return f"ws://{base.removeprefix('http://')}/api/kernels/{kernel}/channels?token={TOKEN}"

    async def culled(kernel: str, what: str) -> None:
        deadline = time.monotonic() + 30
        while kernel in kernels():
            assert time.monotonic() < deadline, f"the {what} render's kernel lives on"
            await asyncio.sleep(0.5)

    async def open_tab() -> tuple[str, Any]:
        """A render and its tab's connection. Under load the connection may come later than
        the 2 s idle timeout, and the kernel is rightly culled first: render again."""
        for _ in range(4):
            kernel = render()
            try:
                return kernel, await websocket_connect(channels_url(kernel))
            except HTTPClientError as gone:
                assert gone.code == 404 and kernel not in kernels(), gone
        raise AssertionError("no render's kernel lived until its tab connected")

    async def open_tab_and_abandoned_renders() -> tuple[str, set[str]]:
        open_tab_kernel, channels = await open_tab()
        try:
            await culled(render(), "abandoned")
            # A tab that was closed while its kernel keeps redrawing: Jupyter's own culler
            # counts every widget message as activity and would keep it as long as that lasts.
            talking = render()
            closed_tab = await websocket_connect(channels_url(talking))
            await run_in_kernel(closed_tab, CHATTER)
            closed_tab.close()
            await culled(talking, "talking")
            await asyncio.sleep(3)  # longer than the idle timeout: the open tab's kernel stays
            return open_tab_kernel, kernels()
        finally:
            channels.close()

    kept, left = asyncio.run(open_tab_and_abandoned_renders())
    assert left == {kept}
    # Every cookie the server sets (the login cookie, XSRF) is SameSite=Strict.
    for page in ("login", f"voila/tree?token={TOKEN}"):
        cookies.extend(fetch(f"{base}/{page}")[2])
    names = {c.split("=", 1)[0] for c in cookies}
    assert "_xsrf" in names and any(n.startswith("username-") for n in names), names
    assert all("samesite=strict" in c.lower() for c in cookies), cookies
    assert control_rows(demo_home) == before  # three renders wrote nothing


def test_culling_settings() -> None:
    argv = server_argv(
        home=Path("/h"),
        root=Path("/r"),
        ip="127.0.0.1",
        port=1,
        token="t",
        cull_seconds=CULL_IDLE_SECONDS,
        allow_root=False,
    )
    assert f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_SECONDS}" in argv
    assert f"--MappingKernelManager.cull_interval={CULL_INTERVAL_SECONDS}" in argv
    assert "--MappingKernelManager.cull_connected=False" in argv
    assert f"--ServerApp.kernel_manager_class={KERNEL_MANAGER}" in argv
    assert issubclass(import_item(KERNEL_MANAGER), AsyncMappingKernelManager)
    assert f"--ServerApp.contents_manager_class={CONTENTS_MANAGER}" in argv
    assert issubclass(import_item(CONTENTS_MANAGER), AsyncContentsManager)
    assert CULL_IDLE_SECONDS <= 60 and CULL_INTERVAL_SECONDS <= 30
    assert cull_interval(2) == 1 and cull_interval(0) == 1


def test_dashboard_root_is_the_dashboards_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"no {DASHBOARDS}/{DASHBOARD}"):
        dashboard_root(tmp_path)
    (tmp_path / DASHBOARDS).mkdir()
    (tmp_path / DASHBOARDS / DASHBOARD).write_text("{}")
    assert dashboard_root(tmp_path) == (tmp_path / DASHBOARDS).resolve()
    assert dashboard_root(tmp_path / DASHBOARDS) == (tmp_path / DASHBOARDS).resolve()
    served = dashboard_root(None)  # this checkout: its dashboards folder, nothing around it
    assert served is not None and served.name == DASHBOARDS
    assert sorted(p.name for p in served.iterdir() if not p.name.startswith(".")) == [DASHBOARD]
