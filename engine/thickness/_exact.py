"""Local thickness (Hildebrand & Rüegsegger 1997), exact and anisotropic.

(Over 400 lines on purpose: one algorithm whose compiled kernels share data layouts and invariants;
split, each part would be unreadable without the others.)

Definition
----------
For a phase (a boolean mask) on a grid with voxel spacing ``s = (s0, s1, s2)``:

- ``r(x)`` is the Euclidean distance, in physical units, from the centre of phase voxel ``x`` to the
  centre of the nearest voxel outside the phase: ``min |x - b|`` over background voxels ``b``, with
  ``|d|^2 = (d0 s0)^2 + ((d1 s1)^2 + (d2 s2)^2)``.
- The thickness at a phase voxel ``y`` is ``2 * max{ r(x) : x in the phase, |y - x| <= r(x) }``, the
  diameter of the largest ball centred in the phase that contains ``y`` (the BoneJ convention). Voxels
  outside the phase get 0 (or NaN).
- By default the space beyond the image is not background, as in BoneJ and
  ``scipy.ndimage.distance_transform_edt``; ``border=True`` treats the image border as background.

How
---
1. An exact Euclidean distance transform, separable (Felzenszwalb & Huttenlocher 2012): a sweep along x,
   then lower envelopes of parabolas along y and z (16 lines at a time, so memory is read in runs). It
   keeps, for every voxel, the integer offset to its nearest background voxel (int16 per axis, no float
   volume), so every squared distance is computed from integer offsets by the one formula above, the
   same arithmetic as the definition, and ties are decided alike.
2. Levels: the distinct squared radii, largest first; each phase voxel gets its level (int32).
3. The distance ridge: a voxel whose ball's lattice points all lie in one of its 26 neighbours' balls
   cannot change any maximum and is dropped. Per level and neighbour direction, the squared radius the
   neighbour needs is computed once by scanning the ball (the triangle inequality, which is sufficient,
   for very large balls), so the test is one comparison of levels per neighbour.
4. Balls are filled from the largest radius down, writing only voxels not covered yet: the first ball
   to reach a voxel is the largest. Each row keeps pointers to its next unfilled voxel (union-find), so a
   filled row costs one look-up. Rows that lie inside the ball of a neighbour filled earlier are never
   visited: the balls of one radius whose earlier neighbours cover the same rows share one list of the
   rows left (about 11 % of the rows the balls span on porous volumes). Filling runs in parallel over z-slabs.
   Big balls descend counts of unfilled voxels (:mod:`._pyramid`); now and then, between chunks of balls,
   a distance transform of the unfilled voxels lets each ball that reaches none be passed over at once
   (:mod:`._reach`: on a thick part most balls write nothing).

Memory: about 11 bytes per voxel at the peak (offsets, levels, mask), 7 while filling (output, row
pointers, mask) plus the ball centres and up to half a row-list entry (2 bytes) a voxel; no float64
volume. Arrays up to 64 M voxels take snapshots of :mod:`._reach` while filling: 11 bytes a voxel more
while one is taken, 4 of them kept.

The kernels are compiled with numba (cached on disk after the first use).
"""

from __future__ import annotations

import math
import time

import numba
import numpy as np
from numba import njit, prange

from ..core import progress
from ..core.errors import InputError, ParameterError
from . import _pyramid
from ._pyramid import fill_ball
from ._reach import Reach
from ._rows import d2, fill_row, row_width

BIG = np.int16(32767)  # "no background on this line": an offset no real one reaches
NO_LEVEL = np.int32(2 ** 31 - 1)  # the level of voxels outside the phase (larger than any real level)
DENSE_LIMIT = 64_000_000  # offset triplets looked up in a dense table (int32); beyond, a sorted one
MASK_ROWS = 4096  # balls with up to this many rows get row-cover tables (filling skips covered rows)
CHUNK_ROWS = 200_000_000  # ball rows (at most) per call of the fill kernel: Stop is honoured between calls
SLABS_PER_THREAD = 2  # z-slabs of the fill per thread (more: better balance; fewer: big balls split less)
BIG_ROWS = 1024  # balls with more rows (and no row-cover table) fill through the counts of unfilled voxels
MASK_BUDGET = 20_000_000  # row-cover table entries in all (int64 each)
EXACT_BUDGET = 50_000_000  # ball rows scanned for exact containment tests; larger balls use the triangle inequality
FILLS_ALL = ("the phase fills the whole image, so no voxel is outside it and the thickness is unbounded; use "
             "border=True to treat the image border as background")


@njit(parallel=True, cache=True)
def _sweep_x(mask, border, ox):
    """Offset (signed, in voxels) to the nearest background voxel along x, or BIG."""
    nz, ny, nx = mask.shape
    for z in prange(nz):
        for y in range(ny):
            last = -1 if border else -100000
            for x in range(nx):
                if not mask[z, y, x]:
                    last = x
                    ox[z, y, x] = 0
                else:
                    ox[z, y, x] = BIG if last == -100000 or x - last > 32000 else last - x
            nxt = nx if border else -100000
            for x in range(nx - 1, -1, -1):
                if not mask[z, y, x]:
                    nxt = x
                elif nxt != -100000 and nxt - x < 32000:
                    cur = ox[z, y, x]
                    if cur == BIG or nxt - x < -cur:
                        ox[z, y, x] = nxt - x


@njit(cache=True)
def _envelope(f, n, s, v, zb):
    """Lower envelope of parabolas ``s^2 (q - i)^2 + f[i]`` (f = inf skipped); returns the vertex per q."""
    k = -1
    s2 = s * s
    for q in range(n):
        fq = f[q]
        if fq == np.inf:
            continue
        if k < 0:
            k = 0
            v[0] = q
            zb[0] = -np.inf
            zb[1] = np.inf
            continue
        while True:
            p = v[k]
            x = ((fq + s2 * q * q) - (f[p] + s2 * p * p)) / (2.0 * s2 * (q - p))
            if x <= zb[k]:
                k -= 1
                if k < 0:
                    break
            else:
                break
        k += 1
        v[k] = q
        zb[k] = -np.inf if k == 0 else x
        zb[k + 1] = np.inf
    return k


@njit(cache=True)
def _pick(f, n, s, v, zb, k, best):
    """The envelope's vertex for every q; where neighbouring parabolas tie up to rounding, the one whose
    value, computed the canonical way, is smallest (so ties are decided as the definition decides them)."""
    j = 0
    for q in range(n):
        while zb[j + 1] < q:
            j += 1
        p = v[j]
        t = (q - p) * s
        bv = t * t + f[p]
        for jj in (j - 1, j + 1):
            if 0 <= jj <= k:
                pp = v[jj]
                t = (q - pp) * s
                val = t * t + f[pp]
                if val < bv:
                    bv = val
                    p = pp
        best[q] = p


XB = 16  # lines handled together in the y and z passes, so that memory is read in runs, not one voxel a line


@njit(cache=True)
def _line(f, n, s, v, zb, best):
    """Nearest of the parabolas ``s^2 (q - i)^2 + f[i]`` for every q: its index in ``best``; False if all
    of f is inf (no background on the line)."""
    k = _envelope(f, n, s, v, zb)
    if k < 0:
        return False
    _pick(f, n, s, v, zb, k, best)
    return True


@njit(parallel=True, cache=True)
def _pass_y(oy, ox, s0, s1, s2, border):
    """Nearest background over (y, x) for every (z, x) line, from the x offsets."""
    nz, ny, nx = ox.shape
    off = 1 if border else 0
    n = ny + 2 * off
    for z in prange(nz):
        f = np.empty(n)
        v = np.empty(n, np.int64)
        zb = np.empty(n + 1)
        best = np.empty(n, np.int64)
        lx = np.zeros((XB, n), np.int16)  # border ends stay 0: the frame is background
        ry = np.empty((XB, ny), np.int16)
        rx = np.empty((XB, ny), np.int16)
        for x0 in range(0, nx, XB):
            m = min(XB, nx - x0)
            for y in range(ny):
                for j in range(m):
                    lx[j, y + off] = ox[z, y, x0 + j]
            for j in range(m):
                for q in range(n):
                    c = lx[j, q]
                    f[q] = np.inf if c == BIG else d2(0, 0, c, s0, s1, s2)
                if not _line(f, n, s1, v, zb, best):
                    for y in range(ny):
                        ry[j, y] = BIG
                        rx[j, y] = BIG
                    continue
                for y in range(ny):
                    p = best[y + off]
                    ry[j, y] = p - (y + off)
                    rx[j, y] = lx[j, p]
            for y in range(ny):
                for j in range(m):
                    oy[z, y, x0 + j] = ry[j, y]
                    ox[z, y, x0 + j] = rx[j, y]


@njit(parallel=True, cache=True)
def _pass_z(oz, oy, ox, s0, s1, s2, border):
    """Nearest background in 3-D for every (y, x) line along z."""
    nz, ny, nx = ox.shape
    off = 1 if border else 0
    n = nz + 2 * off
    for y in prange(ny):
        f = np.empty(n)
        v = np.empty(n, np.int64)
        zb = np.empty(n + 1)
        best = np.empty(n, np.int64)
        ly = np.zeros((XB, n), np.int16)
        lx = np.zeros((XB, n), np.int16)
        rz = np.empty((XB, nz), np.int16)
        ry = np.empty((XB, nz), np.int16)
        rx = np.empty((XB, nz), np.int16)
        for x0 in range(0, nx, XB):
            m = min(XB, nx - x0)
            for z in range(nz):
                for j in range(m):
                    ly[j, z + off] = oy[z, y, x0 + j]
                    lx[j, z + off] = ox[z, y, x0 + j]
            for j in range(m):
                for q in range(n):
                    cy = ly[j, q]
                    f[q] = np.inf if cy == BIG else d2(0, cy, lx[j, q], s0, s1, s2)
                if not _line(f, n, s0, v, zb, best):
                    for z in range(nz):
                        rz[j, z] = BIG
                    continue
                for z in range(nz):
                    p = best[z + off]
                    rz[j, z] = p - (z + off)
                    ry[j, z] = ly[j, p]
                    rx[j, z] = lx[j, p]
            for z in range(nz):
                for j in range(m):
                    oz[z, y, x0 + j] = rz[j, z]
                    if rz[j, z] != BIG:
                        oy[z, y, x0 + j] = ry[j, z]
                        ox[z, y, x0 + j] = rx[j, z]


@njit(parallel=True, cache=True)
def _offset_codes(mask, oz, oy, ox, k1, k2, present, codes):
    """Each phase voxel's ``(|dz|, |dy|, |dx|)`` as one code ``(|dz| k1 + |dy|) k2 + |dx|`` in ``codes``
    (-1 outside the phase), and ``present[code] = True`` for the codes that occur."""
    nz, ny, nx = mask.shape
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    c = (abs(oz[z, y, x]) * k1 + abs(oy[z, y, x])) * k2 + abs(ox[z, y, x])
                    codes[z, y, x] = c
                    present[c] = True
                else:
                    codes[z, y, x] = -1


@njit(parallel=True, cache=True)
def _max_offsets(mask, oz, oy, ox):
    """The largest |offset| per axis over the phase."""
    nz = mask.shape[0]
    per = np.zeros((nz, 3), np.int64)
    for z in prange(nz):
        for y in range(mask.shape[1]):
            for x in range(mask.shape[2]):
                if mask[z, y, x]:
                    per[z, 0] = max(per[z, 0], abs(oz[z, y, x]))
                    per[z, 1] = max(per[z, 1], abs(oy[z, y, x]))
                    per[z, 2] = max(per[z, 2], abs(ox[z, y, x]))
    res = np.zeros(3, np.int64)
    for z in range(nz):
        for k in range(3):
            res[k] = max(res[k], per[z, k])
    return res


@njit(parallel=True, cache=True)
def _codes_to_levels(lev, code2lev):
    """In place: each code its level, -1 (outside the phase) NO_LEVEL."""
    nz, ny, nx = lev.shape
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                c = lev[z, y, x]
                lev[z, y, x] = NO_LEVEL if c < 0 else code2lev[c]


def codes_to_levels(lev, present, k, spacing) -> np.ndarray:
    """Turn ``lev``, holding the offset codes of :func:`_offset_codes` (strides ``k[1]``, ``k[2]``), into
    levels in place; ``present`` marks the codes that occur. Returns the distinct squared radii, largest
    first (level ``i`` is ``r2s[i]``)."""
    codes = np.flatnonzero(present)
    r2s, inverse = radii_of(codes, k, spacing)
    code2lev = np.zeros(len(present), np.int32)
    code2lev[codes] = inverse
    _codes_to_levels(lev, code2lev)
    return r2s


@njit(parallel=True, cache=True)
def _containment_needs(r2s, exact, s0, s1, s2):
    """For the ball of every level and each neighbour direction class k (which of z, y, x move), the
    squared radius a neighbour's ball needs to contain it. Exact (``max |y - e|^2`` over the ball's
    lattice points, signs do not matter as the ball is symmetric) for the first ``exact`` levels counted
    from the smallest ball; for the larger rest, the triangle inequality (sufficient, so still exact in
    effect, only fewer balls are dropped)."""
    nl = r2s.shape[0]
    need = np.empty((nl, 8))
    for li in prange(nl):
        r2 = r2s[li]
        r = math.sqrt(r2)
        if nl - li > exact:
            for k in range(1, 8):
                step = math.sqrt(d2((k >> 2) & 1, (k >> 1) & 1, k & 1, s0, s1, s2))
                need[li, k] = (r + step) ** 2 * (1.0 + 1e-12)
            need[li, 0] = np.inf
            continue
        best = np.zeros(8)
        ez = int(r / s0)
        ey = int(r / s1)
        for dz in range(-ez, ez + 1):
            for dy in range(-ey, ey + 1):
                ex = row_width(dz, dy, r2, s0, s1, s2)
                if ex < 0:
                    continue
                for k in range(1, 8):
                    val = d2(dz - ((k >> 2) & 1), dy - ((k >> 1) & 1), -ex - (k & 1), s0, s1, s2)
                    if val > best[k]:
                        best[k] = val
        best[0] = np.inf
        for k in range(8):
            need[li, k] = best[k]
    return need


@njit(cache=True, inline="always")
def _neighbours(lev, z, y, x, L, thr, ridge):
    """Look at the 26 neighbours of a phase voxel of level L. ``ridge``: -1 if one neighbour's ball
    contains this voxel's (``lev[n] <= thr[L, k]``, k = which of z, y, x move), else 0. Otherwise: the
    bits (dz+1)*9 + (dy+1)*3 + dx+1 of the neighbours whose balls are filled before this one's: a larger
    radius, or the same one and earlier in raster order (a neighbour's ball, kept or not, lies in kept
    balls at least as large, which come first)."""
    nz, ny, nx = lev.shape
    bits = 0
    for dz in range(-1, 2):
        zz = z + dz
        if zz < 0 or zz >= nz:
            continue
        for dy in range(-1, 2):
            yy = y + dy
            if yy < 0 or yy >= ny:
                continue
            for dx in range(-1, 2):
                xx = x + dx
                if xx < 0 or xx >= nx:
                    continue
                ln = lev[zz, yy, xx]
                if ridge:
                    if ln <= thr[L, (abs(dz) << 2) | (abs(dy) << 1) | abs(dx)]:
                        return -1
                else:
                    d = (dz + 1) * 9 + (dy + 1) * 3 + dx + 1
                    if ln < L or (ln == L and d < 13):
                        bits |= 1 << d
    return bits


@njit(parallel=True, cache=True)
def _ridge(lev, thr, keep):
    """Mark the phase voxels whose ball is not inside one neighbour's ball; returns how many per z-plane."""
    nz, ny, nx = lev.shape
    counts = np.zeros(nz, np.int64)
    for z in prange(nz):
        c = 0
        for y in range(ny):
            for x in range(nx):
                L = lev[z, y, x]
                keep[z, y, x] = L != NO_LEVEL and _neighbours(lev, z, y, x, L, thr, True) == 0
                c += keep[z, y, x]
        counts[z] = c
    return counts


@njit(parallel=True, cache=True)
def _drop_unreaching(keep, lev, r2s, lo, hi, s0, s1, s2):
    """Unmark the kept voxels whose ball does not reach the box ``lo..hi`` (inclusive voxel corners)."""
    nz, ny, nx = keep.shape
    for z in prange(nz):
        dz = max(lo[0] - z, 0, z - hi[0]) * s0
        for y in range(ny):
            dy = max(lo[1] - y, 0, y - hi[1]) * s1
            for x in range(nx):
                if keep[z, y, x]:
                    dx = max(lo[2] - x, 0, x - hi[2]) * s2
                    if dz * dz + (dy * dy + dx * dx) > r2s[lev[z, y, x]]:
                        keep[z, y, x] = False


@njit(parallel=True, cache=True)
def _collect(keep, lev, thr, nlevels, nchunks, pz, py, px, pl, pa):
    """The kept voxels sorted by level (largest ball first), in raster order within a level, with the
    neighbours whose balls are filled before theirs (see _neighbours). A counting sort, in parallel over
    chunks of z-planes."""
    nz, ny, nx = keep.shape
    start = np.zeros((nchunks, nlevels), np.int64)
    for c in prange(nchunks):
        for z in range(c * nz // nchunks, (c + 1) * nz // nchunks):
            for y in range(ny):
                for x in range(nx):
                    if keep[z, y, x]:
                        start[c, lev[z, y, x]] += 1
    total = 0
    for L in range(nlevels):
        for c in range(nchunks):
            k = start[c, L]
            start[c, L] = total
            total += k
    for c in prange(nchunks):
        for z in range(c * nz // nchunks, (c + 1) * nz // nchunks):
            for y in range(ny):
                for x in range(nx):
                    if keep[z, y, x]:
                        L = lev[z, y, x]
                        i = start[c, L]
                        start[c, L] = i + 1
                        pz[i] = z
                        py[i] = y
                        px[i] = x
                        pl[i] = L
                        pa[i] = _neighbours(lev, z, y, x, L, thr, False)


@njit(parallel=True, cache=True)
def _cover_masks(r2s, s0, s1, s2, moff, masks):
    """For every level with a table (``moff >= 0``) and every row (dz, dy) of its ball: the neighbour
    directions (bits as in _collect) whose equally large ball contains that whole row. A neighbour's
    ball filled before is at least that large, so such a row has nothing left to fill."""
    for L in prange(r2s.shape[0]):
        o = moff[L]
        if o < 0:
            continue
        r2 = r2s[L]
        r = math.sqrt(r2)
        ez = int(r / s0)
        ey = int(r / s1)
        wy = 2 * ey + 1
        for dz in range(-ez, ez + 1):
            for dy in range(-ey, ey + 1):
                w = row_width(dz, dy, r2, s0, s1, s2)
                bits = -1  # a row the ball does not have: "covered" by anything
                if w >= 0:
                    bits = 0
                    for d in range(27):
                        ez_ = d // 9 - 1
                        ey_ = (d // 3) % 3 - 1
                        ex_ = d % 3 - 1
                        if d == 13 or abs(dz - ez_) > ez or abs(dy - ey_) > ey:
                            continue
                        if row_width(dz - ez_, dy - ey_, r2, s0, s1, s2) >= w + abs(ex_):
                            bits |= 1 << d
                masks[o + (dz + ez) * wy + dy + ey] = bits


@njit(parallel=True, cache=True)
def _init_next(mask, nxt):
    """Per row, the x of the first phase voxel at or after each x (nx if none): the rows' pointers to
    their next unfilled voxel while filling."""
    nz, ny, nx = mask.shape
    for z in prange(nz):
        for y in range(ny):
            j = nx
            for x in range(nx - 1, -1, -1):
                if mask[z, y, x]:
                    j = x
                nxt[z, y, x] = j


KEYS = 3 ** 8  # the earlier-neighbour sets that differ for row cover (see _cover_key)
KEY_BUDGET = 4_000_000  # (level, key) table entries (int32 each) for sharing row lists between balls
LIST_ROWS = 4_000_000  # rows in the shared lists (int32 each), at least; LIST_SHARE rows a voxel where more
LIST_SHARE = 0.5


@njit(cache=True, inline="always")
def _cover_key(av):
    """The earlier-neighbour bits ``av`` reduced to what decides which rows they cover: per in-plane
    direction (dz, dy) != (0, 0), 2 if the neighbour straight there (dx = 0) is in ``av``, 1 if only a
    diagonal one (dx = +-1, which covers a subset of the same rows, and the same for both signs), else 0."""
    key = 0
    mul = 1
    for d in range(9):
        if d == 4:
            continue
        b = d * 3
        if (av >> (b + 1)) & 1:
            key += 2 * mul
        elif ((av >> b) & 1) | ((av >> (b + 2)) & 1):
            key += mul
        mul *= 3
    return key


@njit(cache=True, inline="always")
def _key_bits(key):
    """Neighbour bits that cover exactly the rows that the sets with :func:`_cover_key` ``key`` cover."""
    av = 0
    for d in range(9):
        if d == 4:
            continue
        t = key % 3
        key //= 3
        b = d * 3
        if t == 2:
            av |= 1 << (b + 1)
        elif t == 1:
            av |= (1 << b) | (1 << (b + 2))
    return av


@njit(cache=True)
def _list_ids(pl, pa, slot, tab, pid, plev, pkey):
    """Give every ball whose level has a key table (``slot >= 0``) the id of its (level, cover key) pair,
    numbered in order of first use (``plev``, ``pkey``: each id's pair); -1 for the others. Returns the
    number of ids."""
    n = 0
    for i in range(pl.shape[0]):
        s = slot[pl[i]]
        if s < 0:
            pid[i] = -1
            continue
        key = _cover_key(pa[i])
        t = s * KEYS + key
        p = tab[t]
        if p < 0:
            p = n
            tab[t] = p
            plev[p] = pl[i]
            pkey[p] = key
            n += 1
        pid[i] = p
    return n


@njit(parallel=True, cache=True)
def _uncovered_rows(plev, pkey, r2s, moff, masks, s0, s1, s2, start, rows, count):
    """For every (level, cover key) pair: the rows (dz, dy) of the ball that no earlier neighbour covers,
    packed as ``(dz + ez) << 16 | (dy + ey)`` in ``rows[start[p]:start[p + 1]]``, in increasing dz; with
    ``count``, only their number, into ``start[p]``."""
    for p in prange(plev.shape[0]):
        L = plev[p]
        r2 = r2s[L]
        r = math.sqrt(r2)
        ez = int(r / s0)
        ey = int(r / s1)
        wy = 2 * ey + 1
        mo = moff[L]
        av = _key_bits(pkey[p])
        n = (2 * ez + 1) * wy
        if count:  # a row the ball lacks has mask -1 (see _cover_masks)
            c = 0
            for j in range(n):
                m = masks[mo + j]
                c += ((m & av) == 0) & (m != -1)
            start[p] = c
            continue
        o = start[p]
        for j in range(n):
            m = masks[mo + j]
            if (m & av) == 0 and m != -1:
                rows[o] = ((j // wy) << 16) | (j % wy)
                o += 1


@njit(parallel=True, cache=True)
def _fill(nxt, out, pz, py, px, pl, pa, live, pid, start, rows, r2s, moff, masks, s0, s1, s2, unit, slab_z, wmax,
          nz, ny, nx, big, cnt, box, dims, offs, levels):
    """Fill the balls (sorted by decreasing radius) into the flat ``out``, in parallel over z-slabs.

    The first ball to reach a voxel is the largest, so only unfilled voxels are written (balls not ``live``
    reach none: see :mod:`._reach`). Every row keeps
    pointers to its next unfilled phase voxel (a union-find with path compression, in ``nxt``), so a
    row of a ball costs one look-up when it is already filled, whatever its length. Rows inside the
    ball of a neighbour filled before are never visited: a ball with a row list (``pid >= 0``, see
    :func:`_uncovered_rows`) visits only its listed rows; the others test each row against ``masks``,
    except the balls of the levels marked ``big``, which descend the counts of unfilled voxels
    (:mod:`._pyramid`: ``cnt``, ``box``, ``dims``, ``offs``, ``levels``) into the blocks they can still fill.
    Values are diameters times ``unit``; slab ``s`` is planes ``slab_z[s] .. slab_z[s + 1] - 1``."""
    for sl in prange(len(slab_z) - 1):
        za = slab_z[sl]
        zb = slab_z[sl + 1]
        w = np.empty(wmax, np.int32)
        stack = np.empty((8 * levels + 16, 4), np.int64)
        cur = -1
        ez = 0
        ey = 0
        mo = -1
        val = np.float32(0.0)
        for i in range(pz.shape[0]):
            L = pl[i]
            if L != cur:  # a new radius: its row half-widths, once per thread and level
                cur = L
                r2 = r2s[L]
                r = math.sqrt(r2)
                ez = int(r / s0)
                ey = int(r / s1)
                val = np.float32(2.0 * r * unit)
                mo = moff[L]
                if not big[L]:  # (a big ball computes the widths of the rows it visits only)
                    for dz in range(ez + 1):
                        for dy in range(ey + 1):
                            w[dz * (ey + 1) + dy] = row_width(dz, dy, r2, s0, s1, s2)
            cz = pz[i]
            if cz + ez < za or cz - ez >= zb or not live[i]:
                continue
            cy = py[i]
            cx = px[i]
            if big[L]:
                fill_ball(nxt, out, sl, za, zb, cz, cy, cx, r2, ez, ey, val, s0, s1, s2, pa[i], cnt, box, dims,
                          offs, levels, stack, ny, nx)
                continue
            p = pid[i]
            if p >= 0:
                for k in range(start[p], start[p + 1]):
                    z = cz + (rows[k] >> 16) - ez
                    if z < za:
                        continue
                    if z >= zb:
                        break
                    dy = (rows[k] & 0xFFFF) - ey
                    y = cy + dy
                    if 0 <= y < ny:
                        fill_row(nxt, out, (z * ny + y) * nx, cx, w[abs(z - cz) * (ey + 1) + abs(dy)], nx, val)
                continue
            av = pa[i] if mo >= 0 else 0
            for z in range(max(za, cz - ez), min(zb, cz + ez + 1)):
                base = abs(z - cz) * (ey + 1)
                mrow = mo + (z - cz + ez) * (2 * ey + 1) + ey - cy
                for y in range(max(0, cy - ey), min(ny, cy + ey + 1)):
                    ww = w[base + abs(y - cy)]
                    if ww < 0 or (av != 0 and (av & masks[mrow + y]) != 0):
                        continue
                    fill_row(nxt, out, (z * ny + y) * nx, cx, ww, nx, val)


def _row_lists(pl, pa, r2s, moff, masks, sp, budget):
    """Share the list of rows to visit between the balls of one level whose earlier neighbours cover the
    same rows: ``(pid, start, rows)`` for :func:`_fill`, with up to ``budget`` rows in all. On 256^3 blobs,
    2.5 M balls share 0.15 M lists (4.7 M rows), and the balls visit 11 % of the rows they span."""
    slot = np.full(len(r2s), -1, np.int64)
    tabled = np.flatnonzero(moff >= 0)[::-1][:KEY_BUDGET // KEYS]  # the smallest (most numerous) balls first
    slot[tabled] = np.arange(len(tabled))
    tab = np.full(len(tabled) * KEYS, -1, np.int32)
    pid = np.empty(len(pl), np.int32)
    plev = np.empty(min(len(pl), len(tab)), np.int32)
    pkey = np.empty(len(plev), np.int32)
    n = _list_ids(pl, pa, slot, tab, pid, plev, pkey)
    del tab
    plev, pkey = plev[:n].copy(), pkey[:n].copy()
    start = np.zeros(n + 1, np.int64)
    _uncovered_rows(plev, pkey, r2s, moff, masks, *sp, start[1:], start, True)
    np.cumsum(start, out=start)
    if start[-1] > budget:  # the lists past the budget are not made: their balls test each row
        n = int(np.searchsorted(start, budget, side="right")) - 1
        plev, pkey, start = plev[:n], pkey[:n], start[:n + 1]
        pid[pid >= n] = -1
    rows = np.empty(int(start[-1]), np.int32)
    _uncovered_rows(plev, pkey, r2s, moff, masks, *sp, start, rows, False)
    return pid, start, rows


def distance_offsets(mask: np.ndarray, spacing=(1.0, 1.0, 1.0), border: bool = False):
    """Integer offsets (dz, dy, dx) from every voxel to its nearest background voxel (int16 each)."""
    oy, ox = offsets_in_planes(mask, spacing, border)
    return offsets_along_z(oy, ox, spacing, border), oy, ox


def offsets_in_planes(mask: np.ndarray, spacing, border: bool = False):
    """The first two passes (x, then y): per z-plane, the offsets ``(oy, ox)`` to the nearest background
    voxel in that plane. Planes are independent, so a slab of them can be done at a time."""
    s0, s1, s2 = (float(v) for v in spacing)
    ox = np.empty(mask.shape, np.int16)
    _sweep_x(mask, border, ox)
    oy = np.empty(mask.shape, np.int16)
    _pass_y(oy, ox, s0, s1, s2, border)
    return oy, ox


def offsets_along_z(oy: np.ndarray, ox: np.ndarray, spacing, border: bool = False) -> np.ndarray:
    """The last pass, along z, from :func:`offsets_in_planes`: returns ``oz`` and updates ``oy``, ``ox`` in
    place to the nearest background in 3-D. z-columns are independent, so a slab of y-rows (whole
    columns) can be done at a time."""
    s0, s1, s2 = (float(v) for v in spacing)
    oz = np.empty(ox.shape, np.int16)
    _pass_z(oz, oy, ox, s0, s1, s2, border)
    return oz


def _levels(mask, spacing, border, offsets=None):
    """The distance transform as levels: ``lev`` (int32 per voxel, NO_LEVEL outside the phase) indexes
    ``r2s``, the distinct squared radii, largest first. ``offsets``: a list holding those of
    :func:`distance_offsets` if already computed; it is emptied, so their memory goes with this call."""
    oz, oy, ox = offsets.pop() if offsets else distance_offsets(mask, spacing, border)
    shape = tuple(int(v) + 1 for v in _max_offsets(mask, oz, oy, ox))
    lev = np.empty(mask.shape, np.int32)
    if np.prod(shape, dtype=np.float64) <= DENSE_LIMIT:
        present = np.zeros(math.prod(shape), np.bool_)
        _offset_codes(mask, oz, oy, ox, shape[1], shape[2], present, lev)
        return lev, codes_to_levels(lev, present, shape, spacing)
    # huge radii: the offsets that occur, from the phase itself (slower, same result)
    code = ((np.abs(oz).astype(np.int64) * shape[1] + np.abs(oy)) * shape[2] + np.abs(ox))[mask]
    codes = np.unique(code)
    r2s, inverse = radii_of(codes, shape, spacing)
    lev[...] = NO_LEVEL
    lev[mask] = inverse[np.searchsorted(codes, code)]
    return lev, r2s


def radii_of(codes, k, spacing):
    """The distinct squared radii (largest first) of the offset codes ``(|dz| k[1] + |dy|) k[2] + |dx|`` (as
    :func:`_offset_codes` makes them), by the one formula (``_d2``), and each code's index among them."""
    a, rest = np.divmod(codes, k[1] * k[2])
    b, c = np.divmod(rest, k[2])
    s0, s1, s2 = spacing
    sa, sb, sc = a * s0, b * s1, c * s2
    r2 = sa * sa + (sb * sb + sc * sc)
    r2s, inverse = np.unique(-r2, return_inverse=True)
    return -r2s, inverse


def distance_ridge(mask: np.ndarray, spacing=(1.0, 1.0, 1.0), border: bool = False, offsets=None, core=None,
                   levels=None):
    """Centres of maximal balls, largest first: (z, y, x, level, earlier-filled neighbours) arrays, and the
    squared radius per level; with ``core`` (three slices), only the balls that reach it. ``levels``: a
    list holding ``(lev, r2s)`` as ``_levels`` makes them, if already computed; it is emptied, so their
    memory goes with this call."""
    sp = tuple(float(v) for v in spacing)
    lev, r2s = levels.pop() if levels else _levels(mask, sp, border, offsets)
    thr = containment_levels(r2s, sp)
    keep = np.empty(mask.shape, np.bool_)
    n = int(_ridge(lev, thr, keep).sum())
    if core is not None:
        lo = np.array([c.start for c in core], np.int64)
        hi = np.array([c.stop - 1 for c in core], np.int64)
        _drop_unreaching(keep, lev, r2s, lo, hi, *sp)
        n = int(np.count_nonzero(keep))
    pz, py, px, pl = (np.empty(n, np.int32) for _ in range(4))
    pa = np.empty(n, np.int32)  # 27 neighbour bits
    nchunks = max(1, min(mask.shape[0], 4 * numba.get_num_threads()))
    _collect(keep, lev, thr, len(r2s), nchunks, pz, py, px, pl, pa)
    return pz, py, px, pl, pa, r2s


def containment_levels(r2s, sp) -> np.ndarray:
    """``thr[L, k]``: a neighbour in direction class ``k`` (which of z, y, x move) contains the ball of level
    ``L`` iff its level is at most ``thr[L, k]`` (for the ridge test, :func:`_neighbours`)."""
    # exact containment for the levels whose balls are cheap enough to scan (small ones first)
    rows = np.pi * r2s[::-1] / (sp[0] * sp[1])
    exact = int(np.searchsorted(np.cumsum(rows), EXACT_BUDGET))
    need = _containment_needs(r2s, exact, *sp)
    # a neighbour contains the ball iff its squared radius >= need, i.e. its level <= thr
    asc = r2s[::-1]
    return (len(r2s) - 1 - np.searchsorted(asc, need, side="left")).astype(np.int32)


def local_thickness(mask: np.ndarray, spacing=None, border: bool = False, outside: float = 0.0) -> np.ndarray:
    """Local thickness of a phase: for every voxel, the diameter of the largest ball inside the phase
    that contains it (see the module docstring for the exact definition).

    Parameters
    ----------
    mask : ndarray of bool, 3-D (or 2-D, treated as one slice)
        The phase.
    spacing : sequence of float, optional
        Voxel size per axis (z, y, x) in physical units; default 1.
    border : bool
        Treat the space beyond the image as background (default: it is not, as in BoneJ).
    outside : float
        The value of voxels outside the phase (0, or ``nan``).

    Returns
    -------
    ndarray of float32
        Thickness in the units of ``spacing``.
    """
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ParameterError(f"local_thickness needs a boolean mask, got {mask.dtype}")
    squeeze = mask.ndim == 2
    if squeeze:
        mask = mask[None]
        spacing = (1.0, *spacing) if spacing is not None else None
    if mask.ndim != 3:
        raise ParameterError(f"local_thickness needs a 2-D or 3-D mask, got {mask.ndim}-D")
    sp = tuple(float(v) for v in (spacing if spacing is not None else (1.0, 1.0, 1.0)))
    if len(sp) != 3 or not all(math.isfinite(v) and v > 0 for v in sp):
        raise ParameterError(f"spacing must be three positive numbers, got {spacing}")
    if max(mask.shape) > 32000:
        raise ParameterError(f"volumes up to 32000 voxels per axis are supported, got {mask.shape}")
    if not mask.any():
        raise InputError("the phase is empty: no voxel to measure")
    if not border and mask.all():
        raise InputError(FILLS_ALL)
    unit, spn = normalised(sp)
    out = fill_thickness(np.ascontiguousarray(mask), spn, border, unit=unit, report=True)
    if outside != 0.0:
        out[~mask] = outside
    return out[0] if squeeze else out


def normalised(sp) -> tuple[float, tuple[float, float, float]]:
    """``(unit, spacing / unit)`` with ``unit`` the smallest spacing: distances are computed in that unit
    (so, with isotropic voxels, from integers: equal distances compare equal, whatever the spacing's
    rounding) and scaled at the end."""
    unit = min(sp)
    return unit, tuple(v / unit for v in sp)


def _only_core(nxt: np.ndarray, core, nx: int) -> None:
    """Make the row pointers of :func:`_init_next` treat every voxel outside ``core`` as filled: each
    pointer then leads to the first phase voxel at or after it inside the core (``nx`` if none)."""
    (z0, z1), (y0, y1), (x0, x1) = ((c.start, c.stop) for c in core)
    nxt[:z0] = nx
    nxt[z1:] = nx
    nxt[z0:z1, :y0] = nx
    nxt[z0:z1, y1:] = nx
    inner = nxt[z0:z1, y0:y1]
    for z in range(inner.shape[0]):  # a plane at a time: small temporaries
        p = inner[z]
        p[:, x0:x1][p[:, x0:x1] >= x1] = nx
        p[:, :x0] = p[:, x0:x0 + 1]
        p[:, x1:] = nx


def fill_thickness(mask: np.ndarray, sp, border: bool = False, offsets=None, unit: float = 1.0, core=None,
                   levels=None, report: bool = False) -> np.ndarray:
    """The thickness of a valid, contiguous 3-D mask (0 outside the phase), without checks, in multiples
    of ``unit``. ``offsets``: a list holding its :func:`distance_offsets` if already computed (emptied);
    ``core``: three slices, the only part filled (the rest stays 0); ``levels``: see
    :func:`distance_ridge`. The balls are filled by :func:`fill_balls`."""
    pz, py, px, pl, pa, r2s = distance_ridge(mask, sp, border, offsets, core, levels)
    return fill_balls(mask, sp, (pz, py, px, pl, pa), r2s, unit, core, report)


def fill_balls(mask: np.ndarray, sp, centres, r2s, unit: float = 1.0, core=None, report: bool = False) -> np.ndarray:
    """Fill the balls ``centres`` (``pz, py, px, pl, pa`` as :func:`distance_ridge` gives them, sorted by
    level; centres may lie outside the array, their balls are clipped to it) into the phase ``mask``; see
    :func:`fill_thickness`. The balls are filled in chunks of about ``CHUNK_ROWS`` rows, between which Stop
    is honoured (and, with ``report``, progress reported)."""
    pz, py, px, pl, pa = centres
    out = np.zeros(mask.shape, np.float32)
    if len(pz) == 0:
        return out
    nxt = np.empty(mask.shape, np.int16)
    _init_next(mask, nxt)
    if core is not None:  # outside the core, voxels look filled: their rows are passed over in one look-up
        _only_core(nxt, core, mask.shape[2])
    ez, ey = (np.sqrt(r2s) / sp[0]).astype(np.int64), (np.sqrt(r2s) / sp[1]).astype(np.int64)
    wmax = int((ez[pl[0]] + 1) * (ey[pl[0]] + 1))
    # row-cover tables for the levels with up to MASK_ROWS rows, within MASK_BUDGET entries in all
    rows = (2 * ez + 1) * (2 * ey + 1)
    used = np.zeros(len(r2s), bool)
    used[pl] = True  # (all levels in one piece; not all of them where blocks keep only some centres)
    rows = np.where((rows <= MASK_ROWS) & used, rows, 0)
    rows[np.cumsum(rows) > MASK_BUDGET] = 0
    moff = np.where(rows > 0, np.cumsum(rows) - rows, -1)
    masks = np.empty(int(rows.sum()), np.int64)
    _cover_masks(r2s, sp[0], sp[1], sp[2], moff, masks)
    pid, start, lists = _row_lists(pl, pa, r2s, moff, masks, sp, max(LIST_ROWS, int(LIST_SHARE * mask.size)))
    # balls without row-cover tables and with more than BIG_ROWS rows go through the counts of unfilled voxels
    big = (moff < 0) & ((2 * ez + 1) * (2 * ey + 1) > BIG_ROWS)
    slab_z, dims, offs, levels, size = _pyramid.plan(mask.shape, SLABS_PER_THREAD * max(1, numba.get_num_threads()))
    any_big = bool(big[pl].any())
    cnt = np.zeros(size if any_big else 1, np.int32)
    box = np.zeros((len(cnt), 6), np.int32)
    if any_big:
        _pyramid.count_unfilled(nxt.reshape(-1), mask.shape[1], mask.shape[2], slab_z, dims, offs, levels, cnt, box)
    else:
        big[:] = False
    cost = np.cumsum(((2 * ez + 1) * (2 * ey + 1))[pl])  # rows a ball spans, at most: its cost, roughly
    cuts = np.unique(np.concatenate([[0], np.searchsorted(cost, np.arange(CHUNK_ROWS, cost[-1], CHUNK_ROWS)), [len(pl)]]))
    task = progress.task("Filling the balls", total=len(pl)) if report else None
    reach = Reach(nxt, sp, distance_offsets)
    for a, b in zip(cuts[:-1], cuts[1:]):
        live = reach.live(pz[a:b], py[a:b], px[a:b], pl[a:b], r2s)
        t = time.perf_counter()
        _fill(nxt.reshape(-1), out.reshape(-1), pz[a:b], py[a:b], px[a:b], pl[a:b], pa[a:b], live, pid[a:b], start,
              lists, r2s, moff, masks, sp[0], sp[1], sp[2], unit, slab_z, wmax, *mask.shape, big, cnt, box, dims, offs,
              levels)
        reach.filled(time.perf_counter() - t)
        if task is not None:
            task.advance(int(b - a))  # (checks Stop)
        else:
            progress.check()
    if task is not None:
        task.finish()
    return out
