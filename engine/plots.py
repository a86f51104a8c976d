"""Plots for people: histograms of measurements as PNG files (matplotlib, off screen), with units.

Examples
--------
>>> counts, edges = histogram_bins([1.0, 2.0, 2.5, 9.0], bins=4)
>>> counts.tolist(), edges.tolist()
([3, 0, 0, 1], [1.0, 3.0, 5.0, 7.0, 9.0])
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError


def histogram_bins(values, bins: int = 20, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the finite ``values``: ``bins`` equal bins between their min and max (on a
    log scale with ``log``, for sizes spanning decades)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if bins < 1:
        raise ParameterError(f"bins must be 1 or more, got {bins}")
    if log:
        if (v <= 0).any():
            raise ParameterError("log bins need positive values")
        if v.size:
            edges = np.geomspace(v.min(), v.max() if v.max() > v.min() else v.min() * 10, bins + 1)
            return np.histogram(v, edges)[0], edges
    return np.histogram(v, bins=bins)


def histogram_png(path, counts, edges, xlabel: str, title: str = "", log: bool = False,
                  weights_label: str = "objects", size=(6.4, 4.0), dpi: int = 150) -> None:
    """Draw bars of ``counts`` over ``edges`` into a PNG at ``path`` (written as it is given: the caller
    makes it atomic)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c72b0", edgecolor="white", linewidth=0.5)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(weights_label)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, format="png")
