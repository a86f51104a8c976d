"""Damselfly's headless engine: data model, file I/O, the action registry and the actions.

No Qt and no macro language here: ``engine`` never imports ``macros`` or ``app``.
"""

from . import builtin as _builtin
from . import io
from .builtin import BUILTIN, all_actions, get_action
from .core import phantoms, progress
from .core._provenance import __version__
from .core.data import LabelClass, Labels, Table, Volume, make_classes
from .core.errors import Cancelled, DamselflyError, InputError, ParameterError, ResourceError
from .registry import InputPath, OutputPath, Registry, action
from .session import ActionEvent, Session, Settings

__all__ = [
    "BUILTIN", "ActionEvent", "Cancelled", "DamselflyError", "InputError", "InputPath", "LabelClass", "Labels",
    "OutputPath", "ParameterError", "Registry", "ResourceError", "Session", "Settings", "Table", "Volume",
    "__version__", "action",
    "all_actions", "get_action", "io", "local_thickness", "make_classes", "phantoms", "progress",
]

_builtin.load_installed_plugins()  # last: a plugin imports the names above from this module


def __getattr__(name):
    # ``engine.local_thickness`` loads numba (about half a second) only when it is used
    if name == "local_thickness":
        from .thickness._exact import local_thickness

        return local_thickness
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
