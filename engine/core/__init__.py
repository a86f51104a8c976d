"""The data model and the plumbing every other part of the engine stands on.

- :mod:`.data`: :class:`Volume`, :class:`Labels` (the multi-ROI), :class:`Table`.
- :mod:`.errors`: the errors users see; :mod:`.progress`: progress and Stop; :mod:`.context`: what an
  action may know of its run; :mod:`.volume_ops`: streaming, scratch files and outputs like an input;
  :mod:`.phantoms`: synthetic scans with exact ground truth.
- Private: ``_atomic`` (outputs written whole or not at all), ``_blocks`` (where block-wise work runs),
  ``_paths`` (where a run may write), ``_provenance`` (versions), ``_lazy`` (modules loaded on first use),
  ``_device`` (the compute device).
"""

from . import errors, progress
from .context import RunContext
from .data import LabelClass, Labels, Table, Volume, make_classes
from .errors import Cancelled, DamselflyError, InputError, ParameterError, ResourceError

__all__ = ["Cancelled", "DamselflyError", "InputError", "LabelClass", "Labels", "ParameterError", "ResourceError",
           "RunContext", "Table", "Volume", "errors", "make_classes", "progress"]
