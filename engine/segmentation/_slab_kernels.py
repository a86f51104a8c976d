"""The compiled kernels of :mod:`~damselfly.engine.segmentation._slab_labels` (numba, both cores), in a module of their
own so that numba loads only when labels are made this way."""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def context_channels_last(raw, rows, b, k, low, scale, batch, c0):  # pragma: no cover - compiled
    """``batch[j, :, :, c0 + c] = normalised raw[rows[b + j + c]]``: slice ``b + j``'s context, channels
    last, as ``tiling.normalize`` computes it (float32 (v - low) * scale)."""
    n, ny, nx = batch.shape[0], batch.shape[1], batch.shape[2]
    for jy in prange(n * ny):
        j, yy = jy // ny, jy % ny
        for c in range(k):
            src = raw[rows[b + j + c], yy]
            for xx in range(nx):
                batch[j, yy, xx, c0 + c] = (np.float32(src[xx]) - low) * scale


@njit(parallel=True, cache=True)
def argmax_plus_one(scores, out):  # pragma: no cover - compiled
    """``out[i] = 1 + argmax(scores[i])`` (the first of equal maxima, as NumPy)."""
    kk = scores.shape[1]
    for i in prange(scores.shape[0]):
        best, arg = scores[i, 0], 0
        for c in range(1, kk):
            if scores[i, c] > best:
                best, arg = scores[i, c], c
        out[i] = arg + 1
