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


def _top(name: str) -> str:
    """The layer or distribution a module belongs to: ``damselfly.macros.cli`` -> ``macros``."""
    parts = name.split(".")
    return parts[1] if parts[0] == "damselfly" and len(parts) > 1 else parts[0]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {_top(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(_top(node.module) if node.module != "damselfly" else node.names[0].name)
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
    f.write_text("import os\nfrom damselfly.macros.parser import parse\ndef f():\n    import PySide6.QtCore\n")
    assert imported_modules(f) & FORBIDDEN["engine"] == {"macros", "PySide6"}


def test_runtime_import_of_engine_and_actions_loads_no_upper_layer():
    code = ("import sys; from damselfly import engine; engine.all_actions(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'lark') "
            "or m.startswith(('damselfly.macros', 'damselfly.app'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_packaging_installs_under_one_namespace_and_keeps_qt_in_the_app_extra():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert all(p.startswith("damselfly.") for p in meta["tool"]["setuptools"]["packages"])
    core = " ".join(meta["project"]["dependencies"])
    assert "PySide6" not in core and "pyvistaqt" not in core
    assert any("PySide6" in d for d in meta["project"]["optional-dependencies"]["app"])


def test_a_headless_macro_runs_where_qt_cannot_be_imported(tmp_path):
    """What `pip install damselfly` without the app extra gives: no PySide6, no pyvistaqt."""
    block = ("import sys, importlib.abc\n"
             "class Block(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('PySide6', 'pyvistaqt', 'shiboken6'):\n"
             "            raise ImportError(f'{name} is not installed')\n"
             "sys.meta_path.insert(0, Block())\n"
             "from damselfly.macros.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")
    (tmp_path / "run.py").write_text(block)
    m = tmp_path / "m.dfm"
    m.write_text('version 1\nraw = load("s.npy")\ncal = calibrate(raw)\nsave(cal, "cal.tif")\n')
    import numpy as np

    np.save(tmp_path / "s.npy", np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8))
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), "run", str(m), "--out", str(tmp_path / "o")],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "o" / "cal.tif").exists()
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), "app"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1 and "the desktop app cannot start" in r.stderr and "damselfly[app]" in r.stderr


# ------------------------------------------------------------------------------------------------
# inside the engine: tiers, and no import circle anywhere
# ------------------------------------------------------------------------------------------------
#: The engine's tiers, bottom up, as packages (a top-level module is a package of its own); a module
#: imports only from its own tier or below, and the packages' import graph has no circle.
ENGINE_TIERS = [
    {"core"},                                  # the data model and plumbing (device handling included)
    {"io"},                                    # file formats
    {"segmentation", "thickness", "objects"},  # the analysis libraries
    {"restoration", "render"},                 # what builds on them: enhancement (networks), 3-D pictures
    {"report"},                                # pages and plots of results
    {"_argtypes", "registry"},                 # what an action is
    {"actions"},                               # the actions
    {"plugins"},                               # actions from other packages (entry points)
    {"builtin"},                               # the registry of built-in actions and plugins
    {"session"},                               # runs actions, emits events
    {"__init__"},                              # the engine's face
]


def package_of(module: str) -> str:
    """The tier unit of an engine module: ``segmentation._training`` -> ``segmentation``."""
    return module.split(".")[0]


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports (relative or ``damselfly.<package>``), at any depth
    (imports inside functions count)."""
    root = ROOT / package
    names = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root).with_suffix("").parts)
        names[".".join(parts[:-1] or ["__init__"]) if parts[-1] == "__init__" else ".".join(parts)] = f
    graph = {}
    for name, f in names.items():
        here = name.split(".") if f.name == "__init__.py" and name != "__init__" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                targets = [".".join(base + [node.module])] if node.module else [".".join(base + [a.name])
                                                                                for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"damselfly.{package}"):
                mod = node.module.removeprefix(f"damselfly.{package}").lstrip(".")
                targets = [mod] if mod else [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in names}
        graph[name] = deps - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, or ``None``."""
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d, path + [d])
                if found:
                    return found
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n, [n])
            if found:
                return found
    return None


@pytest.mark.parametrize("package", ["engine", "macros", "app"])
def test_no_import_circle(package):
    found = cycle(import_graph(package))
    assert found is None, " -> ".join(found or [])


def test_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_engine_imports_only_its_own_tier_or_below():
    tier = {p: i for i, ps in enumerate(ENGINE_TIERS) for p in ps}
    graph = import_graph("engine")
    packages = {package_of(m) for m in graph}
    assert packages <= set(tier), f"packages without a tier: {sorted(packages - set(tier))}"
    up = [f"{m} (tier {tier[package_of(m)]}) imports {d} (tier {tier[package_of(d)]})" for m, ds in graph.items()
          for d in ds if tier[package_of(d)] > tier[package_of(m)]]
    assert not up, "\n".join(up)


def test_engine_packages_import_no_circle():
    graph: dict[str, set[str]] = {}
    for m, ds in import_graph("engine").items():
        graph.setdefault(package_of(m), set()).update(package_of(d) for d in ds if package_of(d) != package_of(m))
    found = cycle(graph)
    assert found is None, " -> ".join(found or [])


def test_engine_is_split_into_domain_packages():
    """The engine's top level holds its face, the registry, the session and the subpackages, no library."""
    top = sorted(f.stem for f in (ROOT / "engine").glob("*.py"))
    assert top == ["__init__", "_argtypes", "builtin", "plugins", "registry", "session"], top
    for pkg in ("core", "io", "segmentation", "restoration", "thickness", "objects", "render", "report"):
        face = (ROOT / "engine" / pkg / "__init__.py").read_text(encoding="utf-8")
        assert face.startswith('"""') and len(face.splitlines()) < 40, pkg


@pytest.mark.parametrize("pkg", ["core", "io", "segmentation", "restoration", "thickness", "objects", "render",
                                 "report"])
def test_every_name_a_face_lists_resolves(pkg):
    import importlib

    face = importlib.import_module(f"damselfly.engine.{pkg}")
    missing = [n for n in face.__all__ if getattr(face, n, None) is None]
    assert not missing, f"damselfly.engine.{pkg} lists {missing} but has no such name"
    assert set(face.__all__) <= set(dir(face))
