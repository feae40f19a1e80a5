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
from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from tornado.websocket import websocket_connect

import softcopy
from softcopy.cli.serve import (
    CULL_IDLE_SECONDS,
    CULL_INTERVAL_SECONDS,
    DASHBOARD,
    DASHBOARDS,
    cull_interval,
    dashboard_root,
    server_argv,
)
from softcopy.errors import UserError
from softcopy.ingestion import service
from softcopy.ingestion.models import CoverageSnapshot, IngestionJob, IngestionPlan

TOKEN = "test-token-0123456789"


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
    ctx = service.open_context(home)
    with Session(ctx.engine) as session:
        return {
            table.__name__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (CoverageSnapshot, IngestionPlan, IngestionJob)
        }


@pytest.mark.parametrize("server", [["--cull-idle-seconds", "2"]], indirect=True)
def test_the_web_face_is_not_a_way_in(server, demo_home: Path) -> None:
    """Only the dashboards are served; cookies are SameSite=Strict; rendering writes nothing;
    a render nobody connects to loses its kernel after the idle timeout, while a render whose
    page holds its kernel's channels open (an open tab) keeps it (`cull_connected` off)."""
    process, base = server
    wait_until_up(process, f"{base}/api/ingestion/jobs")
    before = control_rows(demo_home)
    assert before == {"CoverageSnapshot": 0, "IngestionPlan": 0, "IngestionJob": 0}
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
    ):
        code, _, _ = fetch(f"{base}/{path}?token={TOKEN}")
        assert code == 404, path

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

    async def open_tab_and_abandoned_render() -> tuple[str, str, set[str]]:
        open_tab = render()
        url = f"ws://{base.removeprefix('http://')}/api/kernels/{open_tab}/channels"
        channels = await websocket_connect(f"{url}?token={TOKEN}")  # the tab's connection
        try:
            abandoned = render()
            deadline = time.monotonic() + 30
            while abandoned in kernels():
                assert time.monotonic() < deadline, "the abandoned render's kernel lives on"
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)  # longer than the idle timeout: the open tab's kernel stays
            return open_tab, abandoned, kernels()
        finally:
            channels.close()

    open_tab, abandoned, left = asyncio.run(open_tab_and_abandoned_render())
    assert left == {open_tab} and abandoned != open_tab
    # Every cookie the server set (login, XSRF) is SameSite=Strict; two renders wrote nothing.
    assert cookies and all("samesite=strict" in c.lower() for c in cookies), cookies
    assert control_rows(demo_home) == before


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
