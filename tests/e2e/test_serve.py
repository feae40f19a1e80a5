"""`softcopy serve` as a user runs it: a real server process, its token, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from softcopy.cli.serve import DASHBOARD, dashboard_root
from softcopy.errors import UserError

TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


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
def server(demo_home: Path, tmp_path: Path):
    """`softcopy serve` on a free port, with its own Jupyter runtime and config folders."""
    port = free_port()
    argv = [sys.executable, "-m", "softcopy", "serve", "--home", str(demo_home)]
    argv += ["--port", str(port), "--token", TOKEN]
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


def test_serve_answers_with_the_token_only_and_stops_on_ctrl_c(server) -> None:
    process, base = server
    wait_until_up(process, f"{base}/api/ingestion/jobs")
    code, body = get(f"{base}/api/ingestion/jobs", TOKEN)
    assert code == 200 and json.loads(body) == {"jobs": [], "limit": 20, "offset": 0}
    assert get(f"{base}/api/ingestion/jobs")[0] == 403
    assert get(f"{base}/api/ingestion/jobs", "wrong")[0] == 403
    assert get(f"{base}/api/ingestion/openapi.json", TOKEN)[0] == 200

    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"token={TOKEN}" in out
    assert f"{base}/api/ingestion/openapi.json?token={TOKEN}" in out


def test_dashboard_root_is_a_folder_with_the_dashboard(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"no {DASHBOARD}"):
        dashboard_root(tmp_path)
    (tmp_path / DASHBOARD).parent.mkdir()
    (tmp_path / DASHBOARD).write_text("{}")
    assert dashboard_root(tmp_path) == tmp_path.resolve()
