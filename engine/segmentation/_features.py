"""Multi-scale voxel features for the pixel classifier, computed box by box.

The features are those of :func:`skimage.feature.multiscale_basic_features` (the ilastik set): at
``num_sigma`` scales from ``sigma_min`` to ``sigma_max`` voxels (log-spaced), the Gaussian-smoothed
intensity, its Sobel gradient magnitude and the eigenvalues of its Hessian (finite differences), in
that order per scale: 5 features per scale in 3-D, 4 in 2-D (slice by slice).

:func:`box_features` computes them for any box of a large (lazy) volume with the same values as for the
whole volume: it reads the box with the context the largest scale needs, and runs the Gaussian's z pass
only for the planes the box needs. So the features of one painted slice cost a few planes' work, not
the ~70 planes a 3-D Gaussian of sigma 8 would smooth if run on the whole context.

Examples
--------
>>> import numpy as np
>>> vol = np.random.default_rng(0).random((20, 30, 30)).astype(np.float32)
>>> box_features(vol, (5, 6, 0, 30, 0, 30), sigma_max=2.0).shape    # one slice, 3 scales x 5 features
(1, 30, 30, 15)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations_with_replacement

import numpy as np
from numba import njit, prange
from scipy import ndimage

from ..core.errors import ParameterError

#: Feature scales (voxels) by default.
FEATURES = {"sigma_min": 0.7, "sigma_max": 8.0, "num_sigma": 5}
#: Voxels the gradient and the Hessian reach beyond a smoothed voxel (two finite differences).
DERIVATIVE_REACH = 2


def sigmas(sigma_min: float = FEATURES["sigma_min"], sigma_max: float = FEATURES["sigma_max"],
           num_sigma: int = FEATURES["num_sigma"]) -> np.ndarray:
    """The scales, log-spaced from ``sigma_min`` to ``sigma_max`` (as scikit-image spaces them)."""
    if not 0 < sigma_min <= sigma_max or not 1 <= num_sigma <= 16:
        raise ParameterError(f"feature scales need 0 < sigma_min <= sigma_max and 1..16 of them, got "
                             f"{sigma_min}, {sigma_max}, {num_sigma}")
    return np.logspace(np.log2(sigma_min), np.log2(sigma_max), num=num_sigma, base=2, endpoint=True)


def _radius(sigma: float) -> int:
    return int(4.0 * float(sigma) + 0.5)  # scipy's Gaussian truncated at 4 sigma


def feature_halo(sigma_max: float = FEATURES["sigma_max"]) -> int:
    """Voxels of context the features need on each side of a box."""
    return _radius(sigma_max) + DERIVATIVE_REACH


def n_features(ndim: int, num_sigma: int = FEATURES["num_sigma"]) -> int:
    """Features per voxel: per scale, intensity, edges and ``ndim`` Hessian eigenvalues."""
    return num_sigma * (2 + ndim)


def _kernel(sigma: float) -> np.ndarray:
    r = _radius(sigma)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 / float(sigma) ** 2 * x * x)
    return w / w.sum()


def _smooth_planes(region: np.ndarray, planes: np.ndarray, sigma: float) -> np.ndarray:
    """The 3-D Gaussian of ``region`` (z, y, x) at z-planes ``planes`` only (z pass first, nearest-edge
    mode as :func:`skimage.filters.gaussian`), float32."""
    w = _kernel(sigma)
    r = len(w) // 2
    acc = np.zeros((len(planes),) + region.shape[1:], np.float64)
    last = region.shape[0] - 1
    for k, wk in enumerate(w):
        acc += wk * region[np.clip(planes + k - r, 0, last)]
    out = acc.astype(np.float32)
    for ax in (1, 2):
        out = ndimage.gaussian_filter1d(out, sigma, axis=ax, mode="nearest", truncate=4.0)
    return out


@njit(parallel=True, cache=True)
def _eigvals3(a, b, c, d, e, f, out):
    """Eigenvalues (descending) of the symmetric matrices [[a, b, c], [b, d, e], [c, e, f]], element-wise:
    the closed form for 3 x 3 symmetric matrices (trigonometric), in float64."""
    for i in prange(a.shape[0]):
        a11, a12, a13, a22, a23, a33 = float(a[i]), float(b[i]), float(c[i]), float(d[i]), float(e[i]), float(f[i])
        p1 = a12 * a12 + a13 * a13 + a23 * a23
        q = (a11 + a22 + a33) / 3.0
        p2 = (a11 - q) ** 2 + (a22 - q) ** 2 + (a33 - q) ** 2 + 2.0 * p1
        if p2 <= 1e-300:
            out[0, i] = out[1, i] = out[2, i] = q
            continue
        p = np.sqrt(p2 / 6.0)
        b11, b22, b33 = (a11 - q) / p, (a22 - q) / p, (a33 - q) / p
        b12, b13, b23 = a12 / p, a13 / p, a23 / p
        r = 0.5 * (b11 * (b22 * b33 - b23 * b23) - b12 * (b12 * b33 - b23 * b13) + b13 * (b12 * b23 - b22 * b13))
        r = min(1.0, max(-1.0, r))
        phi = np.arccos(r) / 3.0
        e1 = q + 2.0 * p * np.cos(phi)
        e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
        out[0, i], out[1, i], out[2, i] = e1, 3.0 * q - e1 - e3, e3


def hessian_eigenvalues(hess: list[np.ndarray]) -> list[np.ndarray]:
    """Eigenvalues (descending) of a field of symmetric Hessians given by their upper-triangle elements
    (``Hzz, Hzy, Hzx, Hyy, Hyx, Hxx`` in 3-D, ``Hyy, Hyx, Hxx`` in 2-D): float32 arrays of the elements'
    shape. The same values as :func:`skimage.feature.hessian_matrix_eigvals` (to float32 rounding), by a
    closed form instead of a LAPACK call per voxel (which took 80 % of the features' time)."""
    shape = hess[0].shape
    if len(hess) == 3:  # 2 x 2: closed form
        a, b, d = (np.asarray(h, np.float64) for h in hess)
        mid, rad = (a + d) / 2, np.sqrt(((a - d) / 2) ** 2 + b * b)
        return [(mid + rad).astype(np.float32), (mid - rad).astype(np.float32)]
    flat = [np.ascontiguousarray(h).reshape(-1) for h in hess]
    out = np.empty((3, flat[0].size), np.float32)
    _eigvals3(*flat, out)
    return [out[i].reshape(shape) for i in range(3)]


def _scale_features(smoothed: np.ndarray, core: tuple[slice, ...]) -> list[np.ndarray]:
    """Intensity, Sobel magnitude and Hessian eigenvalues (descending) of ``smoothed``, cut to ``core``."""
    from skimage.filters import sobel

    hess = [np.gradient(np.gradient(smoothed, axis=a), axis=b)[core]
            for a, b in combinations_with_replacement(range(smoothed.ndim), 2)]
    return [smoothed[core], sobel(smoothed)[core], *hessian_eigenvalues(hess)]


def _grow(lo: int, hi: int, by: int, n: int) -> tuple[int, int]:
    return max(0, lo - by), min(n, hi + by)


def box_features(data, box: Sequence[int], mode: str = "3d", low: float = 0.0, high: float = 1.0,
                 sigma_min: float = FEATURES["sigma_min"], sigma_max: float = FEATURES["sigma_max"],
                 num_sigma: int = FEATURES["num_sigma"]) -> np.ndarray:
    """Features of the voxels in ``box`` = ``(z0, z1, y0, y1, x0, x1)`` of a (lazy) 3-D volume.

    Parameters
    ----------
    data : array-like (z, y, x)
        Anything sliceable: a NumPy array, a memory map, a Zarr array.
    box : sequence of 6 int
        The voxels wanted.
    mode : {"3d", "2d"}
        3-D features, or 2-D features of each slice on its own.
    low, high : float
        Intensities mapped to 0 and 1 before the features are computed.
    sigma_min, sigma_max, num_sigma
        The scales (see :func:`sigmas`).

    Returns
    -------
    ndarray, float32, shape ``(z1 - z0, y1 - y0, x1 - x0, F)``
        Equal (to float32 rounding) to the features of the whole volume at those voxels.
    """
    if mode not in ("2d", "3d"):
        raise ParameterError(f"feature mode must be '2d' or '3d', got {mode!r}")
    scales = sigmas(sigma_min, sigma_max, num_sigma)
    z0, z1, y0, y1, x0, x1 = (int(v) for v in box)
    Z, Y, X = data.shape
    h = feature_halo(max(scales))
    za, zb = _grow(z0, z1, h, Z) if mode == "3d" else (z0, z1)
    ya, yb = _grow(y0, y1, h, Y)
    xa, xb = _grow(x0, x1, h, X)
    scale = 1.0 / (high - low) if high > low else 1.0
    region = (np.asarray(data[za:zb, ya:yb, xa:xb], np.float32) - np.float32(low)) * np.float32(scale)
    out = np.empty((z1 - z0, y1 - y0, x1 - x0, n_features(2 if mode == "2d" else 3, num_sigma)), np.float32)
    # the smoothed stack covers the box and the derivatives' reach, clipped to the volume
    r = DERIVATIVE_REACH
    sy, sx = _grow(y0, y1, r, Y), _grow(x0, x1, r, X)
    cy, cx = slice(y0 - sy[0], y1 - sy[0]), slice(x0 - sx[0], x1 - sx[0])

    def one_scale(sigma):
        if mode == "3d":
            sz = _grow(z0, z1, r, Z)
            sm = _smooth_planes(region, np.arange(*sz) - za, sigma)[:, sy[0] - ya:sy[1] - ya, sx[0] - xa:sx[1] - xa]
            return _scale_features(sm, (slice(z0 - sz[0], z1 - sz[0]), cy, cx))
        else:
            per_slice = []
            for plane in region:
                sm = ndimage.gaussian_filter(plane, sigma, mode="nearest", truncate=4.0)
                per_slice.append(_scale_features(sm[sy[0] - ya:sy[1] - ya, sx[0] - xa:sx[1] - xa], (cy, cx)))
            return [np.stack(k) for k in zip(*per_slice)]

    with ThreadPoolExecutor(max_workers=min(len(scales), os.cpu_count() or 1)) as pool:  # NumPy/SciPy release the GIL
        feats = [a for per_scale in pool.map(one_scale, scales) for a in per_scale]
    for f, a in enumerate(feats):
        out[..., f] = a
    return out
