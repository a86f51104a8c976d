"""The version has one source, pyproject.toml; what the run records write is that one."""

import re
from pathlib import Path

from damselfly.engine import __version__
from damselfly.engine.core._provenance import versions


def test_the_version_comes_from_pyproject():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', text, re.M).group(1)
    assert __version__ == declared == versions()["damselfly"]
    assert not re.search(r'__version__ = "\d', (Path(__file__).resolve().parents[1] / "engine" / "core" / "_provenance.py").read_text())
