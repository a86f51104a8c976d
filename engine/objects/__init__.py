"""Objects: connected components of a class, their measurements, and splitting touching ones.

- ``_components``: labelling (in memory and slab by slab) and measuring.
- ``_separate``: separating touching objects (distance map, markers, watershed), group by group.
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports

__all__ = ["label", "measure", "object_count", "separate"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "label": "._components",
    "measure": "._components",
    "object_count": "._components",
    "separate": "._separate",
})

if TYPE_CHECKING:
    from ._components import label, measure, object_count
    from ._separate import separate
