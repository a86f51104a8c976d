"""Integer up-sampling by cubic convolution, computed for any range of output slices.

An output voxel ``j`` along an axis up-sampled by ``f`` sits at input coordinate ``(j + 0.5) / f - 0.5``
(voxel centres aligned, as for a finer scan of the same field of view). Its value is the cubic
convolution of its four input neighbours (Keys 1981, a = -0.5: exact for quadratics, no global
pre-filter), the ends extended by their edge values. Because every output value depends on four input
voxels per axis, a slab of the output (:func:`upsample_slices`) equals the same slices of the whole
output exactly: restoration can stream.

Examples
--------
>>> import numpy as np
>>> upsample_slices(np.arange(4.0).reshape(1, 1, 4), (1, 1, 2), 0, 1)[0, 0].tolist()
[-0.0703125, 0.1796875, 0.7265625, 1.25, 1.75, 2.2734375, 2.8203125, 3.0703125]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _taps(n_in: int, f: int, j: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The four input indices (clamped) and their cubic-convolution weights for output indices ``j``."""
    c = (j + 0.5) / f - 0.5
    i = np.floor(c).astype(np.int64)
    t = (c - i).astype(np.float64)
    weights = [((-0.5 * t + 1.0) * t - 0.5) * t, (1.5 * t - 2.5) * t * t + 1.0,
               ((-1.5 * t + 2.0) * t + 0.5) * t, (0.5 * t - 0.5) * t * t]
    return [np.clip(i + k, 0, n_in - 1) for k in (-1, 0, 1, 2)], [w.astype(np.float32) for w in weights]


def _along(a: np.ndarray, axis: int, f: int, n_in: int, j: np.ndarray, offset: int = 0) -> np.ndarray:
    idx, weights = _taps(n_in, f, j)
    shape = [1] * a.ndim
    shape[axis] = len(j)
    return sum(np.take(a, i - offset, axis=axis) * w.reshape(shape) for i, w in zip(idx, weights))


def upsample_slices(data, scale: Sequence[int], z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` of the up-sampled (lazy) volume ``data`` (z, y, x), float32; ``scale`` the
    integer factors per axis. Reads only the input slices those need."""
    fz, fy, fx = (int(s) for s in scale)
    nz = data.shape[0]
    j = np.arange(z0, z1)
    idx, _ = _taps(nz, fz, j)
    a0, a1 = int(idx[0].min()), int(idx[-1].max()) + 1
    block = np.asarray(data[a0:a1], np.float32)
    out = _along(block, 0, fz, nz, j, offset=a0) if fz > 1 else block[j - a0]
    if fy > 1:
        out = _along(out, 1, fy, data.shape[1], np.arange(data.shape[1] * fy))
    if fx > 1:
        out = _along(out, 2, fx, data.shape[2], np.arange(data.shape[2] * fx))
    return out.astype(np.float32, copy=False)


def upsample(data, scale: Sequence[int]) -> np.ndarray:
    """The whole up-sampled volume (see :func:`upsample_slices`)."""
    return upsample_slices(data, scale, 0, data.shape[0] * int(scale[0]))
