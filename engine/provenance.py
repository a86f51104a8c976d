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

__version__ = "0.1.0"

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
    return out
