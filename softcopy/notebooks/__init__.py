"""The notebooks softcopy executes itself, shipped inside the package so that a wheel carries
them: `steps/<stage>.ipynb`, one per stage, for the notebook engines. They are resolved
through importlib.resources, never from a checkout's path.

`softcopy.notebooks.step` holds what those notebooks call inside their kernel.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from softcopy.errors import UserError

STAGES = ("export", "embed", "publish")


def step_notebook(stage: str) -> Traversable:
    """The step notebook of a stage (use `importlib.resources.as_file` for a real path)."""
    if stage not in STAGES:
        raise UserError(f"no step notebook for stage {stage!r}; stages: {', '.join(STAGES)}")
    return files(__name__).joinpath("steps", f"{stage}.ipynb")
