"""Which balls can still write a voxel: the distance to the nearest unfilled voxel, refreshed now and then.

Filling balls from the largest radius down, most balls of a thick part write nothing: every voxel in
reach is already covered by a larger ball. Such a ball touches the background at its radius, and the
voxels left unfilled lie along the background (in the corners between larger balls), so it looks, by
its bounding boxes, as if it might still reach them; proving it does not costs a walk down the counts of
:mod:`._pyramid` and a look at rows. Here, now and then between chunks of balls, the exact Euclidean
distance transform of the unfilled voxels is taken (the same separable code as the thickness's own,
with the unfilled voxels as background), and a ball is passed over at once when the nearest unfilled voxel
of that moment lies beyond its radius.

Exactness: voxels only ever become filled, so the unfilled voxels of now are a subset of those of the
snapshot and the distance to them is at least the snapshot's. For a centre ``c`` (inside the array or
not) and ``p`` its clamp into the array, every voxel ``u`` of the array has
``|c - u|^2 >= |c - p|^2 + |p - u|^2`` (per axis, ``c - p`` and ``p - u`` have the same sign); so if
``|c - p|^2 + d(p)^2`` exceeds the ball's squared radius (with a relative margin far above the
rounding of the sums), no unfilled voxel is in the ball and filling it would write nothing.

Cost: a snapshot is about three passes over the array (about 25 ns a voxel on 2 cores) and 11 bytes a
voxel while it is taken; one is taken only once the balls filled since the last have taken ``PATIENCE``
times as long as the last snapshot did (so at most about 1 / (PATIENCE + 1) of the time goes to them), and
only for arrays of up to ``MAX_VOXELS``.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit, prange

from ._rows import d2

#: Fill time between snapshots, in multiples of the last snapshot's time.
PATIENCE = 4.0
#: Arrays larger than this (voxels) take no snapshots (their memory: 11 bytes a voxel while taken).
MAX_VOXELS = 64 * 1024 * 1024
#: Seconds a voxel a first snapshot is assumed to take (before one was timed).
VOXEL_SECONDS = 25e-9


@njit(parallel=True, cache=True)
def _filled(nxt, free):
    """``free``: True where the voxel is not an unfilled phase voxel (``nxt[x] != x``); returns how many
    voxels are unfilled."""
    nz, ny, nx = nxt.shape
    per = np.zeros(nz, np.int64)
    for z in prange(nz):
        c = 0
        for y in range(ny):
            for x in range(nx):
                f = nxt[z, y, x] != x
                free[z, y, x] = f
                c += not f
        per[z] = c
    return per.sum()


@njit(parallel=True, cache=True)
def _squared(oz, oy, ox, s0, s1, s2, out):
    """The squared length of each offset, rounded down into float32 (never above the true value)."""
    nz, ny, nx = oz.shape
    for z in prange(nz):
        for y in range(ny):
            for x in range(nx):
                out[z, y, x] = np.float32(d2(oz[z, y, x], oy[z, y, x], ox[z, y, x], s0, s1, s2) * (1.0 - 1e-7))


@njit(parallel=True, cache=True)
def _reaching(pz, py, px, pl, r2s, near, s0, s1, s2, live):
    """``live[i]``: whether ball ``i`` may reach a voxel that was unfilled at the snapshot ``near``."""
    nz, ny, nx = near.shape
    for i in prange(pz.shape[0]):
        qz = min(max(pz[i], 0), nz - 1)
        qy = min(max(py[i], 0), ny - 1)
        qx = min(max(px[i], 0), nx - 1)
        g = d2(pz[i] - qz, py[i] - qy, px[i] - qx, s0, s1, s2) + near[qz, qy, qx]
        live[i] = g <= r2s[pl[i]] * (1.0 + 1e-9)


class Reach:
    """The snapshots of one fill (see the module): :meth:`live` says which balls of a chunk may still
    write, :meth:`filled` is told how long each chunk's fill took. ``offsets``: the distance transform
    (``_exact.distance_offsets``: mask, spacing -> offsets to the nearest voxel outside the mask)."""

    def __init__(self, nxt: np.ndarray, sp, offsets):
        self.nxt = nxt
        self.offsets = offsets
        self.sp = tuple(float(v) for v in sp)
        self.on = nxt.size <= MAX_VOXELS
        self.near = None  # squared distance to the nearest unfilled voxel, at the last snapshot
        self.done = False  # no voxel was unfilled at the last snapshot: no ball writes any more
        self.cost = nxt.size * VOXEL_SECONDS
        self.spent = 0.0

    def filled(self, seconds: float) -> None:
        self.spent += seconds

    def live(self, pz, py, px, pl, r2s) -> np.ndarray:
        if self.on and not self.done and self.spent > PATIENCE * self.cost:
            self._snapshot()
        live = np.ones(len(pz), np.bool_)
        if self.done:
            live[:] = False
        elif self.near is not None:
            _reaching(pz, py, px, pl, r2s, self.near, *self.sp, live)
        return live

    def _snapshot(self) -> None:
        t = time.perf_counter()
        free = np.empty(self.nxt.shape, np.bool_)
        if _filled(self.nxt, free) == 0:
            self.done, self.near = True, None
        else:
            offsets = self.offsets(free, self.sp)
            del free
            if self.near is None:
                self.near = np.empty(self.nxt.shape, np.float32)
            _squared(*offsets, *self.sp, self.near)
        self.cost = time.perf_counter() - t
        self.spent = 0.0
