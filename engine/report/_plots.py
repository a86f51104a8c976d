"""Plots for people: histograms of measurements as PNG files (matplotlib, off screen), with units.

Examples
--------
>>> counts, edges = histogram_bins([1.0, 2.0, 2.5, 9.0], bins=4)
>>> counts.tolist(), edges.tolist()
([3, 0, 0, 1], [1.0, 3.0, 5.0, 7.0, 9.0])
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ParameterError


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
    _histogram_figure(counts, edges, xlabel, title, log, weights_label, size, dpi).savefig(path, format="png")


def histogram_svg(counts, edges, xlabel: str, title: str = "", log: bool = False, weights_label: str = "objects",
                  size=(5.6, 3.2)) -> str:
    """The bar chart of :func:`histogram_png` as SVG text (text kept as text), to put inline in a page."""
    return svg_of(_histogram_figure(counts, edges, xlabel, title, log, weights_label, size, 100))


def bars_svg(names: list[str], values, ylabel: str, title: str = "", size=(5.6, 3.2)) -> str:
    """Bars, one per name (e.g. the volume fraction of each class), as SVG text."""
    fig, ax = _figure(size, 100)
    ax.bar([str(n) for n in names], values, color=COLOUR)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return svg_of(fig)


def strip_svg(names: list[str], values, ylabel: str, flagged=(), size=(6.4, 2.6)) -> str:
    """One value per scan along x, ``flagged`` scans in red (a batch summary's outliers), as SVG text."""
    fig, ax = _figure(size, 100)
    v = np.asarray(values, float)
    x = np.arange(len(v))
    bad = np.isin(x, list(flagged))
    ax.plot(x[~bad], v[~bad], "o", color=COLOUR, markersize=4)
    ax.plot(x[bad], v[bad], "o", color="#c44e52", markersize=6)
    ax.set_title(ylabel, fontsize=9)
    ax.set_xlabel("scan")
    if len(names) <= 30:
        ax.set_xticks(x, [str(n) for n in names], rotation=60, ha="right", fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return svg_of(fig)


COLOUR = "#4c72b0"


def _figure(size, dpi):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    return fig, fig.add_subplot()


def _histogram_figure(counts, edges, xlabel, title, log, weights_label, size, dpi):
    fig, ax = _figure(size, dpi)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=COLOUR, edgecolor="white", linewidth=0.5)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(weights_label)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig


def svg_of(fig) -> str:
    """A figure as SVG text without the XML prologue, its text as text, no date (the same bytes each run)."""
    import io as _io

    import matplotlib

    buf = _io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "damselfly"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]
