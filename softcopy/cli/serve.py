"""`softcopy serve`: one Jupyter server process with the ingestion API and the Voilà dashboard.

The server always asks for its token (`allow_unauthenticated_access` off), culls idle
kernels, gives every kernel the home through SOFTCOPY_HOME, and stops on the first Ctrl-C
(no y/n prompt) after shutting its kernels down.

The dashboard is `dashboards/ingestion.ipynb` under the server's root folder. The root is
`--root-dir` if given, else the first that has the dashboard of: the project folder (a
checkout or an editable install), `<prefix>/share/softcopy` (a wheel's shared data), the
current folder; else the home, and the dashboard link is left out.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import softcopy
from softcopy.cli.common import Home
from softcopy.config import load_settings
from softcopy.errors import UserError

DASHBOARD = "dashboards/ingestion.ipynb"
EXTENSIONS = {"voila.server_extension": True, "softcopy.ingestion.api": True}
CULL_INTERVAL_SECONDS = 60


def dashboard_root(explicit: Path | None) -> Path | None:
    """The folder the server serves, holding `dashboards/ingestion.ipynb`; None if none does."""
    if explicit is not None:
        if not (explicit / DASHBOARD).is_file():
            raise UserError(f"{explicit}: no {DASHBOARD} in this folder")
        return explicit.resolve()
    candidates = [
        Path(softcopy.__file__).resolve().parent.parent,
        Path(sys.prefix) / "share" / "softcopy",
        Path.cwd(),
    ]
    return next((c.resolve() for c in candidates if (c / DASHBOARD).is_file()), None)


def server_argv(
    *, home: Path, root: Path, ip: str, port: int, token: str, cull_seconds: int, allow_root: bool
) -> list[str]:
    """Command-line config for ServerApp: it wins over any jupyter config file."""
    options: dict[str, Any] = {
        "ServerApp.ip": ip,
        "ServerApp.port": port,
        "ServerApp.port_retries": 0,  # the URL we print must be the one that answers
        "ServerApp.open_browser": False,
        "ServerApp.root_dir": root,
        "ServerApp.allow_unauthenticated_access": False,
        "ServerApp.allow_root": allow_root,
        "IdentityProvider.token": token,
        "MappingKernelManager.cull_idle_timeout": cull_seconds,
        "MappingKernelManager.cull_interval": CULL_INTERVAL_SECONDS,
        "SoftcopyAPI.home": home,
    }
    return [f"--{key}={value}" for key, value in options.items()]


def serve(
    home: Home = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 8866,
    ip: Annotated[str, typer.Option("--ip", help="Address to listen on.")] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="SOFTCOPY_TOKEN", help="Access token (default: random)."),
    ] = None,
    root_dir: Annotated[
        Path | None, typer.Option("--root-dir", help=f"Serve this folder (has {DASHBOARD}).")
    ] = None,
    cull_idle_seconds: Annotated[
        int, typer.Option("--cull-idle-seconds", min=0, help="Stop kernels idle this long.")
    ] = 600,
    allow_root: Annotated[
        bool, typer.Option("--allow-root", help="Let the server run as root (containers).")
    ] = False,
) -> None:
    """Start the Jupyter server with the ingestion API and the Voilà dashboard; Ctrl-C stops it."""
    from jupyter_server.serverapp import ServerApp
    from traitlets.config import Config

    settings = load_settings(home)
    root = dashboard_root(root_dir)
    token = token or secrets.token_urlsafe(24)
    os.environ["SOFTCOPY_HOME"] = str(settings.home)  # kernels (the dashboard's) inherit it
    app = ServerApp.instance(config=Config({"ServerApp": {"jpserver_extensions": EXTENSIONS}}))
    app.initialize(
        argv=server_argv(
            home=settings.home,
            root=root or settings.home,
            ip=ip,
            port=port,
            token=token,
            cull_seconds=cull_idle_seconds,
            allow_root=allow_root,
        ),
        find_extensions=False,  # only Voilà and the API: no Lab, LSP or terminals to start
    )
    _stop_on_first_interrupt(app)
    app.io_loop.add_callback(_print_urls, app, token, root is not None)  # runs once bound
    app.start()


def _print_urls(app: Any, token: str, has_dashboard: bool) -> None:
    base = app.connection_url.rstrip("/")
    if has_dashboard:
        print(f"dashboard: {base}/voila/render/{DASHBOARD}?token={token}")
    else:
        print(f"no {DASHBOARD} found: serving the API only (see --root-dir)")
    print(f"API:       {base}/api/ingestion/openapi.json?token={token}")
    print("Ctrl-C stops the server and its kernels.", flush=True)


def _stop_on_first_interrupt(app: Any) -> None:
    """Jupyter asks y/n on a terminal and skips kernel cleanup otherwise: stop cleanly on
    the first Ctrl-C instead; a second one aborts the cleanup."""

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        app.log.info("interrupted: stopping kernels and the server")
        app.stop(from_signal=True)

    signal.signal(signal.SIGINT, stop)
