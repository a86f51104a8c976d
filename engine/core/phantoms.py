"""Synthetic scans with exact ground truth, for examples, tests and benchmarks.

Each generator is seeded and returns ``(volume, truth)``: a :class:`~engine.data.Volume` of grey values
(uint16, like a reconstructed CT) and :class:`~engine.data.Labels` with the true classes. Geometry is
rendered with partial-volume edges (a voxel half inside a pore is half as dark), then blurred and given
Poisson noise, so that small features really are fainter than large ones.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .data import Labels, Volume, make_classes


def _soft(dist_inside: np.ndarray) -> np.ndarray:
    """Partial-volume occupancy from a signed distance (voxels, positive inside): 0..1 over one voxel."""
    return np.clip(dist_inside + 0.5, 0.0, 1.0)


def _finish(rng, atten: np.ndarray, blur: float, photons: float, lo: float, hi: float) -> np.ndarray:
    """Blur, map attenuation 0..1 to grey values lo..hi, add Poisson noise, return uint16."""
    if blur > 0:
        atten = ndimage.gaussian_filter(atten, blur)
    grey = lo + (hi - lo) * atten
    q = photons / hi
    noisy = rng.poisson(np.maximum(grey, 0) * q).astype(np.float32) / q
    return np.clip(noisy, 0, 65535).astype(np.uint16)


def casting(shape=(128, 128, 128), seed: int = 0, spacing=(0.05, 0.05, 0.05), n_pores: int | None = None,
            cupping: float = 0.3, rings: int = 6, streaks: int = 3, blur: float = 1.0,
            photons: float = 150.0) -> tuple[Volume, Labels]:
    """A cast metal part (a cylinder along z) in air with pores of many sizes, and CT artefacts.

    Parameters
    ----------
    shape : (int, int, int)
        ``(z, y, x)`` voxels.
    seed : int
        Random seed; the same seed gives the same phantom.
    spacing : (float, float, float)
        Voxel size in mm.
    n_pores : int, optional
        Number of pores (default scales with the volume). Radii are log-uniform from 1 voxel to 1/7 of
        the part's radius, so small pores (fainter after blur: partial volume) are common.
    cupping : float
        Beam hardening: the part's centre is this fraction darker than its rim.
    rings, streaks : int
        Number of ring artefacts (concentric, about the rotation axis) and streaks per 16-slice slab.
    blur : float
        Gaussian blur sigma (voxels) of the imaging system.
    photons : float
        Photon count at the brightest grey value; lower means more Poisson noise.

    Returns
    -------
    volume : Volume
        uint16 grey values (air about 1000, metal about 20000 before cupping).
    truth : Labels
        Classes ``air`` (1), ``metal`` (2), ``pore`` (3); ``truth.metadata["pores"]`` lists
        ``(z, y, x, radius)`` in voxels.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    R = 0.42 * min(ny, nx)
    z0, z1 = 0.08 * nz, 0.92 * nz
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    r2d = np.hypot(yy - cy, xx - cx)
    zz = np.arange(nz, dtype=np.float32)[:, None, None]
    inside_dist = np.minimum(R - r2d[None], np.minimum(zz - z0, z1 - zz))  # signed distance to the part
    part = _soft(inside_dist)
    truth = np.where(inside_dist >= 0, 2, 1).astype(np.uint8)

    if n_pores is None:
        n_pores = max(8, int(60 * nz * ny * nx / 128 ** 3))
    rmax = max(1.5, min(R / 7, (z1 - z0) / 2 - 3))  # pores fit inside the part, also a thin one
    pores: list[tuple[float, float, float, float]] = []
    pore_occ = np.zeros(shape, np.float32)
    tries = 0
    while len(pores) < n_pores and tries < 50 * n_pores:
        tries += 1
        r = float(np.exp(rng.uniform(np.log(1.0), np.log(rmax))))
        if z1 - z0 < 2 * r + 4:
            continue
        pz = rng.uniform(z0 + r + 2, z1 - r - 2)
        ang, rad = rng.uniform(0, 2 * np.pi), (R - r - 2) * np.sqrt(rng.uniform(0, 1))
        py, px = cy + rad * np.sin(ang), cx + rad * np.cos(ang)
        if any((pz - q[0]) ** 2 + (py - q[1]) ** 2 + (px - q[2]) ** 2 < (r + q[3] + 2) ** 2 for q in pores):
            continue
        pores.append((pz, py, px, r))
        lo = [max(0, int(np.floor(c - r - 2))) for c in (pz, py, px)]
        hi = [min(n, int(np.ceil(c + r + 3))) for c, n in zip((pz, py, px), shape)]
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        gz, gy, gx = np.ogrid[sl]
        d = np.sqrt((gz - pz) ** 2 + (gy - py) ** 2 + (gx - px) ** 2).astype(np.float32)
        np.maximum(pore_occ[sl], _soft(r - d), out=pore_occ[sl])
        sub = truth[sl]
        sub[(d <= r) & (sub == 2)] = 3

    atten = part * (1.0 - pore_occ)
    # beam hardening: the centre of the part looks darker than its rim
    cup = 1.0 - cupping * np.clip(1.0 - (r2d / R) ** 2, 0, 1)
    atten *= cup[None]
    # ring artefacts: faint circles about the rotation axis, the same in every slice
    ring_img = np.zeros((ny, nx), np.float32)
    for _ in range(rings):
        rr, amp = rng.uniform(0.1 * R, 1.1 * R), rng.choice([-1, 1]) * rng.uniform(0.04, 0.1)
        ring_img += amp * np.exp(-0.5 * ((r2d - rr) / 0.7) ** 2)
    atten += ring_img[None]
    # streaks: thin lines through the part, changing every 16 slices
    for zs in range(0, nz, 16):
        streak = np.zeros((ny, nx), np.float32)
        for _ in range(streaks):
            th, off = rng.uniform(0, np.pi), rng.uniform(-0.5 * R, 0.5 * R)
            dist = np.abs((yy - cy) * np.cos(th) - (xx - cx) * np.sin(th) - off)
            streak += rng.choice([-1, 1]) * rng.uniform(0.05, 0.12) * np.exp(-0.5 * (dist / 0.8) ** 2)
        atten[zs:zs + 16] += streak[None] * (part[zs:zs + 16] > 0)

    grey = _finish(rng, atten, blur, photons, 1000.0, 20000.0)
    vol = Volume(grey, spacing=spacing, unit="mm", name="casting", metadata={"phantom": "casting", "seed": seed})
    lab = Labels(truth, spacing=spacing, unit="mm", name="casting_truth",
                 classes=make_classes(["air", "metal", "pore"],
                                      [(40, 40, 40, 255), (80, 150, 230, 255), (230, 60, 40, 255)]),
                 metadata={"pores": pores})
    return vol, lab


def fibre_composite(shape=(64, 128, 128), seed: int = 0, spacing=(1.0, 1.0, 1.0),
                    diameters=(4.0, 8.0, 12.0), fill: float = 0.35, blur: float = 0.8,
                    photons: float = 300.0) -> tuple[Volume, Labels]:
    """Fibres (cylinders along z) of known diameters in a matrix.

    Parameters
    ----------
    diameters : sequence of float
        Fibre diameters in voxels (in-plane); fibres are drawn from these in turn.
    fill : float
        Target area fraction of fibres.

    Returns
    -------
    volume : Volume
    truth : Labels
        Classes ``matrix`` (1) and ``fibre`` (2); ``truth.metadata["fibres"]`` lists
        ``(y, x, diameter)`` in voxels.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    occ = np.zeros((ny, nx), np.float32)
    inside = np.zeros((ny, nx), bool)
    fibres: list[tuple[float, float, float]] = []
    area, tries = 0.0, 0
    while area < fill * ny * nx and tries < 20000:
        tries += 1
        d = float(diameters[len(fibres) % len(diameters)])
        r = d / 2
        y, x = rng.uniform(r + 1, ny - r - 1), rng.uniform(r + 1, nx - r - 1)
        if any((y - f[0]) ** 2 + (x - f[1]) ** 2 < (r + f[2] / 2 + 1.5) ** 2 for f in fibres):
            continue
        fibres.append((y, x, d))
        dist = np.hypot(yy - y, xx - x)
        np.maximum(occ, _soft(r - dist), out=occ)
        inside |= dist <= r
        area += np.pi * r * r
    atten = 0.35 + 0.5 * np.broadcast_to(occ, shape).astype(np.float32)
    grey = _finish(rng, atten, blur, photons, 0.0, 10000.0)
    truth = np.broadcast_to(np.where(inside, 2, 1).astype(np.uint8), shape).copy()
    vol = Volume(grey, spacing=spacing, name="fibres", metadata={"phantom": "fibre_composite", "seed": seed})
    lab = Labels(truth, spacing=spacing, name="fibres_truth", classes=make_classes(["matrix", "fibre"]),
                 metadata={"fibres": fibres})
    return vol, lab


def layered(shape=(64, 96, 96), seed: int = 0, spacing=(1.0, 1.0, 1.0), n_phases: int = 3,
            waviness: float = 3.0, blur: float = 1.0, photons: float = 200.0) -> tuple[Volume, Labels]:
    """A layered multi-phase material: ``n_phases`` layers stacked along z with wavy interfaces.

    Returns
    -------
    volume : Volume
    truth : Labels
        Classes ``phase1`` .. ``phaseN`` from the top (z = 0) down; grey values rise with the phase.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    zz = np.arange(nz, dtype=np.float32)[:, None, None]
    truth = np.ones(shape, np.uint8)
    atten = np.zeros(shape, np.float32)
    levels = np.linspace(0.15, 0.85, n_phases)
    prev = np.full((ny, nx), -1e9, np.float32)
    occ_prev = np.ones(shape, np.float32)
    for k in range(1, n_phases):
        fy, fx, ph = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
        h = nz * k / n_phases + waviness * np.sin(2 * np.pi * (fy * yy / ny + fx * xx / nx) + ph)
        h = np.maximum(h, prev + 2)
        below = _soft(zz - h[None])  # occupancy of "below this interface"
        atten += levels[k - 1] * (occ_prev - below)
        occ_prev = below
        truth[zz >= h[None]] = k + 1
        prev = h
    atten += levels[-1] * occ_prev
    grey = _finish(rng, atten, blur, photons, 0.0, 10000.0)
    vol = Volume(grey, spacing=spacing, name="layered", metadata={"phantom": "layered", "seed": seed})
    lab = Labels(truth, spacing=spacing, name="layered_truth",
                 classes=make_classes([f"phase{i}" for i in range(1, n_phases + 1)]))
    return vol, lab


def grains(shape=(33, 100, 100), seed: int = 0, spacing=(1.0, 1.0, 1.0), size: float = 4.0, ice: float = 0.6,
           blur: float = 0.8, photons: float = 300.0) -> tuple[Volume, Labels]:
    """Grains and the air between them, cut out of a material (a snow or ice sample, a packed powder): two
    phases, both touching every face of the scan, with thin air gaps where grains nearly meet.

    Parameters
    ----------
    size : float
        Grain scale in voxels (the sigma of the smoothed random field whose level set bounds the grains).
    ice : float
        Volume fraction of the grains.

    Returns
    -------
    volume : Volume
    truth : Labels
        Classes ``air`` (dark) and ``ice`` (bright).

    Examples
    --------
    >>> vol, truth = grains((16, 32, 32), seed=1)
    >>> truth.class_names
    ['air', 'ice']
    """
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), size, mode="wrap")
    level = np.quantile(field, 1.0 - ice)
    inside = field > level
    # a signed distance in voxels gives the edges their partial volume
    dist = np.where(inside, ndimage.distance_transform_edt(inside), -ndimage.distance_transform_edt(~inside))
    atten = 0.15 + 0.6 * _soft(dist.astype(np.float32) - 0.5)
    grey = _finish(rng, atten, blur, photons, 0.0, 10000.0)
    vol = Volume(grey, spacing=spacing, name="grains", metadata={"phantom": "grains", "seed": seed})
    lab = Labels(np.where(inside, 2, 1).astype(np.uint8), spacing=spacing, name="grains_truth",
                 classes=make_classes(["air", "ice"]))
    return vol, lab
