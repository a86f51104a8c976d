"""Counts of unfilled voxels, per block and coarser, so that a big ball skips what is already filled.

Filling balls from the largest radius down, a ball of bulk material is mostly inside balls filled before
it: visiting its ``(2r + 1)^2`` rows, even at one look-up each, is what made thick parts slow (the cost
grew with the radius cubed times the balls). Here every z-slab of the fill keeps the number of its
unfilled phase voxels per 8 x 8 x 8 block, and the sums of 2 x 2 x 2 blocks above, up to one node for
the slab, each node with the bounding box of its unfilled voxels. A big ball descends from the top node
into the nodes whose box of unfilled voxels holds a voxel of the ball (the box's voxel nearest to the
centre, by the one distance formula) and does not lie in the ball of a neighbour filled before, and fills
rows only within the boxes of the 8 x 8 x 8 blocks it reaches: a ball over filled material, or beside
unfilled voxels it cannot reach (most balls: on a cast part with pores, 96 % of the balls write nothing),
costs a few look-ups.

Exactness: a node is skipped only when no unfilled voxel of it can be in the ball, and the rows of a block
are filled as everywhere else (only unfilled phase voxels within the ball's row widths are written), so the
values are those of the row-by-row fill. Counts and boxes shrink only by the voxels written through here;
voxels written by the other paths leave them too large, which costs time, never a voxel.
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
    in one flat array of nodes (counts; boxes: ``(size, 6)``): ``(slab_z, dims, offs, levels, size)``."""
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


@njit(cache=True, inline="always")
def _empty(box, i):
    box[i, 0] = box[i, 2] = box[i, 4] = 2 ** 30
    box[i, 1] = box[i, 3] = box[i, 5] = -1


@njit(cache=True, inline="always")
def _grow(box, i, z, y, x0, x1):
    """Widen box ``i`` (inclusive bounds) to hold voxels ``x0..x1`` of row ``(z, y)``."""
    box[i, 0] = min(box[i, 0], z)
    box[i, 1] = max(box[i, 1], z)
    box[i, 2] = min(box[i, 2], y)
    box[i, 3] = max(box[i, 3], y)
    box[i, 4] = min(box[i, 4], x0)
    box[i, 5] = max(box[i, 5], x1)


@njit(cache=True)
def _up(s, lv, iz, iy, ix, cnt, box, dims, offs):
    """Count and box of node ``(lv, iz, iy, ix)`` from its children's."""
    i = _node(s, lv, iz, iy, ix, dims, offs)
    t = 0
    _empty(box, i)
    for c in range(8):
        jz = 2 * iz + (c >> 2)
        jy = 2 * iy + ((c >> 1) & 1)
        jx = 2 * ix + (c & 1)
        if jz < dims[s, lv - 1, 0] and jy < dims[s, lv - 1, 1] and jx < dims[s, lv - 1, 2]:
            j = _node(s, lv - 1, jz, jy, jx, dims, offs)
            if cnt[j] > 0:
                t += cnt[j]
                _grow(box, i, box[j, 0], box[j, 2], box[j, 4], box[j, 5])
                _grow(box, i, box[j, 1], box[j, 3], box[j, 4], box[j, 5])
    cnt[i] = t


@njit(cache=True)
def _leaf(nxt, s, za, zb, iz, iy, ix, cnt, box, dims, offs, ny, nx):
    """Count and box of the unfilled voxels (``nxt[x] == x``) of a finest block, from the rows' pointers."""
    i = _node(s, 0, iz, iy, ix, dims, offs)
    _empty(box, i)
    n = 0
    x0 = ix * B
    x1 = min(x0 + B, nx)
    for z in range(za + iz * B, min(za + (iz + 1) * B, zb)):
        for y in range(iy * B, min((iy + 1) * B, ny)):
            o = (z * ny + y) * nx
            x = x0
            first = -1
            last = -1
            while x < x1:
                q = nxt[o + x]
                if q == x:
                    if first < 0:
                        first = x
                    last = x
                    n += 1
                    x += 1
                else:
                    x = q
            if first >= 0:
                _grow(box, i, z, y, first, last)
    cnt[i] = n


@njit(parallel=True, cache=True)
def count_unfilled(nxt, ny, nx, slab_z, dims, offs, levels, cnt, box):
    """Fill ``cnt`` and ``box``: per slab, the unfilled voxels of every node at every level, and their
    bounding box (inclusive; empty where there is none). ``nxt``: the rows' pointers, flat."""
    for s in prange(len(slab_z) - 1):
        za = slab_z[s]
        zb = slab_z[s + 1]
        for iz in range(dims[s, 0, 0]):
            for iy in range(dims[s, 0, 1]):
                for ix in range(dims[s, 0, 2]):
                    _leaf(nxt, s, za, zb, iz, iy, ix, cnt, box, dims, offs, ny, nx)
        for lv in range(1, levels + 1):
            for iz in range(dims[s, lv, 0]):
                for iy in range(dims[s, lv, 1]):
                    for ix in range(dims[s, lv, 2]):
                        _up(s, lv, iz, iy, ix, cnt, box, dims, offs)


@njit(cache=True, inline="always")
def _node(s, lv, iz, iy, ix, dims, offs):
    return offs[s, lv] + (iz * dims[s, lv, 1] + iy) * dims[s, lv, 2] + ix


@njit(cache=True, inline="always")
def _inside_earlier(av, z0, z1, y0, y1, x0, x1, cz, cy, cx, r2, s0, s1, s2):
    """Whether the box (inclusive bounds) lies in the ball of radius ``r2`` around one of the neighbours of
    the centre whose balls were filled before (bits ``av``, as ``_exact._neighbours`` sets them; such a
    ball is at least this large, so everything in it is filled)."""
    for d in range(27):
        if d == 13 or not (av >> d) & 1:
            continue
        nz = cz + d // 9 - 1
        ny_ = cy + (d // 3) % 3 - 1
        nx_ = cx + d % 3 - 1
        fz = max(abs(z0 - nz), abs(z1 - nz))  # the box's voxel farthest from the neighbour, per axis
        fy = max(abs(y0 - ny_), abs(y1 - ny_))
        fx = max(abs(x0 - nx_), abs(x1 - nx_))
        if d2(fz, fy, fx, s0, s1, s2) <= r2:
            return True
    return False


@njit(cache=True)
def fill_ball(nxt, out, s, za, zb, cz, cy, cx, r2, ez, ey, val, s0, s1, s2, av, cnt, box, dims, offs, levels,
              stack, ny, nx):
    """Fill one ball (centre ``cz, cy, cx``, squared radius ``r2``, at most ``ez``/``ey`` rows from the
    centre) into slab ``s`` (planes ``za .. zb - 1``) through the counts and boxes (see the module
    docstring). A node is visited when its box of unfilled voxels holds a voxel of the ball and does not lie
    in the ball of an earlier-filled neighbour (bits ``av``). ``stack``: an (at least 8 * levels + 8, 4)
    int64 work array."""
    # start at the finest level whose nodes are as wide as the ball: at most 2 x 2 x 2 of them hold it,
    # and the levels above (the same for every ball) are not descended again
    ex = int(math.sqrt(r2) / s2)
    top = 0
    while top < levels and (B << top) < 2 * max(ez, ey, ex) + 1:
        top += 1
    w = B << top
    sp = 0
    for iz in range((max(za, cz - ez) - za) // w, (min(zb - 1, cz + ez) - za) // w + 1):
        for iy in range(max(0, cy - ey) // w, min(ny - 1, cy + ey) // w + 1):
            for ix in range(max(0, cx - ex) // w, min(nx - 1, cx + ex) // w + 1):
                stack[sp, 0] = top
                stack[sp, 1] = iz
                stack[sp, 2] = iy
                stack[sp, 3] = ix
                sp += 1
    while sp > 0:
        sp -= 1
        lv, iz, iy, ix = stack[sp, 0], stack[sp, 1], stack[sp, 2], stack[sp, 3]
        i = _node(s, lv, iz, iy, ix, dims, offs)
        if cnt[i] <= 0:
            continue  # nothing unfilled here
        z0, z1, y0, y1, x0, x1 = box[i, 0], box[i, 1], box[i, 2], box[i, 3], box[i, 4], box[i, 5]
        qz = min(max(cz, z0), z1)  # the box's voxel nearest to the centre
        qy = min(max(cy, y0), y1)
        qx = min(max(cx, x0), x1)
        if d2(qz - cz, qy - cy, qx - cx, s0, s1, s2) > r2:
            continue  # no unfilled voxel in reach
        if av != 0 and _inside_earlier(av, z0, z1, y0, y1, x0, x1, cz, cy, cx, r2, s0, s1, s2):
            continue  # filled by a neighbour's ball (the box is stale: it only looks unfilled)
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
        gx = max(x0 - cx, 0, cx - x1)  # the box's x nearest to the centre
        for z in range(max(z0, cz - ez), min(z1, cz + ez) + 1):
            for y in range(max(y0, cy - ey), min(y1, cy + ey) + 1):
                if d2(z - cz, y - cy, gx, s0, s1, s2) > r2:
                    continue  # the ball's row misses the box (no look-up)
                o = (z * ny + y) * nx
                if nxt[o + x0] > x1:
                    continue  # the row has no unfilled voxel in this box (one look-up, no square root)
                ww = row_width(abs(z - cz), abs(y - cy), r2, s0, s1, s2)
                if ww < 0:
                    continue
                a = max(x0, cx - ww)
                b = min(x1, cx + ww)
                if a <= b:
                    filled += fill_span(nxt, out, o, a, b, nx, val)
        if filled:  # this block's count and box afresh, then its ancestors'
            _leaf(nxt, s, za, zb, iz, iy, ix, cnt, box, dims, offs, ny, nx)
            for k in range(1, levels + 1):
                _up(s, k, iz >> k, iy >> k, ix >> k, cnt, box, dims, offs)
