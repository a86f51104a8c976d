"""`import damselfly`, `damselfly check`, `fmt` and `actions` load no PyTorch, numba, VTK or Qt (issue
35): a cluster worker or a check in an editor starts in a fraction of the time."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numba", "vtk", "pyvista", "PySide6")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split("\n")[-2].split() if r.stdout.strip() else []


def test_the_engine_and_the_light_commands_load_nothing_heavy():
    example = ROOT / "examples" / "casting_porosity.dfm"
    assert loaded_after("import damselfly.engine, damselfly.macros") == []
    assert loaded_after("from damselfly.macros.cli import main\n"
                        f"main(['check', {str(example)!r}]); main(['fmt', '--check', {str(example)!r}]); "
                        "main(['actions'])") == []


def test_the_deep_learning_library_loads_when_an_action_needs_it():
    assert "torch" in loaded_after("from damselfly.engine.actions import segmentation\nsegmentation.inference.Predictor")


def test_a_worker_process_and_a_cluster_client_start_without_the_heavy_libraries():
    """What a --jobs worker or a Dask worker imports to start: the runner, the batch and cluster code."""
    assert loaded_after("import damselfly.macros.workers, damselfly.macros.cluster, damselfly.macros.batch, "
                        "damselfly.macros.runner") == []
