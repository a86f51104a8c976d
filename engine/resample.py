"""Integer up-sampling by linear interpolation, computed for any range of output slices.

An output voxel ``j`` along an axis up-sampled by ``f`` sits at input coordinate ``(j + 0.5) / f - 0.5``
(voxel centres aligned, as for a finer scan of the same field of view); it is the linear interpolation of
its two input neighbours, clamped at the ends. Because every output value is a pointwise formula, a slab
of the output (:func:`upsample_slices`) equals the same slices of the whole output exactly: restoration
can stream.

Examples
--------
>>> import numpy as np
>>> upsample_slices(np.arange(4.0).reshape(1, 1, 4), (1, 1, 2), 0, 1)[0, 0].tolist()
[0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _taps(n_in: int, f: int, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left input index, right input index and the right one's weight for output indices ``j``."""
    c = np.clip((j + 0.5) / f - 0.5, 0, n_in - 1)
    lo = np.floor(c).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (c - lo).astype(np.float32)


def _along(a: np.ndarray, axis: int, f: int, n_in: int, j: np.ndarray, offset: int = 0) -> np.ndarray:
    lo, hi, w = _taps(n_in, f, j)
    shape = [1] * a.ndim
    shape[axis] = len(j)
    w = w.reshape(shape)
    return np.take(a, lo - offset, axis=axis) * (1 - w) + np.take(a, hi - offset, axis=axis) * w


def upsample_slices(data, scale: Sequence[int], z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` of the linearly up-sampled (lazy) volume ``data`` (z, y, x), float32; ``scale`` the
    integer factors per axis. Reads only the input slices those need."""
    fz, fy, fx = (int(s) for s in scale)
    nz = data.shape[0]
    j = np.arange(z0, z1)
    lo, hi, _ = _taps(nz, fz, j)
    a0, a1 = int(lo.min()), int(hi.max()) + 1
    block = np.asarray(data[a0:a1], np.float32)
    out = _along(block, 0, fz, nz, j, offset=a0) if fz > 1 else block[j - a0]
    if fy > 1:
        out = _along(out, 1, fy, data.shape[1], np.arange(data.shape[1] * fy))
    if fx > 1:
        out = _along(out, 2, fx, data.shape[2], np.arange(data.shape[2] * fx))
    return out.astype(np.float32, copy=False)


def upsample(data, scale: Sequence[int]) -> np.ndarray:
    """The whole linearly up-sampled volume (see :func:`upsample_slices`)."""
    return upsample_slices(data, scale, 0, data.shape[0] * int(scale[0]))
