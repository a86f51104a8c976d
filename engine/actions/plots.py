"""Plot actions: the distribution of a measurement (a table column) as a table of bins and a PNG."""

from __future__ import annotations

import numpy as np

from ..core.context import RunContext
from ..core.data import Table
from ..core.errors import ParameterError
from ..registry import OutputPath, action
from ..render._objects import column_title
from ..report import _plots as plots


@action("histogram", result="distribution", category="Measure")
def histogram(table: Table, column: str = "equivalent_diameter", bins: int = 20, log: bool = False,
              path: OutputPath | None = None, *, ctx: RunContext) -> Table:
    """The distribution of one column of a table (e.g. the pore size distribution from
    ``measure_objects``): a table of bins and, with ``path``, a bar chart as a PNG.

    The bins table has ``from`` and ``to`` (the bin's edges, in the column's unit), ``count``,
    ``fraction`` (of the rows) and ``cumulative``; with a ``volume`` column in the table also
    ``volume_fraction`` (the share of the total volume in the bin: how porosimetry reports pore sizes).

    Parameters
    ----------
    table : Table
        Measurements, one row per object (``measure_objects``).
    column : str
        The numeric column to bin.
    bins : int
        The number of equal bins between the smallest and largest value.
    log : bool
        Bins equal on a log scale (sizes spanning decades).
    path : path, optional
        A PNG of the bar chart, relative to the run's output folder.

    Examples
    --------
    >>> sizes = histogram(pore_table, column="equivalent_diameter", path="{scan.stem}_pore_sizes.png")  # doctest: +SKIP
    """
    if column not in table.columns:
        raise ParameterError(f"no column {column!r} in the table; its columns: {', '.join(table.columns)}")
    try:
        values = np.asarray(table[column], float)
    except (TypeError, ValueError):
        raise ParameterError(f"column {column!r} is not numeric") from None
    if path is not None and not str(path).lower().endswith(".png"):
        raise ParameterError(f"the histogram's picture is a .png file, got {path}")
    counts, edges = plots.histogram_bins(values, bins, log)
    total = max(1, int(counts.sum()))
    cols = {"from": edges[:-1].tolist(), "to": edges[1:].tolist(), "count": counts.astype(int).tolist(),
            "fraction": (counts / total).tolist(), "cumulative": (np.cumsum(counts) / total).tolist()}
    if "volume" in table.columns and column != "volume":
        vol = np.asarray(table["volume"], float)
        ok = np.isfinite(values)
        per_bin = np.histogram(values[ok], edges, weights=vol[ok])[0]
        cols["volume_fraction"] = (per_bin / max(per_bin.sum(), 1e-300)).tolist()
    unit = table.metadata.get("unit", "")
    meta = {"unit": unit, "column": column, "of": table.name}
    if path is not None:
        from ..io._files import atomic_path

        label = column_title(column, unit)
        with atomic_path(path, overwrite=ctx.may_replace(path)) as tmp:
            plots.histogram_png(tmp, counts, edges, label.replace("_", " "), f"{int(counts.sum())} objects", log)
        meta["plot"] = str(path)
    return Table(cols, name=f"{table.name}_{column}_histogram" if table.name else f"{column}_histogram", metadata=meta)
