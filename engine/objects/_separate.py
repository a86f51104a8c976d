"""Splitting touching objects, group by group of objects: distance map, markers, watershed.

Each object is split on its own: the distance of its voxels to the background (in physical units,
lightly smoothed), one marker per maximum that stands out (h-maxima) or per local maximum, then a
watershed from the markers within the object; an object without a marker stays whole. Objects are
taken in groups, by where they start in the scan: the group of objects starting in planes ``z0:z1`` is
read with the planes they reach plus a halo (the smoothing's reach), so memory follows the depth of the
objects, not of the scan, and the result is the same for any group size (it equals splitting the whole
scan at once: the objects of a connected-component labelling are apart, so one object's distance map,
markers and watershed do not depend on the others). Pieces are numbered in scan order at the end.
"""

from __future__ import annotations

import math

import numpy as np

from ..core import progress
from ..core.volume_ops import SLAB


def z_extents(data, n: int, slab: int = SLAB) -> tuple[np.ndarray, np.ndarray]:
    """The first and last plane (inclusive) of every object 1..n of ``data`` (index 0 unused; objects
    that do not occur get first > last), streamed plane by plane."""
    first = np.full(n + 1, np.iinfo(np.int64).max, np.int64)
    last = np.full(n + 1, -1, np.int64)
    for z0 in range(0, data.shape[0], slab):
        block = np.asarray(data[z0:z0 + slab])
        for k, plane in enumerate(block):
            ids = np.unique(plane)
            ids = ids[(ids > 0) & (ids <= n)]
            first[ids] = np.minimum(first[ids], z0 + k)
            last[ids] = z0 + k
    return first, last


def split_group(ids: np.ndarray, group: np.ndarray, spacing, h: float, smooth: float, min_distance: float,
                markers: str, connectivity: int) -> tuple[np.ndarray, int]:
    """Split the objects of ``ids`` whose ids are in ``group`` (sorted); the other voxels of ``ids`` are
    their surroundings. Returns pieces (0 outside the group, else 1..k) and k. The watershed runs object by
    object in its bounding box (its ties then do not depend on what else is in the array)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    sp = np.asarray(spacing, float)
    fg = ids > 0
    mine = np.where(np.isin(ids, group), ids, 0)
    dist = ndimage.distance_transform_edt(fg, sampling=sp).astype(np.float32)
    if smooth > 0:
        dist = ndimage.gaussian_filter(dist, smooth / sp, truncate=4.0) * fg
    dist *= mine > 0
    seeds = _markers(dist, mine, sp, h, min_distance, markers)
    struct = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    pieces = np.zeros(ids.shape, np.int64)
    k = 0
    for i, box in enumerate(ndimage.find_objects(mine)):
        if box is None:
            continue
        inside = mine[box] == i + 1
        found = np.unique(seeds[box][inside])
        found = found[found > 0]
        if len(found) <= 1:  # one marker, or none (too small to stand out): the object stays whole
            pieces[box][inside] = k + 1
            k += 1
            continue
        split = watershed(-dist[box], np.where(inside, seeds[box], 0), mask=inside, connectivity=struct)
        pieces[box][inside] = k + np.searchsorted(found, split[inside]) + 1
        k += len(found)
    return pieces, k


def _markers(dist, ids, sp, h, min_distance, markers) -> np.ndarray:
    from scipy import ndimage

    if markers == "h_maxima":
        from skimage.morphology import h_maxima

        return ndimage.label(h_maxima(dist, h))[0]
    from skimage.feature import peak_local_max

    radius = np.maximum(1, np.round(min_distance / sp)).astype(int)
    zz, yy, xx = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    footprint = (zz / radius[0]) ** 2 + (yy / radius[1]) ** 2 + (xx / radius[2]) ** 2 <= 1
    peaks = peak_local_max(dist, footprint=footprint, labels=ids.astype(np.int64), exclude_border=False)
    seeds = np.zeros(ids.shape, np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return seeds


def separate(data, n: int, out, spacing, h: float, smooth: float, min_distance: float, markers: str = "h_maxima",
             connectivity: int = 26, group_depth: int | None = None) -> int:
    """Split every object 1..n of ``data`` into ``out`` (same shape, integer; written group by group, then
    renumbered in scan order); returns the number of pieces. ``group_depth``: planes of starting points per
    group (default: the whole scan at once when it is in memory, else ``4 * SLAB``)."""
    nz = data.shape[0]
    if group_depth is None:
        group_depth = nz if isinstance(data, np.ndarray) else 4 * SLAB
    if group_depth >= nz:
        pieces, k = split_group(np.asarray(data), np.arange(1, n + 1), spacing, h, smooth, min_distance, markers,
                                connectivity)
        out[...] = pieces
        return _scan_order(out, k)
    first, last = z_extents(data, n)
    halo = _halo(spacing, smooth)
    task = progress.task("Separating objects", total=math.ceil(nz / group_depth))
    total = 0
    for z0 in range(0, nz, group_depth):
        group = np.flatnonzero((first >= z0) & (first < z0 + group_depth))
        if len(group):
            a, b = max(0, z0 - halo), min(nz, int(last[group].max()) + 1 + halo)
            ids = np.asarray(data[a:b])
            pieces, k = split_group(ids, group, spacing, h, smooth, min_distance, markers, connectivity)
            mine = pieces > 0
            block = np.asarray(out[a:b])
            block[mine] = pieces[mine] + total
            out[a:b] = block
            total += k
        task.advance()
    task.finish()
    return _scan_order(out, total)


def _halo(spacing, smooth: float) -> int:
    """Planes read around a group: the smoothing kernel's reach (4 sigma, in any direction), and as far
    again for the background that sets the distances it averages, plus a plane."""
    sp = np.asarray(spacing, float)
    reach = 4 * smooth * math.sqrt(3) + float(np.linalg.norm(sp))
    return 1 + math.ceil(2 * reach / sp[0])


def _scan_order(out, total: int) -> int:
    """Renumber the pieces of ``out`` (ids 1..total) by their first voxel in the scan, slab by slab;
    returns how many there are.

    Examples
    --------
    >>> out = np.array([[[0, 7, 3, 7]]], np.uint32); _scan_order(out, 7), out.tolist()
    (2, [[[0, 1, 2, 1]]])
    """
    first = np.full(total + 1, np.iinfo(np.int64).max, np.int64)
    plane = int(np.prod(out.shape[1:]))
    for z0 in range(0, out.shape[0], SLAB):
        values, at = np.unique(np.asarray(out[z0:z0 + SLAB]), return_index=True)
        first[values] = np.minimum(first[values], at + z0 * plane)
    first[0] = -1
    present = np.flatnonzero(first[1:] < np.iinfo(np.int64).max) + 1
    lut = np.zeros(total + 1, np.uint32 if total < 2 ** 32 - 1 else np.uint64)
    lut[present[np.argsort(first[present])]] = np.arange(1, len(present) + 1)
    for z0 in range(0, out.shape[0], SLAB):
        out[z0:z0 + SLAB] = lut[np.asarray(out[z0:z0 + SLAB])]
    return len(present)
