"""Measurement actions: local thickness and its statistics."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core import _blocks as blocks
from ..core import progress
from ..core.data import Labels, Table, Volume
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import SLAB, on_disk, output_like, release
from ..registry import action

#: Masks with more voxels than this (or kept on disk) are measured block by block.
IN_MEMORY_VOXELS = 2 ** 27


@action("local_thickness", result="thick", category="Measure", toolbar=5)
def local_thickness(labels: Labels | Volume, class_: str | None = None, border: bool = False,
                    outside: Literal["zero", "nan"] = "zero") -> Volume:
    """Local thickness of one class (or a mask): per voxel, the diameter of the largest ball that fits
    inside the phase and contains the voxel, in physical units (Hildebrand & Rüegsegger 1997; exact).

    Parameters
    ----------
    labels : Labels or Volume
        A segmentation (Labels) with ``class`` to measure, or a mask volume (non-zero = phase).
    class_ : str, optional
        The class of a Labels to measure (e.g. ``"metal"`` for walls, ``"pore"`` for pores).
    border : bool
        Treat the image border as background (default: the phase may continue beyond the image).
    outside : {"zero", "nan"}
        The value of voxels outside the phase.

    Notes
    -----
    A scan kept on disk (memory-mapped, Zarr, HDF5) or over ``IN_MEMORY_VOXELS`` voxels is measured block
    by block with the halo the definition needs (:mod:`~damselfly.engine.thickness._blocks`): the same
    values voxel for voxel, in bounded memory, into a disk-backed result. A scan in a Zarr store, run
    with ``--cluster``, has its blocks spread over the cluster's workers (:mod:`~damselfly.engine.core._blocks`).
    """
    if isinstance(labels, Labels):
        if class_ is None:
            raise ParameterError(f"local_thickness of a segmentation needs class=... "
                                 f"(one of: {', '.join(labels.class_names)})")
        index = labels.class_index(class_)
        what = f"class '{class_}'"
    else:
        if class_ is not None:
            raise ParameterError("class=... needs a segmentation (Labels); this is a plain volume")
        if labels.data.ndim != 3:
            raise InputError(f"expected a 3-D mask, got shape {labels.data.shape}", labels.source)
        index, what = None, "the mask"

    read = PhaseReader(labels.data, index)
    outside_value = np.nan if outside == "nan" else 0.0
    nz = labels.shape[0]
    if not any(read((slice(z, z + SLAB), slice(None), slice(None))).any() for z in range(0, nz, SLAB)):
        raise InputError(f"{what} is empty: there is nothing to measure", labels.source)
    try:
        if on_disk(labels.data) or labels.data.size > IN_MEMORY_VOXELS:
            thick = _blockwise(read, labels, border, outside_value)
        else:
            mask = read((slice(None),) * 3)
            from ..thickness._exact import local_thickness as _local_thickness

            task = progress.task(f"Local thickness of {what}", total=1)
            thick = _local_thickness(mask, labels.spacing, border=border, outside=outside_value)
            task.finish()
    except InputError as e:
        raise InputError(f"{what}: {e}", labels.source) from None
    name = f"{labels.name}_thickness" if labels.name else "thickness"
    return labels.as_volume(thick, name=name, metadata={"measure": "local_thickness", "class": class_,
                                                        "border": border, "source_of_phase": labels.source})


def _blockwise(read, labels, border: bool, outside: float):
    """:func:`~damselfly.engine.thickness._blocks.blockwise_thickness` into a disk-backed result (exact, memory
    bounded by the block size); its blocks go to the run's block runner when the scan is where workers can
    read it."""
    from ..thickness._blocks import blockwise_thickness

    out = output_like([labels], labels.shape[:3], np.float32)
    runner = blocks.runner_for(labels.data, out)
    blockwise_thickness(read, labels.shape[:3], labels.spacing, out, border=border, outside=outside, runner=runner)
    return out


class PhaseReader:
    """``read(slices)``: the phase over a box of a segmentation (voxels of class ``index``) or of a mask
    (non-zero voxels, ``index`` None); picklable with its array, for blocks run elsewhere."""

    def __init__(self, data, index: int | None):
        self.data, self.index = data, index

    def __call__(self, sl) -> np.ndarray:
        a = np.asarray(self.data[sl])
        release(self.data)
        return a != 0 if self.index is None else a == self.index


@action("thickness_stats", result="stats", category="Measure")
def thickness_stats(thickness: Volume, bins: int = 20) -> Table:
    """Statistics of a thickness map over its phase (voxels > 0): a first row over all of them (mean,
    standard deviation, median, max, voxel count), then one row per histogram bin. Lengths are in the
    map's unit, which the ``unit`` column names on every row (``voxel`` where the scan had no spacing).

    Parameters
    ----------
    thickness : Volume
        A map from ``local_thickness``.
    bins : int
        Histogram bins, of equal width from 0 to the maximum.
    """
    if bins < 1:
        raise ParameterError(f"bins must be at least 1, got {bins}")
    values, counts = _value_counts(thickness)
    if counts.sum() == 0:
        raise InputError("the thickness map has no voxel with a thickness (is it the right volume?)",
                         thickness.source)
    total = int(counts.sum())
    cols: dict[str, list] = {k: [] for k in ("range", "from", "to", "voxels", "fraction", "mean", "std",
                                             "median", "max", "unit")}

    def add(label, lo, hi, v, c):
        n = int(c.sum())
        cols["range"].append(label)
        cols["from"].append(float(lo))
        cols["to"].append(float(hi))
        cols["voxels"].append(n)
        cols["fraction"].append(float(n / total))
        cols["unit"].append(thickness.unit or "voxel")
        if not n:
            for key in ("mean", "std", "median", "max"):
                cols[key].append(float("nan"))
            return
        mean = float(np.dot(v, c) / n)
        cols["mean"].append(mean)
        cols["std"].append(float(np.sqrt(np.dot(c, (v - mean) ** 2) / n)))
        cum = np.cumsum(c)  # the median of the counted values: the middle one, or the mean of the middle two
        lo_i, hi_i = np.searchsorted(cum, (n - 1) // 2, side="right"), np.searchsorted(cum, n // 2, side="right")
        cols["median"].append(float((v[lo_i] + v[hi_i]) / 2))
        cols["max"].append(float(v[-1]))

    add("all", values[0], values[-1], values, counts)
    edges = np.linspace(0.0, float(values[-1]), bins + 1)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    for i in range(bins):
        add("bin", edges[i], edges[i + 1], values[idx == i], counts[idx == i])
    return Table(cols, name=f"{thickness.name}_stats" if thickness.name else "thickness_stats",
                 metadata={"unit": thickness.unit})


def _value_counts(thickness: Volume, slab: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The distinct thicknesses (> 0, finite) and how many voxels have each, read slab by slab: a
    thickness map holds few distinct values (twice the distances on the grid), so memory stays small
    whatever the scan size, and every statistic computed from them is exact."""
    values, counts = np.zeros(0, np.float64), np.zeros(0, np.int64)
    data = thickness.data
    for z in range(0, thickness.shape[0], slab):
        v = np.asarray(data[z:z + slab], dtype=np.float32).astype(np.float64).ravel()
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            u, c = np.unique(v, return_counts=True)
            values, inverse = np.unique(np.concatenate([values, u]), return_inverse=True)
            merged = np.zeros(values.size, np.int64)
            np.add.at(merged, inverse, np.concatenate([counts, c]))
            counts = merged
    return values, counts
