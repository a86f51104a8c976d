"""Counts of unfilled voxels, per block and coarser, so that a big ball skips what is already filled.

Filling balls from the largest radius down, a ball of bulk material is mostly inside balls filled before
it: visiting its ``(2r + 1)^2`` rows, even at one look-up each, is what made thick parts slow (the cost
grew with the radius cubed times the balls). Here every z-slab of the fill keeps the number of its
unfilled phase voxels per 8 x 8 x 8 block, and the sums of 2 x 2 x 2 blocks above, up to one node for
the slab. A big ball descends from the top node into the nodes that still hold unfilled voxels **and**
hold a voxel of the ball (the voxel of the node nearest to the centre, by the one distance formula), and
fills rows only in the 8 x 8 x 8 blocks it reaches: a ball over filled material costs a few look-ups.

Exactness: a node is skipped only when it holds no unfilled voxel or no voxel of the ball, and the rows
of a block are filled as everywhere else (only unfilled phase voxels within the ball's row widths are
written), so the values are those of the row-by-row fill. Counts fall only by the voxels written through
here; voxels written by the other paths leave them too high, which costs time, never a voxel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._rows import d2, fill_span, row_width

#: Edge of the finest blocks, in voxels.
B = 8


def plan(shape: tuple[int, int, int], nslabs: int):
    """The slabs (z boundaries on block edges) and, per slab and level, the node grid's shape and offset
    in one flat count array: ``(slab_z, dims, offs, levels, size)``."""
    nz, ny, nx = shape
    cuts = sorted({0, nz, *(min(nz, round(k * nz / nslabs / B) * B) for k in range(1, nslabs))})
    slab_z = np.array(cuts, np.int64)
    top = max(max(b - a for a, b in zip(cuts, cuts[1:])), ny, nx)
    levels = max(0, math.ceil(math.log2(max(1.0, top / B))))
    ns = len(cuts) - 1
    dims = np.zeros((ns, levels + 1, 3), np.int64)
    offs = np.zeros((ns, levels + 1), np.int64)
    size = 0
    for s in range(ns):
        for lv in range(levels + 1):
            e = B << lv
            dims[s, lv] = (-(-(cuts[s + 1] - cuts[s]) // e), -(-ny // e), -(-nx // e))
            offs[s, lv] = size
            size += int(np.prod(dims[s, lv]))
    return slab_z, dims, offs, levels, size


@njit(parallel=True, cache=True)
def count_unfilled(nxt, slab_z, dims, offs, levels, cnt):
    """Fill ``cnt``: per slab, the unfilled voxels (``nxt[x] == x``) of every node at every level."""
    nz, ny, nx = nxt.shape
    for s in prange(len(slab_z) - 1):
        za = slab_z[s]
        o0 = offs[s, 0]
        gy = dims[s, 0, 1]
        gx = dims[s, 0, 2]
        for z in range(za, slab_z[s + 1]):
            bz = (z - za) // B
            for y in range(ny):
                row = o0 + (bz * gy + y // B) * gx
                for x in range(nx):
                    if nxt[z, y, x] == x:
                        cnt[row + x // B] += 1
        for lv in range(1, levels + 1):
            lz, ly, lx = dims[s, lv, 0], dims[s, lv, 1], dims[s, lv, 2]
            cz, cy, cx = dims[s, lv - 1, 0], dims[s, lv - 1, 1], dims[s, lv - 1, 2]
            for iz in range(lz):
                for iy in range(ly):
                    for ix in range(lx):
                        t = 0
                        for c in range(8):
                            jz = 2 * iz + (c >> 2)
                            jy = 2 * iy + ((c >> 1) & 1)
                            jx = 2 * ix + (c & 1)
                            if jz < cz and jy < cy and jx < cx:
                                t += cnt[offs[s, lv - 1] + (jz * cy + jy) * cx + jx]
                        cnt[offs[s, lv] + (iz * ly + iy) * lx + ix] = t


@njit(cache=True, inline="always")
def _node(s, lv, iz, iy, ix, dims, offs):
    return offs[s, lv] + (iz * dims[s, lv, 1] + iy) * dims[s, lv, 2] + ix


@njit(cache=True, inline="always")
def _inside_earlier(av, z0, z1, y0, y1, x0, x1, cz, cy, cx, r2, s0, s1, s2):
    """Whether the box lies in the ball of radius ``r2`` around one of the neighbours of the centre whose
    balls were filled before (bits ``av``, as ``_exact._neighbours`` sets them; such a ball is at least
    this large, so everything in it is filled)."""
    for d in range(27):
        if d == 13 or not (av >> d) & 1:
            continue
        nz = cz + d // 9 - 1
        ny_ = cy + (d // 3) % 3 - 1
        nx_ = cx + d % 3 - 1
        fz = max(abs(z0 - nz), abs(z1 - 1 - nz))  # the box's voxel farthest from the neighbour, per axis
        fy = max(abs(y0 - ny_), abs(y1 - 1 - ny_))
        fx = max(abs(x0 - nx_), abs(x1 - 1 - nx_))
        if d2(fz, fy, fx, s0, s1, s2) <= r2:
            return True
    return False


@njit(cache=True)
def fill_ball(nxt, out, s, za, zb, cz, cy, cx, r2, ez, ey, val, s0, s1, s2, av, cnt, dims, offs, levels, stack,
              ny, nx):
    """Fill one ball (centre ``cz, cy, cx``, squared radius ``r2``, at most ``ez``/``ey`` rows from the
    centre) into slab ``s`` (planes ``za .. zb - 1``) through the counts (see the module docstring).
    Nodes inside the ball of an earlier-filled neighbour (bits ``av``) are filled already and skipped, so
    a ball visits the shell its neighbours do not cover. ``stack``: an (at least 8 * levels + 8, 4)
    int64 work array."""
    sp = 1
    stack[0, 0] = levels
    stack[0, 1] = 0
    stack[0, 2] = 0
    stack[0, 3] = 0
    while sp > 0:
        sp -= 1
        lv, iz, iy, ix = stack[sp, 0], stack[sp, 1], stack[sp, 2], stack[sp, 3]
        if cnt[_node(s, lv, iz, iy, ix, dims, offs)] <= 0:
            continue  # nothing unfilled here
        e = B << lv
        z0 = za + iz * e
        z1 = min(z0 + e, zb)
        y0 = iy * e
        y1 = min(y0 + e, ny)
        x0 = ix * e
        x1 = min(x0 + e, nx)
        qz = min(max(cz, z0), z1 - 1)  # the node's voxel nearest to the centre
        qy = min(max(cy, y0), y1 - 1)
        qx = min(max(cx, x0), x1 - 1)
        if d2(qz - cz, qy - cy, qx - cx, s0, s1, s2) > r2:
            continue  # no voxel of the ball here
        if av != 0 and _inside_earlier(av, z0, z1, y0, y1, x0, x1, cz, cy, cx, r2, s0, s1, s2):
            continue  # filled by a neighbour's ball
        if lv > 0:
            for c in range(8):
                jz = 2 * iz + (c >> 2)
                jy = 2 * iy + ((c >> 1) & 1)
                jx = 2 * ix + (c & 1)
                if jz < dims[s, lv - 1, 0] and jy < dims[s, lv - 1, 1] and jx < dims[s, lv - 1, 2]:
                    stack[sp, 0] = lv - 1
                    stack[sp, 1] = jz
                    stack[sp, 2] = jy
                    stack[sp, 3] = jx
                    sp += 1
            continue
        filled = 0
        for z in range(max(z0, cz - ez), min(z1, cz + ez + 1)):
            for y in range(max(y0, cy - ey), min(y1, cy + ey + 1)):
                o = (z * ny + y) * nx
                if nxt[o + x0] >= x1:
                    continue  # the row has no unfilled voxel in this block (one look-up, no square root)
                ww = row_width(abs(z - cz), abs(y - cy), r2, s0, s1, s2)
                if ww < 0:
                    continue
                a = max(x0, cx - ww)
                b = min(x1 - 1, cx + ww)
                if a <= b:
                    filled += fill_span(nxt, out, o, a, b, nx, val)
        if filled:
            for k in range(levels + 1):
                cnt[_node(s, k, iz >> k, iy >> k, ix >> k, dims, offs)] -= filled
