"""Local thickness (Hildebrand & Rüegsegger 1997), exact and anisotropic.

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
   then lower envelopes of parabolas along y and z. It keeps, for every voxel, the integer offset to its
   nearest background voxel (int16 per axis, no float volume), so every squared distance is computed from
   integer offsets by the one formula above — the same arithmetic as the definition, so ties are decided
   alike.
2. The distance ridge: a voxel whose ball lies inside a neighbour's ball (``r(x') >= r(x) + |x - x'|``
   for one of its 26 neighbours) cannot change any maximum and is dropped; what remains are the centres
   of maximal balls, a few per cent of the phase.
3. Balls are filled from the largest radius down, row by row (each row's extent from one square root,
   checked with the exact test), writing only voxels not covered yet: the first ball to reach a voxel is
   the largest. Filling runs in parallel over z-slabs.

The kernels are compiled with numba (cached on disk after the first use).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from .errors import InputError, ParameterError

BIG = np.int16(32767)
TABLE_LIMIT = 2_000_000  # containment table entries (x 8 float64)  # "no background on this line yet": an offset no real one reaches


@njit(cache=True, inline="always")
def _d2(d0, d1, d2, s0, s1, s2):
    a = d0 * s0
    b = d1 * s1
    c = d2 * s2
    return a * a + (b * b + c * c)


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


@njit(parallel=True, cache=True)
def _pass_y(oy, ox, s0, s1, s2, border):
    """Nearest background over (y, x) for every (z, x) line, from the x offsets."""
    nz, ny, nx = ox.shape
    for z in prange(nz):
        n = ny + 2 if border else ny
        f = np.empty(n)
        v = np.empty(n, np.int64)
        zb = np.empty(n + 1)
        lx = np.empty(n, np.int16)
        best = np.empty(n, np.int64)
        for x in range(nx):
            off = 1 if border else 0
            if border:
                f[0] = 0.0
                f[n - 1] = 0.0
                lx[0] = 0
                lx[n - 1] = 0
            for y in range(ny):
                c = ox[z, y, x]
                lx[y + off] = c
                f[y + off] = np.inf if c == BIG else _d2(0, 0, c, s0, s1, s2)
            k = _envelope(f, n, s1, v, zb)
            if k < 0:
                for y in range(ny):
                    oy[z, y, x] = BIG
                continue
            _pick(f, n, s1, v, zb, k, best)
            for y in range(ny):
                p = best[y + off]
                oy[z, y, x] = p - (y + off)
                ox[z, y, x] = lx[p]


@njit(parallel=True, cache=True)
def _pass_z(oz, oy, ox, s0, s1, s2, border):
    """Nearest background in 3-D for every (y, x) line along z."""
    nz, ny, nx = ox.shape
    for y in prange(ny):
        n = nz + 2 if border else nz
        f = np.empty(n)
        v = np.empty(n, np.int64)
        zb = np.empty(n + 1)
        ly = np.empty(n, np.int16)
        lx = np.empty(n, np.int16)
        best = np.empty(n, np.int64)
        for x in range(nx):
            off = 1 if border else 0
            if border:
                f[0] = 0.0
                f[n - 1] = 0.0
                ly[0] = 0
                lx[0] = 0
                ly[n - 1] = 0
                lx[n - 1] = 0
            for z in range(nz):
                cy = oy[z, y, x]
                cx = ox[z, y, x]
                ly[z + off] = cy
                lx[z + off] = cx
                f[z + off] = np.inf if cy == BIG else _d2(0, cy, cx, s0, s1, s2)
            k = _envelope(f, n, s0, v, zb)
            if k < 0:
                for z in range(nz):
                    oz[z, y, x] = BIG
                continue
            _pick(f, n, s0, v, zb, k, best)
            for z in range(nz):
                p = best[z + off]
                oz[z, y, x] = p - (z + off)
                oy[z, y, x] = ly[p]
                ox[z, y, x] = lx[p]


@njit(parallel=True, cache=True)
def _present(mask, oz, oy, ox, shape):
    """Which (|dz|, |dy|, |dx|) nearest-background offsets occur in the phase."""
    present = np.zeros(shape, np.bool_)
    nz, ny, nx = mask.shape
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    present[abs(oz[z, y, x]), abs(oy[z, y, x]), abs(ox[z, y, x])] = True
    return present


@njit(parallel=True, cache=True)
def _containment_table(present, s0, s1, s2):
    """For a ball of squared radius R = |(a, b, c)|^2 and each neighbour direction class (which of z, y, x
    move), the squared radius a neighbour's ball needs to contain all of its lattice points:
    ``max |y - e|^2`` over lattice points ``y`` of the ball (the ball is symmetric, so signs do not matter)."""
    na, nb, nc = present.shape
    table = np.zeros((na, nb, nc, 8))
    codes = np.argwhere(present)
    for i in prange(codes.shape[0]):
        a, b, c = codes[i, 0], codes[i, 1], codes[i, 2]
        r2 = _d2(a, b, c, s0, s1, s2)
        r = math.sqrt(r2)
        ez = int(r / s0)
        ey = int(r / s1)
        best = np.zeros(8)
        for dz in range(-ez, ez + 1):
            if _d2(dz, 0, 0, s0, s1, s2) > r2:
                continue
            for dy in range(-ey, ey + 1):
                if _d2(dz, dy, 0, s0, s1, s2) > r2:
                    continue
                rem = r2 - _d2(dz, dy, 0, s0, s1, s2)
                ex = int(math.sqrt(max(rem, 0.0)) / s2)
                while _d2(dz, dy, ex + 1, s0, s1, s2) <= r2:
                    ex += 1
                while ex > 0 and _d2(dz, dy, ex, s0, s1, s2) > r2:
                    ex -= 1
                for k in range(1, 8):
                    mz = (k >> 2) & 1
                    my = (k >> 1) & 1
                    mx = k & 1
                    v = _d2(dz - mz, dy - my, -ex - mx, s0, s1, s2)
                    if v > best[k]:
                        best[k] = v
        for k in range(8):
            table[a, b, c, k] = best[k]
    return table


@njit(parallel=True, cache=True)
def _ridge_count(mask, oz, oy, ox, s0, s1, s2, table, keep):
    """Mark the voxels whose ball's lattice points are not all inside one neighbour's (at least as large)
    ball; returns counts per z-plane. Without a table, the triangle inequality decides (weaker, exact)."""
    nz, ny, nx = mask.shape
    counts = np.zeros(nz, np.int64)
    use_table = table.shape[0] > 0
    for z in prange(nz):
        c = 0
        for y in range(ny):
            for x in range(nx):
                keep[z, y, x] = False
                if not mask[z, y, x]:
                    continue
                a = abs(oz[z, y, x])
                b = abs(oy[z, y, x])
                cc = abs(ox[z, y, x])
                rr = _d2(a, b, cc, s0, s1, s2)
                r = math.sqrt(rr)
                inside = False
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
                            if xx < 0 or xx >= nx or (dz == 0 and dy == 0 and dx == 0):
                                continue
                            if not mask[zz, yy, xx]:
                                continue
                            r2n = _d2(oz[zz, yy, xx], oy[zz, yy, xx], ox[zz, yy, xx], s0, s1, s2)
                            if r2n < rr:
                                continue
                            if use_table:
                                k = (abs(dz) << 2) | (abs(dy) << 1) | abs(dx)
                                if r2n >= table[a, b, cc, k]:
                                    inside = True
                            elif math.sqrt(r2n) >= r + math.sqrt(_d2(dz, dy, dx, s0, s1, s2)):
                                inside = True
                            if inside:
                                break
                        if inside:
                            break
                    if inside:
                        break
                if not inside:
                    keep[z, y, x] = True
                    c += 1
        counts[z] = c
    return counts


@njit(parallel=True, cache=True)
def _ridge_collect(keep, oz, oy, ox, s0, s1, s2, starts, pz, py, px, pr2):
    nz, ny, nx = keep.shape
    for z in prange(nz):
        i = starts[z]
        for y in range(ny):
            for x in range(nx):
                if keep[z, y, x]:
                    pz[i] = z
                    py[i] = y
                    px[i] = x
                    pr2[i] = _d2(oz[z, y, x], oy[z, y, x], ox[z, y, x], s0, s1, s2)
                    i += 1


BLOCK = 8  # edge of the blocks whose unfilled voxels are counted while filling


@njit(parallel=True, cache=True)
def _block_counts(mask, counts):
    """Phase voxels per BLOCK^3 block (all unfilled at the start)."""
    nz, ny, nx = mask.shape
    for bz in prange(counts.shape[0]):
        for z in range(bz * BLOCK, min(nz, bz * BLOCK + BLOCK)):
            for y in range(ny):
                for x in range(nx):
                    if mask[z, y, x]:
                        counts[bz, y // BLOCK, x // BLOCK] += 1


@njit(parallel=True, cache=True)
def _fill(mask, out, pz, py, px, pr2, s0, s1, s2, zblocks, counts):
    """Fill balls (sorted by decreasing radius) into ``out``, in parallel over slabs of ``zblocks``
    blocks along z.

    The first ball to reach a voxel is the largest, so only unfilled voxels are written. Every block
    counts its unfilled phase voxels: a ball passes over complete blocks, and over blocks it does not
    reach, with one test each, and scans only the rest, row by row within its exact extent."""
    nz, ny, nx = mask.shape
    nbz, nby, nbx = counts.shape
    nslabs = (nbz + zblocks - 1) // zblocks
    for sl in prange(nslabs):
        bza = sl * zblocks
        bzb = min(nbz, bza + zblocks)
        za = bza * BLOCK
        zb = min(nz, bzb * BLOCK)
        for i in range(pz.shape[0]):
            r2 = pr2[i]
            r = math.sqrt(r2)
            cz = pz[i]
            ez = int(r / s0)
            if cz + ez < za or cz - ez >= zb:
                continue
            cy = py[i]
            cx = px[i]
            ey = int(r / s1)
            ex_ = int(r / s2)
            val = np.float32(2.0 * r)
            for bz in range(max(bza, (cz - ez) // BLOCK), min(bzb, (cz + ez) // BLOCK + 1)):
                z0 = bz * BLOCK
                z1 = min(nz, z0 + BLOCK)
                nzc = min(max(cz, z0), z1 - 1) - cz
                for by in range(max(0, (cy - ey) // BLOCK), min(nby, (cy + ey) // BLOCK + 1)):
                    y0 = by * BLOCK
                    y1 = min(ny, y0 + BLOCK)
                    nyc = min(max(cy, y0), y1 - 1) - cy
                    for bx in range(max(0, (cx - ex_) // BLOCK), min(nbx, (cx + ex_) // BLOCK + 1)):
                        if counts[bz, by, bx] == 0:
                            continue
                        x0 = bx * BLOCK
                        x1 = min(nx, x0 + BLOCK)
                        nxc = min(max(cx, x0), x1 - 1) - cx
                        if _d2(nzc, nyc, nxc, s0, s1, s2) > r2:
                            continue  # the block's nearest voxel is outside the ball
                        done = 0
                        for z in range(max(z0, cz - ez), min(z1, cz + ez + 1)):
                            dz = z - cz
                            for y in range(max(y0, cy - ey), min(y1, cy + ey + 1)):
                                dy = y - cy
                                rz = _d2(dz, dy, 0, s0, s1, s2)
                                if rz > r2:
                                    continue
                                ex = int(math.sqrt(r2 - rz) / s2)
                                while _d2(dz, dy, ex + 1, s0, s1, s2) <= r2:
                                    ex += 1
                                while ex > 0 and _d2(dz, dy, ex, s0, s1, s2) > r2:
                                    ex -= 1
                                for x in range(max(x0, cx - ex), min(x1, cx + ex + 1)):
                                    if out[z, y, x] == 0 and mask[z, y, x]:
                                        out[z, y, x] = val
                                        done += 1
                        counts[bz, by, bx] -= done


def distance_offsets(mask: np.ndarray, spacing=(1.0, 1.0, 1.0), border: bool = False):
    """Integer offsets (dz, dy, dx) from every voxel to its nearest background voxel (int16 each)."""
    s0, s1, s2 = (float(v) for v in spacing)
    ox = np.empty(mask.shape, np.int16)
    _sweep_x(mask, border, ox)
    oy = np.empty(mask.shape, np.int16)
    _pass_y(oy, ox, s0, s1, s2, border)
    oz = np.empty(mask.shape, np.int16)
    _pass_z(oz, oy, ox, s0, s1, s2, border)
    return oz, oy, ox


def distance_ridge(mask: np.ndarray, spacing=(1.0, 1.0, 1.0), border: bool = False):
    """Centres of maximal balls: (z, y, x, squared radius) arrays, sorted by decreasing radius."""
    s0, s1, s2 = (float(v) for v in spacing)
    oz, oy, ox = distance_offsets(mask, spacing, border)
    shape = tuple(int(np.abs(o).max(initial=0, where=mask)) + 1 for o in (oz, oy, ox))
    if np.prod(shape) <= TABLE_LIMIT:
        table = _containment_table(_present(mask, oz, oy, ox, shape), s0, s1, s2)
    else:  # very thick structures: the triangle inequality alone (fewer balls dropped, still exact)
        table = np.zeros((0, 0, 0, 8))
    keep = np.empty(mask.shape, np.bool_)
    counts = _ridge_count(mask, oz, oy, ox, s0, s1, s2, table, keep)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    n = int(counts.sum())
    pz, py, px = (np.empty(n, np.int32) for _ in range(3))
    pr2 = np.empty(n, np.float64)
    _ridge_collect(keep, oz, oy, ox, s0, s1, s2, starts, pz, py, px, pr2)
    del oz, oy, ox, keep
    order = np.argsort(-pr2, kind="stable")
    return pz[order], py[order], px[order], pr2[order]


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
        raise InputError("the phase fills the whole image, so no voxel is outside it and the thickness is "
                         "unbounded; use border=True to treat the image border as background")
    mask = np.ascontiguousarray(mask)
    pz, py, px, pr2 = distance_ridge(mask, sp, border)
    out = np.zeros(mask.shape, np.float32)
    nb = tuple(-(-n // BLOCK) for n in mask.shape)
    counts = np.zeros(nb, np.int32)
    _block_counts(mask, counts)
    zblocks = max(1, nb[0] // (4 * max(1, numba.get_num_threads())))
    _fill(mask, out, pz, py, px, pr2, sp[0], sp[1], sp[2], zblocks, counts)
    if outside != 0.0:
        out[~mask] = outside
    return out[0] if squeeze else out
