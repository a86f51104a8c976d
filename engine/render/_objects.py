"""Objects in 3-D: one surface for all objects, each vertex coloured by its object's id or a measurement.

:func:`object_values` turns a table column (``measure_objects``) into a value per object id, NaN for
objects the table does not list (so a filtered table shows only what it kept); :func:`object_surface`
builds the surface of the objects with a value and gives each vertex the value of the object it bounds.

Examples
--------
>>> from damselfly.engine import Labels, Table, make_classes
>>> ids = Labels(np.array([[[0, 1, 1, 0, 2]]], np.uint32), classes=make_classes(["object"]))
>>> values, title = object_values(ids, "volume", Table({"id": [2], "volume": [4.0]}))
>>> values.tolist(), title
([nan, nan, 4.0], 'volume (units unknown)')
"""

from __future__ import annotations

import numpy as np

from ..core.data import Labels, Table
from ..core.errors import ParameterError
from ..objects._components import measure, object_count

#: distinct colours of objects coloured by id (matplotlib's qualitative map of 20)
ID_COLOURS = "tab20"


def column_unit(column: str, unit: str) -> str:
    """The unit of a ``measure_objects`` column for a scan in ``unit`` ("" for counts and ratios).

    Examples
    --------
    >>> column_unit("volume", "mm"), column_unit("equivalent_diameter", "mm"), column_unit("sphericity", "mm")
    ('mm³', 'mm', '')
    """
    if column in ("volume",):
        return f"{unit}³"
    if column == "surface_area":
        return f"{unit}²"
    if column.startswith(("centroid_", "axis_", "equivalent_diameter", "mean_thickness", "max_thickness",
                          "local_thickness")):
        return unit
    return ""


def object_values(objects: Labels, color_by: str, table: Table | None = None) -> tuple[np.ndarray, str]:
    """A value per object id (index 0: none) and a colour bar's title: the id itself for ``"id"``, else
    the column ``color_by`` of ``table`` (measured here with ``measure_objects``'s columns when no table
    is given). Objects missing from the table get NaN: they are not drawn."""
    if not _is_objects(objects):
        raise ParameterError("color_by colours objects: give the objects of label_objects, separate_objects or "
                             "filter_objects as labels=...")
    n = object_count(objects)
    if color_by == "id":
        return np.arange(n + 1, dtype=float), ""
    if table is None:
        table = Table({k: list(v) for k, v in measure(objects.data, n, objects.spacing, objects.origin).items()})
    if color_by not in table.columns:
        numeric = [c for c, v in table.columns.items() if v and isinstance(v[0], (int, float)) and not isinstance(v[0], bool)]
        raise ParameterError(f"color_by={color_by!r} is not a column of the table; its numeric columns: "
                             f"id, {', '.join(c for c in numeric if c != 'id')}")
    if "id" not in table.columns:
        raise ParameterError("the table has no 'id' column: colour objects with a table from measure_objects")
    ids = np.asarray(table["id"], np.int64)
    try:
        col = np.asarray(table[color_by], float)
    except (TypeError, ValueError):
        raise ParameterError(f"color_by={color_by!r} is not a numeric column") from None
    if ids.size and (ids.min() < 1 or ids.max() > n):
        raise ParameterError(f"the table lists object ids up to {ids.max()}, the objects go to {n}: measure "
                             f"these objects (the table is of others)")
    values = np.full(n + 1, np.nan)
    values[ids] = col
    return values, column_title(color_by, table.metadata.get("unit") or objects.unit)


def column_title(column: str, unit: str) -> str:
    """A column's name with its unit, for a colour bar or a plot's axis ("", "voxel", "unknown": units
    unknown; counts and ratios have none).

    Examples
    --------
    >>> column_title("volume", "mm"), column_title("volume", "voxel"), column_title("sphericity", "mm")
    ('volume (mm³)', 'volume (units unknown)', 'sphericity')
    """
    if not column_unit(column, "m"):
        return column
    return f"{column} (units unknown)" if unit in ("", "voxel", "unknown") else f"{column} ({column_unit(column, unit)})"


def _is_objects(lab: Labels) -> bool:
    return isinstance(lab, Labels) and ("objects" in lab.metadata or lab.class_names == ["object"])


def object_surface(objects: Labels, values: np.ndarray, budget: int | None = None):
    """The surface of the objects whose value is not NaN (a pyvista mesh in world coordinates, as
    :func:`~damselfly.engine.render._surfaces.class_surface` makes it), with point data ``"value"``: each vertex
    the value of the object it bounds (NaN where none is near, e.g. specks lost to a coarse level)."""
    from scipy import ndimage

    from ._surfaces import mask_surface

    ids = np.asarray(objects.data)
    shown = np.isfinite(values)
    shown[0] = False
    visible = np.where(shown[np.minimum(ids, len(values) - 1)], ids, 0)
    mesh, step = mask_surface(visible > 0, objects, budget=budget)
    if mesh is None:
        return None
    zyx = (np.asarray(mesh.points)[:, ::-1] - np.asarray(objects.origin, float)) / np.asarray(objects.spacing, float)
    found = _nearest_id(visible, zyx)
    if (found == 0).any():  # a coarse surface may pass farther than a voxel from its object
        wide = ndimage.maximum_filter(visible, size=2 * step + 1)
        found = np.where(found == 0, _nearest_id(wide, zyx), found)
    mesh.point_data["value"] = np.where(found > 0, values[found], np.nan)
    return mesh


def _nearest_id(ids: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    """Per point (index coordinates), the largest id among the 8 voxels around it (0: none)."""
    out = np.zeros(len(zyx), ids.dtype)
    lo = np.floor(zyx).astype(np.int64)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                at = [np.clip(lo[:, a] + d, 0, ids.shape[a] - 1) for a, d in enumerate((dz, dy, dx))]
                np.maximum(out, ids[at[0], at[1], at[2]], out=out)
    return out
