"""`softcopy serve`: one Jupyter server process with the ingestion API and the Voilà dashboard.

The server always asks for its token (`allow_unauthenticated_access` off), gives every
kernel the home through SOFTCOPY_HOME, and stops on the first Ctrl-C (no y/n prompt) after
shutting its kernels down.

The web face is not a way in:
- the server's root folder is the folder of dashboards itself, so Voilà renders (and the
  contents API reads) the dashboards and nothing else: not the tour notebook, not the
  checkout around it;
- that folder is read-only through the server (CONTENTS_MANAGER): the contents API's PUT,
  POST, PATCH, DELETE, checkpoints and trust answer 403, so nothing written through the
  server becomes a page the next render runs;
- its cookies (login, XSRF) are SameSite=Strict, so a cross-site page cannot ride them;
- rendering a dashboard writes nothing (its cells only construct widgets), and the kernel
  of a render nobody is connected to (a fetch, a closed tab) is culled after
  `--cull-idle-seconds`, checked every CULL_INTERVAL_SECONDS, even while its pollers redraw
  a running job (KERNEL_MANAGER: Jupyter's culler counts each redraw as activity). A
  connected, idle tab keeps its kernel (`cull_connected` off).

Once listening it prints a short banner whose last line is the dashboard URL (Jupyter's own
startup log is quiet unless `--log-level INFO`), and the server root `/` redirects to the
dashboard, keeping the query (the token).

The dashboards folder is `--root-dir/dashboards` (or `--root-dir` itself when it holds the
dashboard), else the first that has one of: the project folder (a checkout or an editable
install), `<prefix>/share/softcopy` (a wheel's shared data), the current folder; else an
empty folder in the home, and the dashboard link is left out.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

import softcopy
from softcopy import limits
from softcopy.cli.common import Home, bounded
from softcopy.config import load_settings
from softcopy.errors import UserError

DASHBOARDS = "dashboards"
DASHBOARD = "ingestion.ipynb"  # in the dashboards folder, the server's root
DASHBOARD_PATH = f"/voila/render/{DASHBOARD}"  # where `/` redirects
EXTENSIONS = {"voila.server_extension": True, "softcopy.api": True}
CULL_IDLE_SECONDS = 60
CULL_INTERVAL_SECONDS = 30
SAME_SITE = {"samesite": "Strict"}
KERNEL_MANAGER = "softcopy.cli.serve_kernels.DashboardKernelManager"
CONTENTS_MANAGER = "softcopy.cli.serve_contents.ReadOnlyContentsManager"


class JupyterLog(StrEnum):
    """How much of Jupyter's own log `serve` shows."""

    DEBUG = "DEBUG"
    INFO = "INFO"  # its startup and every request
    WARN = "WARN"
    ERROR = "ERROR"


def dashboard_root(explicit: Path | None) -> Path | None:
    """The folder the server serves: the one holding the dashboards (and nothing else the
    project has); None if no dashboard is found."""
    if explicit is not None:
        for folder in (explicit / DASHBOARDS, explicit):
            if (folder / DASHBOARD).is_file():
                return folder.resolve()
        raise UserError(f"{explicit}: no {DASHBOARDS}/{DASHBOARD} in this folder")
    candidates = [
        Path(softcopy.__file__).resolve().parent.parent,
        Path(sys.prefix) / "share" / "softcopy",
        Path.cwd(),
    ]
    found = (c / DASHBOARDS for c in candidates if (c / DASHBOARDS / DASHBOARD).is_file())
    return next((folder.resolve() for folder in found), None)


def cull_interval(cull_seconds: int) -> int:
    """How often to look for idle kernels: every CULL_INTERVAL_SECONDS, or twice per idle
    timeout when that is shorter."""
    return max(1, min(CULL_INTERVAL_SECONDS, cull_seconds // 2))


def server_argv(
    *,
    home: Path,
    root: Path,
    ip: str,
    port: int,
    token: str,
    cull_seconds: int,
    allow_root: bool,
    log_level: str = "WARN",
) -> list[str]:
    """Command-line config for ServerApp: it wins over any jupyter config file. The root URL
    redirects to the dashboard when the root holds one (Jupyter keeps the query string)."""
    options: dict[str, Any] = {
        "ServerApp.ip": ip,
        "ServerApp.port": port,
        "ServerApp.port_retries": 0,  # the URL we print must be the one that answers
        "ServerApp.open_browser": False,
        "ServerApp.root_dir": root,
        "ServerApp.allow_unauthenticated_access": False,
        "ServerApp.allow_root": allow_root,
        "ServerApp.log_level": log_level,
        "IdentityProvider.token": token,
        "IdentityProvider.cookie_options": SAME_SITE,  # the login cookie
        "ServerApp.tornado_settings": {"xsrf_cookie_kwargs": {"path": "/", **SAME_SITE}},
        "ServerApp.kernel_manager_class": KERNEL_MANAGER,  # also culls kernels left alone
        "ServerApp.contents_manager_class": CONTENTS_MANAGER,  # refuses every write
        "MappingKernelManager.cull_idle_timeout": cull_seconds,
        "MappingKernelManager.cull_interval": cull_interval(cull_seconds),
        "MappingKernelManager.cull_connected": False,  # an open tab keeps its kernel
        "MappingKernelManager.cull_busy": False,
        "SoftcopyAPI.home": home,
    }
    if (root / DASHBOARD).is_file():
        options["ServerApp.default_url"] = DASHBOARD_PATH
    return [arg for key, value in options.items() for arg in _argv(key, value)]


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _argv(key: str, value: Any) -> list[str]:
    """One option; a flat dict as key=value items, as traitlets 5 wants for Dict traits."""
    flat = isinstance(value, dict) and not any(isinstance(v, dict) for v in value.values())
    if flat:
        return [f"--{key}={k}={v}" for k, v in value.items()]
    return [f"--{key}={_text(value)}"]


def serve(
    home: Home = None,
    port: Annotated[
        int, typer.Option("--port", callback=bounded(limits.PORT), help="Port to listen on.")
    ] = 8866,
    ip: Annotated[str, typer.Option("--ip", help="Address to listen on.")] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="SOFTCOPY_TOKEN", help="Access token (default: random)."),
    ] = None,
    root_dir: Annotated[
        Path | None,
        typer.Option("--root-dir", help=f"Serve the dashboards of this folder ({DASHBOARDS}/)."),
    ] = None,
    cull_idle_seconds: Annotated[
        int,
        typer.Option(
            "--cull-idle-seconds",
            callback=bounded(limits.CULL_IDLE_SECONDS),
            help="Stop kernels idle this long (0: never).",
        ),
    ] = CULL_IDLE_SECONDS,
    allow_root: Annotated[
        bool, typer.Option("--allow-root", help="Let the server run as root (containers).")
    ] = False,
    log_level: Annotated[
        JupyterLog,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="Jupyter's own log (INFO shows its startup and every request).",
        ),
    ] = JupyterLog.WARN,
) -> None:
    """Start the Jupyter server with the ingestion API and the Voilà dashboard; Ctrl-C stops it."""
    from jupyter_server.serverapp import ServerApp
    from traitlets.config import Config

    settings = load_settings(home)
    root = dashboard_root(root_dir)
    if root is None:  # serve an empty folder: nothing of the home is a page
        root = settings.home / "serve"
        root.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_urlsafe(24)
    os.environ["SOFTCOPY_HOME"] = str(settings.home)  # kernels (the dashboard's) inherit it
    app = ServerApp.instance(config=Config({"ServerApp": {"jpserver_extensions": EXTENSIONS}}))
    app.initialize(
        argv=server_argv(
            home=settings.home,
            root=root,
            ip=ip,
            port=port,
            token=token,
            cull_seconds=cull_idle_seconds,
            allow_root=allow_root,
            log_level=log_level.value,
        ),
        find_extensions=False,  # only Voilà and the API: no Lab, LSP or terminals to start
    )
    _stop_on_first_interrupt(app)
    has_dashboard = (root / DASHBOARD).is_file()
    lines = banner(
        base=app.connection_url,
        token=token,
        home=settings.home,
        sources=len(settings.sources),
        has_dashboard=has_dashboard,
    )
    app.io_loop.add_callback(_print_banner, lines)  # runs once bound, after Jupyter's log
    app.start()


def banner(*, base: str, token: str, home: Path, sources: int, has_dashboard: bool) -> list[str]:
    """What `serve` prints once listening: a few lines, the dashboard URL last (where the eye
    lands, and what a script reads)."""
    base = base.rstrip("/")
    sources_text = f"{sources} source" + ("" if sources == 1 else "s")
    lines = [
        f"softcopy {softcopy.__version__} serving home {home} ({sources_text})",
        f"API:       {base}/api/ingestion/openapi.json?token={token}",
        "Ctrl-C stops the server and its kernels.",
    ]
    if has_dashboard:
        lines.append(f"dashboard: {base}{DASHBOARD_PATH}?token={token}")
    else:
        lines.append(f"no {DASHBOARDS}/{DASHBOARD} found: serving the API only (see --root-dir)")
    return lines


def _print_banner(lines: list[str]) -> None:
    sys.stderr.flush()  # Jupyter's log (stderr) before the banner, not interleaved
    print("\n".join(lines), flush=True)


def _stop_on_first_interrupt(app: Any) -> None:
    """Jupyter asks y/n on a terminal and skips kernel cleanup otherwise: stop cleanly on
    the first Ctrl-C instead; a second one aborts the cleanup."""

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        app.log.info("interrupted: stopping kernels and the server")
        app.stop(from_signal=True)

    signal.signal(signal.SIGINT, stop)
