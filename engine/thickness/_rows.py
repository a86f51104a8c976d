"""The row primitives of local thickness, shared by the ball filling (:mod:`._exact`) and the count
pyramid (:mod:`._pyramid`): the one distance formula, a ball's row widths, and writing a row's unfilled
voxels through its pointers to the next unfilled voxel (a union-find with path compression).
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, inline="always")
def d2(i, j, k, s0, s1, s2):
    """The squared length of the offset (i, j, k) voxels: the one formula of every distance here."""
    a = i * s0
    b = j * s1
    c = k * s2
    return a * a + (b * b + c * c)


@njit(cache=True, inline="always")
def row_width(dz, dy, r2, s0, s1, s2):
    """Half-width (in voxels along x) of the ball's row at (dz, dy), or -1 where the row misses it;
    checked with the exact test, so rounding in the square root cannot move a voxel in or out."""
    rz = d2(dz, dy, 0, s0, s1, s2)
    if rz > r2:
        return -1
    ex = int(math.sqrt(r2 - rz) / s2)
    while d2(dz, dy, ex + 1, s0, s1, s2) <= r2:
        ex += 1
    while ex > 0 and d2(dz, dy, ex, s0, s1, s2) > r2:
        ex -= 1
    return ex


@njit(cache=True, inline="always")
def fill_span(nxt, out, o, a, b, nx, val):
    """Write ``val`` into the unfilled phase voxels of row ``o`` (flat offset of x = 0) from ``a`` to ``b``
    (within the row), following and compressing the row's pointers to its next unfilled voxel; returns
    how many were written."""
    x = a
    q = nxt[o + x]
    if q > b:
        return 0  # the row is filled (or outside the phase) here: the common case
    n = 0
    while q != x:  # the first unfilled voxel
        x = q
        if x >= nx:
            break
        q = nxt[o + x]
    while x <= b:
        out[o + x] = val
        n += 1
        x += 1
        if x >= nx:
            break
        q = nxt[o + x]
        while q != x:
            x = q
            if x >= nx:
                break
            q = nxt[o + x]
    k = a  # path compression: a..x-1 now all point to x
    while k < x:
        q = nxt[o + k]
        nxt[o + k] = x
        if q >= x:
            break
        k = max(q, k + 1)
    return n


@njit(cache=True, inline="always")
def fill_row(nxt, out, o, cx, ww, nx, val):
    """:func:`fill_span` over the row's part ``cx - ww .. cx + ww`` (clipped to the row; a ball centred
    beyond the row's end may miss it)."""
    a = max(0, cx - ww)
    b = min(nx - 1, cx + ww)
    if a > b:
        return 0
    return fill_span(nxt, out, o, a, b, nx, val)
