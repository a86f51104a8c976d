"""What made a result: the software versions written into run records, model files and movie sidecars.

Examples
--------
>>> v = versions("numpy")
>>> sorted(k for k in v if k in ("python", "damselfly", "numpy"))
['damselfly', 'numpy', 'python']
"""

from __future__ import annotations

import importlib
import platform
import sys


def _installed_version() -> str:
    """Damselfly's version as installed (``pyproject.toml`` is its one source); a checkout that was never
    installed says so rather than a number that may be stale."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("damselfly")
    except PackageNotFoundError:
        return "0+unknown (not installed)"


__version__ = _installed_version()

#: The packages whose actions were registered as plugins (package -> version; filled by
#: :mod:`damselfly.engine.plugins`), listed in every record of versions.
PLUGIN_VERSIONS: dict[str, str] = {}

#: The libraries a run record lists when they are loaded.
LIBRARIES = ("numpy", "scipy", "skimage", "tifffile", "lark", "torch", "nrrd", "nibabel", "vtk", "pyvista")


def versions(*modules: str) -> dict[str, str]:
    """Python, Damselfly and the platform, plus the version of each of ``modules`` (imported if needed);
    with no ``modules``, of the :data:`LIBRARIES` already loaded."""
    out = {"python": platform.python_version(), "damselfly": __version__, "platform": platform.platform()}
    names = modules or tuple(m for m in LIBRARIES if m in sys.modules)
    for name in names:
        mod = sys.modules.get(name) or importlib.import_module(name)
        out[name] = str(getattr(mod, "__version__", "?"))
    out.update({f"plugin {pkg}": v for pkg, v in sorted(PLUGIN_VERSIONS.items())})
    return out
