"""What the `papermill.engine` entry point `softcopy` names: a stand-in that imports
`warm_kernel` only when papermill first uses the engine.

papermill loads every `papermill.engine` entry point while `papermill` itself is being
imported, and `warm_kernel` imports papermill: naming `warm_kernel.SoftcopyEngine` there
made `import softcopy.ingestion.warm_kernel` (papermill not yet imported) load the module
it was in the middle of importing, and fail. Once `warm_kernel` is imported it registers
the real engine under the same name, replacing this stand-in."""

from __future__ import annotations

from typing import Any


class SoftcopyEngine:
    """papermill engine `softcopy`: `warm_kernel.SoftcopyEngine`, imported on first use."""

    @staticmethod
    def _engine() -> Any:
        from softcopy.ingestion.warm_kernel import SoftcopyEngine as engine

        return engine

    @classmethod
    def execute_notebook(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._engine().execute_notebook(*args, **kwargs)

    @classmethod
    def nb_kernel_name(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._engine().nb_kernel_name(*args, **kwargs)

    @classmethod
    def nb_language(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._engine().nb_language(*args, **kwargs)
