"""The contents manager `softcopy serve` runs: Jupyter's, reading the dashboards folder only.

Jupyter's default contents manager lets whoever holds the token write through
`/api/contents`: PUT a notebook, POST a new or copied one, PATCH (rename), DELETE, and
create or restore checkpoints. In an editable install the served folder is the checkout's
`dashboards/`, and Voilà renders whatever is written there, so a write would be code the
next render runs. Here every change is refused with a 403 before anything touches the
disk; reading (what Voilà and the `/api/contents` GETs do) is Jupyter's own.
"""

from __future__ import annotations

from typing import Any, NoReturn

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError


def _refuse(what: str, path: str) -> NoReturn:
    raise HTTPError(403, f"softcopy serve: the dashboards are read-only ({what} {path!r})")


class ReadOnlyContentsManager(AsyncLargeFileManager):
    """Jupyter's contents manager (its default, AsyncLargeFileManager) with every write
    refused: save (what an upload does), new and new_untitled, copy (a folder's copy is a
    copytree that does not go through save), delete, rename, trust (it signs into the
    notary's database) and the checkpoints that write files."""

    async def new_untitled(self, path: str = "", type: str = "", ext: str = "") -> NoReturn:
        _refuse("create", path)

    async def new(self, model: dict[str, Any] | None = None, path: str = "") -> NoReturn:
        _refuse("create", path)

    async def copy(self, from_path: str, to_path: str | None = None) -> NoReturn:
        _refuse("copy", from_path)

    async def save(self, model: dict[str, Any], path: str = "") -> NoReturn:
        _refuse("save", path)

    async def delete_file(self, path: str) -> NoReturn:
        _refuse("delete", path)

    async def rename_file(self, old_path: str, new_path: str) -> NoReturn:
        _refuse("rename", old_path)

    async def trust_notebook(self, path: str) -> NoReturn:
        _refuse("trust", path)

    async def create_checkpoint(self, path: str) -> NoReturn:
        _refuse("checkpoint", path)

    async def restore_checkpoint(self, checkpoint_id: str, path: str) -> NoReturn:
        _refuse("restore", path)

    async def delete_checkpoint(self, checkpoint_id: str, path: str) -> NoReturn:
        _refuse("delete checkpoint", path)
