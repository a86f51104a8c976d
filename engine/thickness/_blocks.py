"""Local thickness of scans larger than memory: block by block, equal voxel for voxel to the in-memory
:func:`~damselfly.engine.thickness._exact.local_thickness`.

How
---
1. **The distance transform, out of core and exact.** Its separable passes need whole lines, not the
   whole scan: the x and y passes run over slabs of z-planes, the z pass over slabs of y-rows (whole
   z-columns). Each line is computed exactly as in memory, so the offsets to the nearest background are
   the very same. Outside the phase every offset is 0, so between the passes only the phase voxels'
   offsets go to scratch files (:mod:`~damselfly.engine.thickness._phase_rows`: 4 bytes a phase voxel), and after
   them too where the phase is at most ``SPARSE_SHARE`` of the scan (8 bytes a phase voxel, with its
   ``x``; else 6 bytes a voxel). The largest radius ``R`` comes with them.
2. **Balls, per core block.** A ball that covers a voxel of a core block is centred within ``R`` of it,
   so each core is grown by a halo of ``R`` (plus the one-voxel neighbourhood of the distance ridge); the
   distance ridge, the levels and the ball centres are found on that grown block from the stored offsets,
   the centres whose ball does not reach the core are dropped, and the balls are filled into the core
   only (rows outside it look filled and are passed over).

A scan that fits in one block (``BLOCK`` voxels a side, within ``GROWN_VOXELS``) is computed in memory
at once, which gives the same values without the disk. Where the largest radius is so wide that the grown
blocks would hold over ``CENTRES_WHEN`` times the scan's voxels (a cast part of radius 450: every block
would read nearly the whole scan), step 2 changes: the distance ridge is found once, block by block, and
each block is filled from the ball centres that reach it, with no halo (:mod:`._centres`).

The ridge test of a voxel at the edge of a grown block sees fewer neighbours, so it keeps more centres,
never fewer: the values stay those of the definition.

Memory: about 8 bytes a voxel of one grown block (at most ``GROWN_VOXELS``, ~1.5 GB, unless the halo
alone is wider; 18 for grown blocks of up to 64 M voxels, which take snapshots of the unfilled voxels
while filling, :mod:`._reach`), whatever the scan's size, and two slabs for the distance transform. A block's
offsets are read a few planes at a time to make its levels, never held whole.

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((20, 20, 20), bool); mask[5:15, 5:15, 4:8] = True   # a plate 4 voxels thick
>>> out = np.zeros(mask.shape, np.float32)
>>> _ = blockwise_thickness(lambda sl: mask[sl], mask.shape, (1, 1, 1), out, block=8)
>>> float(out[10, 10, 5])
4.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from ..core import progress
from ..core._blocks import run_blocks
from ..core.errors import InputError
from ..core.volume_ops import write_planes
from ._centres import centre_thickness
from ._exact import (
    BIG,
    DENSE_LIMIT,
    FILLS_ALL,
    _levels,
    _offset_codes,
    codes_to_levels,
    fill_thickness,
    local_thickness,
    normalised,
    offsets_along_z,
    offsets_in_planes,
)
from ._phase_rows import DenseRows, PhaseRows
from ._rows import d2

#: Edge of a core block, in voxels, at most.
BLOCK = 512
#: Voxels of a grown block (core and halo) at most, unless the core would fall below 64: the memory bound
#: (about 8 bytes a voxel: 1.5 GB).
GROWN_VOXELS = 192 * 1024 * 1024
#: Block by block reads and fills the grown blocks; where they would hold this many times the scan's voxels
#: (a halo as wide as the blocks: radii in the hundreds), the ball centres pass between blocks instead
#: (:mod:`._centres`: no halo; the same values).
CENTRES_WHEN = 2.0
#: Edge of a core block when the centres pass between blocks, in voxels, at most.
CENTRE_BLOCK = 256
#: Voxels in one slab of the out-of-core distance transform.
SLAB_VOXELS = 16 * 1024 * 1024
#: The final offsets are stored for the phase voxels only (``PhaseRows``) when the phase is at most this
#: share of the scan (then they take a third of the dense files' bytes or less), else for every voxel.
SPARSE_SHARE = 0.25


@njit(parallel=True, cache=True)
def _max_r2(mask, oz, oy, ox, s0, s1, s2):
    """The largest squared distance over the phase; inf where a phase voxel sees no background."""
    nz = mask.shape[0]
    per = np.zeros(nz)
    for z in prange(nz):
        m = 0.0
        for y in range(mask.shape[1]):
            for x in range(mask.shape[2]):
                if mask[z, y, x]:
                    a, b, c = oz[z, y, x], oy[z, y, x], ox[z, y, x]
                    if a == BIG or b == BIG or c == BIG:
                        m = np.inf
                    else:
                        m = max(m, d2(a, b, c, s0, s1, s2))
        per[z] = m
    return per.max() if nz else 0.0


def _ranges(n: int, block: int) -> list[tuple[int, int]]:
    """``n`` split into near-equal parts of at most ``block``."""
    k = max(1, math.ceil(n / block))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def distance_offsets_out_of_core(read, shape, sp, border: bool = False, slab_voxels: int | None = None,
                                 shared: bool = False):
    """:func:`~damselfly.engine.thickness._exact.distance_offsets` of a mask read slab by slab, into scratch
    stores (:mod:`~damselfly.engine.thickness._phase_rows`; named files when ``shared``): for the phase voxels only
    where the phase is at most ``SPARSE_SHARE`` of the scan, else for every voxel. Returns the store of
    ``(oz, oy, ox)`` and the largest squared distance over the phase."""
    nz, ny, nx = shape
    slab_voxels = slab_voxels or SLAB_VOXELS
    planes = PhaseRows(shape, 2)  # the in-plane offsets, between the passes (never more bytes than dense)
    dz = max(1, slab_voxels // (ny * nx))
    task = progress.task("Distance transform, slab by slab", total=nz + ny)
    for z in range(0, nz, dz):
        sl = slice(z, min(nz, z + dz))
        m = np.ascontiguousarray(read((sl, slice(None), slice(None))), dtype=bool)
        planes.write(z, 0, m, offsets_in_planes(m, sp, border))
        task.advance(sl.stop - sl.start)
    sparse = planes.records <= SPARSE_SHARE * math.prod(shape)
    final = (PhaseRows(shape, 3, with_x=True, shared=shared, capacity=planes.records) if sparse
             else DenseRows(shape, 3, shared))
    dy = max(1, slab_voxels // (nz * nx))
    max_r2 = 0.0
    for y in range(0, ny, dy):
        sl = (slice(None), slice(y, min(ny, y + dy)), slice(None))
        m = np.ascontiguousarray(read(sl), dtype=bool)
        by, bx = planes.read(sl, m)
        bz = offsets_along_z(by, bx, sp, border)
        final.write(0, y, m, (bz, by, bx))
        max_r2 = max(max_r2, _max_r2(m, bz, by, bx, *sp))
        task.advance(sl[1].stop - y)
    task.finish()
    return final, max_r2


def _in_one_block(read, spacing, out, border, outside) -> float:
    """A scan that is one block: :func:`~damselfly.engine.thickness._exact.local_thickness` in memory (the same
    values, without the disk)."""
    m = np.ascontiguousarray(read((slice(None),) * 3), dtype=bool)
    if not m.any():  # no phase: nothing to measure, as block by block
        out[...] = outside
        return 0.0
    thick = local_thickness(m, spacing, border, outside)
    del m
    write_planes(out, tuple(slice(0, n) for n in thick.shape), thick)
    return float(np.nanmax(thick)) / 2


def _block_levels(g, offsets, gsl, sp, max_r2: float, planes: int = 32):
    """The levels of a grown block (``lev``, ``r2s``: see ``thickness._levels``) from the stored offsets,
    read once, ``planes`` planes at a time: ``lev`` first holds each voxel's offset code, then, once the
    radii that occur are known, its level. The block's offsets are never held whole."""
    kmax = tuple(int(math.sqrt(max_r2) / s) + 2 for s in sp)  # |offset| per axis is at most r / s
    if math.prod(kmax) > DENSE_LIMIT:  # huge radii: hold the offsets (the general path, same values)
        return _levels(g, sp, False, [tuple(offsets.read(gsl))])
    present = np.zeros(math.prod(kmax), np.bool_)
    lev = np.empty(g.shape, np.int32)
    for z in range(0, g.shape[0], planes):
        box = (slice(gsl[0].start + z, min(gsl[0].stop, gsl[0].start + z + planes)), *gsl[1:])
        n = box[0].stop - box[0].start
        _offset_codes(g[z:z + n], *offsets.read(box), kmax[1], kmax[2], present, lev[z:z + n])
    return lev, codes_to_levels(lev, present, kmax, sp)


def blockwise_thickness(read, shape, spacing, out, border: bool = False, block: int | None = None,
                        outside: float = 0.0, runner=None) -> float:
    """Local thickness of a mask that is read block by block, written into ``out`` block by block.

    Parameters
    ----------
    read : callable
        ``read(slices) -> bool ndarray``: the mask over a tuple of three slices.
    shape : tuple of int
        The mask's shape (z, y, x).
    spacing : sequence of float
        Voxel size per axis.
    out : array-like
        Writable, of ``shape`` (a memory map, a Zarr array): receives float32 thickness.
    border : bool
        Treat the space beyond the scan as background.
    block : int, optional
        Edge of a core block (default: ``BLOCK``, smaller where the halo would take the grown block
        over ``GROWN_VOXELS``).
    outside : float
        The value outside the phase (0 or nan).
    runner : callable, optional
        Where the core blocks run (a block runner, :mod:`~damselfly.engine.core._blocks`; default here). With
        one, ``read`` must pickle and ``out`` be a Zarr array the workers can reach; the cores then
        follow ``out``'s chunks (each chunk written by one block) and the distance transform's offsets go
        to named scratch files the workers read.

    Returns
    -------
    float
        The largest radius (distance to the background), in the units of ``spacing``.
    """
    unit, sp = normalised(tuple(float(v) for v in spacing))
    if block is None and max(shape) <= BLOCK and math.prod(shape) <= GROWN_VOXELS:
        return _in_one_block(read, spacing, out, border, outside)  # one block (nothing to spread): in memory
    offsets, max_r2 = distance_offsets_out_of_core(read, shape, sp, border, shared=runner is not None)
    if not math.isfinite(max_r2):
        raise InputError(FILLS_ALL)
    halo = [math.ceil(math.sqrt(max_r2) / s) + 1 for s in sp]
    chosen = block is None
    block = block or min(BLOCK, max(64, int(GROWN_VOXELS ** (1 / 3)) - 2 * max(halo)))
    axes = _grid(shape, block, out, runner)
    cores = [(z, y, x) for z in axes[0] for y in axes[1] for x in axes[2]]
    grown = sum(math.prod(min(n, b - a + 2 * h) for (a, b), n, h in zip(core, shape, halo)) for core in cores)
    if chosen and grown > CENTRES_WHEN * math.prod(shape):  # radii as wide as the blocks: pass the centres
        axes = _grid(shape, CENTRE_BLOCK, out, runner)
        centre_thickness(read, shape, sp, unit, outside, offsets, max_r2, axes, out, runner)
        return math.sqrt(max_r2) * unit
    job = _Job(read, tuple(shape), sp, unit, border, outside, tuple(halo), max_r2, offsets, out)
    run_blocks(runner, _core_block, cores, job, "Local thickness, block by block")
    return math.sqrt(max_r2) * unit


def _grid(shape, block: int, out, runner) -> list[list[tuple[int, int]]]:
    """Per axis, the ranges of the core blocks (edges up to ``block``); with a runner, whole chunks of
    ``out`` per block, so no two blocks write to one chunk."""
    if runner is None:
        return [_ranges(n, block) for n in shape]
    return [_aligned_ranges(n, block, c) for n, c in zip(shape, out.chunks)]


def _aligned_ranges(n: int, block: int, chunk: int) -> list[tuple[int, int]]:
    """``n`` split into parts of about ``block`` (at least one ``chunk``) that start on chunk edges."""
    step = max(chunk, round(block / chunk) * chunk)
    return [(a, min(n, a + step)) for a in range(0, n, step)]


@dataclass(frozen=True)
class _Job:
    """What every core block of one run needs (picklable when the run spreads its blocks)."""

    read: Callable
    shape: tuple
    sp: tuple
    unit: float
    border: bool
    outside: float
    halo: tuple
    max_r2: float
    offsets: tuple
    out: Any


def _core_block(job: _Job, core) -> None:
    """Local thickness of one core block, grown by the halo, into ``job.out``."""
    lo = [max(0, a - h) for (a, _), h in zip(core, job.halo)]
    hi = [min(n, b + h) for (_, b), h, n in zip(core, job.halo, job.shape)]
    gsl = tuple(slice(a, b) for a, b in zip(lo, hi))
    rel = tuple(slice(a - l_, b - l_) for (a, b), l_ in zip(core, lo))
    csl = tuple(slice(a, b) for a, b in core)
    g = np.ascontiguousarray(job.read(gsl), dtype=bool)
    if not g[rel].any():
        job.out[csl] = job.outside
        return
    levels = [_block_levels(g, job.offsets, gsl, job.sp, job.max_r2)]  # emptied by fill_thickness: freed early
    t = fill_thickness(g, job.sp, job.border, unit=job.unit, core=rel, levels=levels)
    t = t[rel]
    if job.outside != 0.0:
        t[~g[rel]] = job.outside
    write_planes(job.out, csl, t)
