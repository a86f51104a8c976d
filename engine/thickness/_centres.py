"""Local thickness at any radius in bounded memory: the ball centres pass between the blocks.

The halo path of :mod:`._blocks` grows every core block by the largest radius ``R``; with ``R`` in the
hundreds (a thick cast part) every grown block holds nearly the whole scan. Here no block reads more than
itself and one voxel around:

1. **Levels, for the whole scan.** One pass over the stored offsets (:mod:`._phase_rows`) marks the offset
   codes that occur: the distinct squared radii, largest first, and each code's level, as in memory.
2. **The distance ridge, per core block** grown by one voxel (the ridge test and the earlier-neighbour
   bits look at the 26 neighbours only): the block's centres with their levels and bits, exactly those of
   the in-memory ridge. Each centre goes to the file of every core block its ball reaches.
3. **The fill, per core block**: its centres, sorted by level as in memory, fill the core alone; balls
   centred outside it are clipped to it. A voxel's value is that of the first ball to reach it, the
   largest, as in memory, so the result is equal voxel for voxel.

Memory: per block, its mask, row pointers and output (7 bytes a voxel; 18 while a snapshot of the
unfilled voxels is taken, :mod:`._reach`; 13 while finding the ridge), and the centres that reach it (40
bytes each while they are sorted, then 20); on disk, 20 bytes per centre and block it reaches.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from ..core import progress
from ..core._blocks import run_blocks
from ..core.volume_ops import scratch_folder_of, write_planes
from ._exact import (
    DENSE_LIMIT,
    NO_LEVEL,
    _codes_to_levels,
    _collect,
    _offset_codes,
    _ridge,
    containment_levels,
    fill_balls,
    radii_of,
)
from ._rows import d2

#: Voxels of a slab in the pass that finds the levels.
SLAB_VOXELS = 16 * 1024 * 1024


class CentreFiles:
    """A scratch folder of ball centres, one file per (source block, target block): ``int32`` rows of
    ``(z, y, x, level, earlier-neighbour bits)``. Pickled, it names the folder (for block runners);
    the folder goes with the object that made it."""

    def __init__(self):
        self.path = scratch_folder_of(self)

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]

    def write(self, src: int, tgt: int, rows: np.ndarray) -> None:
        np.save(os.path.join(self.path, f"{src}_{tgt}.npy"), rows)

    def read(self, tgt: int, sources: int) -> np.ndarray:
        parts = [np.load(f) for s in range(sources)
                 if os.path.exists(f := os.path.join(self.path, f"{s}_{tgt}.npy"))]
        return np.concatenate(parts) if parts else np.empty((0, 5), np.int32)


def global_levels(read, offsets, shape, sp, max_r2: float):
    """The levels of the whole scan from its stored offsets: ``(table, k, r2s)``, where a phase voxel's
    offset code ``(|dz| k[1] + |dy|) k[2] + |dx|`` has level ``table[code]`` (a dense table), or
    ``table = (codes, levels)`` sorted (huge radii). ``r2s``: the distinct squared radii, largest first."""
    k = tuple(int(math.sqrt(max_r2) / s) + 2 for s in sp)  # |offset| per axis is at most r / s
    dense = math.prod(k) <= DENSE_LIMIT
    present = np.zeros(math.prod(k) if dense else 1, np.bool_)
    found = np.empty(0, np.int64)
    dz = max(1, SLAB_VOXELS // (shape[1] * shape[2]))
    task = progress.task("Radii of the distance transform", total=shape[0])
    for z in range(0, shape[0], dz):
        box = (slice(z, min(shape[0], z + dz)), slice(None), slice(None))
        m = np.ascontiguousarray(read(box), dtype=bool)
        codes = _codes(m, offsets.read(box), k, present if dense else None)
        if not dense:
            found = np.union1d(found, codes[codes >= 0])
        task.advance(box[0].stop - z)
    task.finish()
    codes = np.flatnonzero(present) if dense else found
    r2s, inverse = radii_of(codes, k, sp)
    if not dense:
        return (codes, inverse.astype(np.int32)), k, r2s
    table = np.zeros(len(present), np.int32)
    table[codes] = inverse
    return table, k, r2s


def _codes(m, offs, k, present) -> np.ndarray:
    """Offset codes of a box (-1 outside the phase); with ``present`` (dense), as int32, marking them."""
    if present is not None:
        codes = np.empty(m.shape, np.int32)
        _offset_codes(m, *offs, k[1], k[2], present, codes)
        return codes
    a, b, c = (np.abs(o).astype(np.int64) for o in offs)
    return np.where(m, (a * k[1] + b) * k[2] + c, -1)


def _levels_of(m, offs, table, k) -> np.ndarray:
    """The levels (``NO_LEVEL`` outside the phase) of a box from its offsets."""
    if isinstance(table, tuple):
        codes, levels = table
        c = _codes(m, offs, k, None)
        lev = np.full(m.shape, NO_LEVEL, np.int32)
        lev[m] = levels[np.searchsorted(codes, c[m])]
        return lev
    lev = _codes(m, offs, k, np.zeros(len(table), np.bool_))
    _codes_to_levels(lev, table)
    return lev


@dataclass(frozen=True)
class Job:
    """What every block of one run needs (picklable when a runner spreads the blocks)."""

    read: Any
    shape: tuple
    sp: tuple
    unit: float
    outside: float
    offsets: Any
    table: Any
    k: tuple
    r2s: np.ndarray
    thr: np.ndarray
    cores: tuple
    edges: tuple
    files: CentreFiles
    out: Any


def ridge_block(job: Job, i: int) -> None:
    """The ridge centres of core block ``i``, each written to the files of the blocks its ball reaches."""
    core = job.cores[i]
    lo = [max(0, int(a) - 1) for a, _ in core]
    hi = [min(n, b + 1) for (_, b), n in zip(core, job.shape)]
    gsl = tuple(slice(a, b) for a, b in zip(lo, hi))
    m = np.ascontiguousarray(job.read(gsl), dtype=bool)
    if not m.any():
        return
    lev = _levels_of(m, job.offsets.read(gsl), job.table, job.k)
    del m
    keep = np.empty(lev.shape, np.bool_)
    _ridge(lev, job.thr, keep)
    for ax, ((a, b), l_) in enumerate(zip(core, lo)):  # only the core's own voxels are its centres
        keep[(slice(None),) * ax + (slice(0, a - l_),)] = False
        keep[(slice(None),) * ax + (slice(b - l_, None),)] = False
    n = int(np.count_nonzero(keep))
    pz, py, px, pl, pa = (np.empty(n, np.int32) for _ in range(5))
    _collect(keep, lev, job.thr, len(job.r2s), max(1, min(lev.shape[0], 8)), pz, py, px, pl, pa)
    del keep, lev
    start, rows = _targets(pz, py, px, pl, pa, *lo, job.r2s, *job.edges, *job.sp)
    del pz, py, px, pl, pa
    for t in range(len(start) - 1):
        if start[t + 1] > start[t]:
            job.files.write(i, t, rows[start[t]:start[t + 1]])


@njit(cache=True, inline="always")
def _reached(cz, cy, cx, r2, ez, ey, ex, s0, s1, s2, found):
    """Into ``found``, the core blocks (a grid: block edges ``ez``, ``ey``, ``ex`` per axis) that the ball
    reaches (the block's voxel nearest to the centre, by the one distance formula); returns how many."""
    ny, nx = len(ey) - 1, len(ex) - 1
    n = 0
    for a in range(len(ez) - 1):
        gz = max(ez[a] - cz, 0, cz - (ez[a + 1] - 1))
        if d2(gz, 0, 0, s0, s1, s2) > r2:
            continue
        for b in range(ny):
            gy = max(ey[b] - cy, 0, cy - (ey[b + 1] - 1))
            if d2(gz, gy, 0, s0, s1, s2) > r2:
                continue
            for c in range(nx):
                gx = max(ex[c] - cx, 0, cx - (ex[c + 1] - 1))
                if d2(gz, gy, gx, s0, s1, s2) <= r2:
                    found[n] = (a * ny + b) * nx + c
                    n += 1
    return n


@njit(parallel=True, cache=True)
def _targets(pz, py, px, pl, pa, z0, y0, x0, r2s, ez, ey, ex, s0, s1, s2):
    """Which core blocks (see :func:`_reached`) each centre's ball reaches, the centres given relative to the
    corner ``z0, y0, x0``: ``(start, rows)``, the centres reaching block ``t`` being
    ``rows[start[t]:start[t + 1]]`` (``z, y, x, level, bits``, in the scan's coordinates), in their order.
    In parallel over chunks of centres (counted, then written)."""
    nt = (len(ez) - 1) * (len(ey) - 1) * (len(ex) - 1)
    n = pz.shape[0]
    chunks = 16
    place = np.zeros((chunks, nt), np.int64)
    for k in prange(chunks):
        found = np.empty(nt, np.int64)
        for i in range(k * n // chunks, (k + 1) * n // chunks):
            for j in range(_reached(pz[i] + z0, py[i] + y0, px[i] + x0, r2s[pl[i]], ez, ey, ex, s0, s1, s2, found)):
                place[k, found[j]] += 1
    start = np.zeros(nt + 1, np.int64)
    for t in range(nt):  # chunk k's centres of block t go after those of chunks before it
        total = start[t]
        for k in range(chunks):
            c = place[k, t]
            place[k, t] = total
            total += c
        start[t + 1] = total
    rows = np.empty((start[nt], 5), np.int32)
    for k in prange(chunks):
        found = np.empty(nt, np.int64)
        for i in range(k * n // chunks, (k + 1) * n // chunks):
            cz, cy, cx = pz[i] + z0, py[i] + y0, px[i] + x0
            for j in range(_reached(cz, cy, cx, r2s[pl[i]], ez, ey, ex, s0, s1, s2, found)):
                t = found[j]
                q = place[k, t]
                place[k, t] = q + 1
                rows[q, 0] = cz
                rows[q, 1] = cy
                rows[q, 2] = cx
                rows[q, 3] = pl[i]
                rows[q, 4] = pa[i]
    return start, rows


@njit(cache=True)
def _by_level(rows, nlevels, z0, y0, x0, pz, py, px, pl, pa):
    """The centres ``rows`` sorted by level (a counting sort: stable), as the columns ``pz, py, px`` (relative
    to the block's corner ``z0, y0, x0``), ``pl``, ``pa``."""
    start = np.zeros(nlevels + 1, np.int64)
    for i in range(rows.shape[0]):
        start[rows[i, 3] + 1] += 1
    for L in range(nlevels):
        start[L + 1] += start[L]
    for i in range(rows.shape[0]):
        j = start[rows[i, 3]]
        start[rows[i, 3]] = j + 1
        pz[j] = rows[i, 0] - z0
        py[j] = rows[i, 1] - y0
        px[j] = rows[i, 2] - x0
        pl[j] = rows[i, 3]
        pa[j] = rows[i, 4]


def fill_block(job: Job, i: int) -> None:
    """Fill core block ``i`` from the centres whose balls reach it, in the in-memory order, into ``job.out``."""
    core = job.cores[i]
    csl = tuple(slice(a, b) for a, b in core)
    m = np.ascontiguousarray(job.read(csl), dtype=bool)
    rows = job.files.read(i, len(job.cores))
    if not m.any() or len(rows) == 0:
        job.out[csl] = job.outside
        return
    # by level, as in memory; within a level the order cannot change a value: balls of one level write the
    # same value, and which rows a ball skips (those inside its earlier neighbours' balls) does not depend
    # on the order the balls are filled in
    centres = tuple(np.empty(len(rows), np.int32) for _ in range(5))
    _by_level(rows, len(job.r2s), core[0][0], core[1][0], core[2][0], *centres)
    del rows
    t = fill_balls(m, job.sp, centres, job.r2s, job.unit)
    if job.outside != 0.0:
        t[~m] = job.outside
    write_planes(job.out, csl, t)


def centre_thickness(read, shape, sp, unit: float, outside: float, offsets, max_r2: float, axes, out,
                     runner=None) -> None:
    """Local thickness block by block through the ball centres (see the module): the core blocks are the
    grid of ``axes`` (per axis, a list of ranges ``(start, stop)`` covering it); ``offsets`` and
    ``max_r2`` from the out-of-core distance transform (``sp`` normalised, distances in multiples of
    ``unit``)."""
    table, k, r2s = global_levels(read, offsets, shape, sp, max_r2)
    cores = tuple((z, y, x) for z in axes[0] for y in axes[1] for x in axes[2])
    edges = tuple(np.array([a for a, _ in ranges] + [ranges[-1][1]], np.int64) for ranges in axes)
    job = Job(read, tuple(shape), sp, unit, outside, offsets, table, k, r2s, containment_levels(r2s, sp),
              cores, edges, CentreFiles(), out)
    blocks = list(range(len(cores)))
    run_blocks(runner, ridge_block, blocks, job, "Distance ridge, block by block")
    run_blocks(runner, fill_block, blocks, job, "Filling the balls, block by block")
