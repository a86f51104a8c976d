"""DESIGN.md: imports point downward only. engine never imports macros/app/Qt; macros never imports app."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "engine": {"macros", "app", "PySide6", "PyQt5", "PyQt6", "pyvistaqt", "qtpy", "lark"},
    "macros": {"app", "PySide6", "PyQt5", "PyQt6", "pyvistaqt", "qtpy"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_static_imports_point_downward(package):
    bad = []
    for f in sorted((ROOT / package).rglob("*.py")):
        hits = imported_modules(f) & FORBIDDEN[package]
        if hits:
            bad.append(f"{f.relative_to(ROOT)} imports {sorted(hits)}")
    assert not bad, "\n".join(bad)


def test_checker_catches_a_violation(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom macros.parser import parse\ndef f():\n    import PySide6.QtCore\n")
    assert imported_modules(f) & FORBIDDEN["engine"] == {"macros", "PySide6"}


def test_runtime_import_of_engine_and_actions_loads_no_upper_layer():
    code = ("import sys, engine; engine.all_actions(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('macros', 'app', 'PySide6', 'lark')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
