"""Surfaces of masks for the 3-D view, snapshots, movies and mesh export: marching cubes in world
coordinates, smoothed and decimated, with time and memory bounded whatever the mask (big masks are
averaged over blocks first)."""

from __future__ import annotations

import math

import numpy as np

from ..core.data import Labels, Volume

SURFACE_VOXELS = 2 ** 24  # mask voxels that a surface is built from at most (256^3; see class_surface)
MAX_TRIANGLES = 1_000_000  # per class surface; denser ones are decimated


def class_surface(labels: Labels, name: str, smooth: int = 15, budget: int | None = None):
    """The surface of one class: marching cubes on its mask (padded so it closes at the image border),
    in world coordinates, lightly smoothed (Taubin, which does not shrink), then decimated to at most
    ``MAX_TRIANGLES`` (quadric decimation). A mask with more voxels than ``SURFACE_VOXELS``, or with more
    faces between the class and the rest than the triangle budget, is first averaged over blocks of
    ``step``^3 voxels (its occupancy; specks smaller than half a block vanish) and the surface is taken
    at occupancy 0.5, so the time and memory of a surface are bounded whatever the mask. ``budget``: mask
    voxels instead of ``SURFACE_VOXELS`` (a quick first draft)."""
    return mask_surface(np.asarray(labels.data) == labels.class_index(name), labels, smooth, budget)[0]


def mask_surface(mask: np.ndarray, grid: Volume, smooth: int = 15, budget: int | None = None):
    """The surface of a mask on ``grid``'s geometry as :func:`class_surface` makes it, and the block edge
    it was taken at (``None, 1`` for an empty mask)."""
    import pyvista as pv
    from skimage.measure import marching_cubes

    if not mask.any():
        return None, 1
    step = surface_step(mask, budget)
    occ = _block_mean(mask, step) if step > 1 else mask.astype(np.float32)
    del mask
    spacing = np.asarray(grid.spacing, float) * step
    # a class painted in specks thinner than a block (a few dabs) fills no block half: draw it at half
    # its fullest block's occupancy rather than not at all
    level = min(0.5, float(occ.max()) / 2)
    try:
        verts, faces, _, _ = marching_cubes(np.pad(occ, 1), level, spacing=tuple(spacing), allow_degenerate=False)
    except (ValueError, RuntimeError):  # nothing to draw at this level of detail
        return None, step
    origin = np.asarray(grid.origin, float) + (step - 1) / 2 * np.asarray(grid.spacing, float)
    verts = (verts - spacing) + origin  # undo the padding; a block's value sits at its centre
    faces = np.hstack([np.full((len(faces), 1), 3), faces]).astype(np.int64).ravel()
    mesh = pv.PolyData(np.ascontiguousarray(verts[:, ::-1]), faces)  # (z, y, x) -> world (x, y, z)
    if smooth:
        mesh = mesh.smooth_taubin(n_iter=smooth, pass_band=0.1)
    if mesh.n_cells > MAX_TRIANGLES:
        mesh = mesh.decimate(1.0 - MAX_TRIANGLES / mesh.n_cells)
    return mesh.compute_normals(auto_orient_normals=False, split_vertices=False), step


def surface_step(mask: np.ndarray, budget: int | None = None) -> int:
    """The block edge (a power of two) that brings a mask within ``SURFACE_VOXELS`` and its surface
    within about twice ``MAX_TRIANGLES`` (counted as the faces between voxels in and out; a surface's
    area shrinks with the square of the step, specks faster)."""
    step = 2 ** max(0, math.ceil(math.log2((mask.size / (budget or SURFACE_VOXELS)) ** (1 / 3))))
    faces = sum(int(np.count_nonzero(np.diff(mask[::step, ::step, ::step], axis=a))) for a in range(3))
    faces *= step * step  # faces at full resolution, estimated from the sampled grid
    while faces / (step * step) > 2 * MAX_TRIANGLES:
        step *= 2
    return step


def _block_mean(mask: np.ndarray, step: int) -> np.ndarray:
    """The fraction of each ``step``^3 block that is in the mask (blocks at the far edges may be partial)."""
    pad = [(0, -n % step) for n in mask.shape]
    m = np.pad(mask, pad)
    shape = [n // step for n in m.shape]
    out = np.zeros(shape, np.float32)
    for dz in range(step):  # one offset at a time: no step^3-fold temporary
        out += m[dz::step].reshape(shape[0], shape[1], step, shape[2], step).sum(axis=(2, 4), dtype=np.float32)
    return out / step ** 3
