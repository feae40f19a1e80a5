"""The notebooks softcopy executes itself, shipped inside the package so that a wheel carries
them: `steps/<stage>.ipynb`, one per `softcopy.memory.stages.Stage` (the one stage list),
for the notebook executors. They are resolved through importlib.resources, never from a
checkout's path.

`softcopy.notebooks.step` holds what those notebooks call inside their kernel.
"""

from __future__ import annotations

# the notebook executors find the notebooks (as data); re-exported for readers of this package
from softcopy.ingestion.notebook_executors import step_notebook as step_notebook
