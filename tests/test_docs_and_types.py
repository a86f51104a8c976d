"""The documentation site builds with ``mkdocs build --strict`` (a page per action, from the registry), and
the public engine API type-checks with mypy (configured in ``pyproject.toml``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_docs_site_builds_strictly_with_a_page_per_action(tmp_path):
    from damselfly.engine import BUILTIN

    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "build_site.py"), str(tmp_path / "site")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    site = tmp_path / "site"
    for spec in BUILTIN.all():
        page = (site / "actions" / spec.name / "index.html").read_text(encoding="utf-8")
        assert spec.name in page and spec.summary.split(" ")[0] in page
    thickness = (site / "api" / "local-thickness" / "index.html").read_text(encoding="utf-8")
    assert "the diameter of the largest ball inside the phase" in thickness  # the docstring, by mkdocstrings
    for page in ("language", "reliability", "plugins", "architecture", "design", "changelog"):
        assert (site / page / "index.html").exists(), page


def test_a_link_to_a_repository_file_that_is_no_page_becomes_code_text():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from build_site import link_text
    finally:
        sys.path.pop(0)
    md = "See [the tests](tests/engine/test_io.py), [design](docs/design.md#layers) and [web](https://x.org)."
    assert link_text(md, "README.md") == ("See the tests (`tests/engine/test_io.py`), [design](design.md#layers) "
                                          "and [web](https://x.org).")


@pytest.mark.slow
def test_the_public_engine_api_type_checks(tmp_path):
    pkg = tmp_path / "damselfly"  # the installed names (damselfly.engine...) over this checkout's folders
    pkg.mkdir()
    for name in ("engine", "macros"):
        (pkg / name).symlink_to(ROOT / name)
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                        "--cache-dir", str(ROOT / ".mypy_cache")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout
