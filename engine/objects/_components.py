"""Objects: connected components of a class, and their measurements, slab by slab.

**Labelling** (:func:`label`). Each z-slab of the mask is labelled with ``cc3d`` (connected-components-3d);
slab ``k``'s ids are offset past those of the slabs before it, so the provisional ids follow the scan
order. The objects that meet across a slab face are joined (a union of the provisional ids on both sides
of the face, with the face neighbours of the connectivity: 6, 18 or 26), then one pass renumbers every
voxel: an object's id is the rank of its first voxel in the scan (C order, z slowest), so the result
equals an in-memory labelling of the whole scan, voxel for voxel, whatever the slab size. Memory: a slab
and one id per provisional object.

**Measuring** (:func:`measure`). One streamed pass sums, per object, its voxels, coordinates and their
products (centroid, inertia: principal axes as ``skimage.measure.regionprops`` gives them), bounding box
and grey values; surfaces are marching-cubes areas (in physical units) summed cube by cube: with a
binary mask at level 0.5 a cube's triangles, hence its area, depend only on which of its 8 corners are
in the object, so a table of the 256 cases (made once per spacing with ``skimage``'s marching cubes)
gives every object's area in one streamed pass, equal to marching cubes on the object's padded mask.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..core import progress
from ..core.volume_ops import SLAB

#: in-plane offsets (dy, dx) of the neighbours across a z face, per connectivity
FACE = {6: [(0, 0)], 18: [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)],
        26: [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]}


#: the most bytes of packed masks :func:`label` keeps between its passes (else it reads the scan twice)
KEEP_PACKED = 256 * 2 ** 20


def label(mask_slab, shape, out, connectivity: int = 26, slab: int = SLAB) -> int:
    """Label the connected components of a mask into ``out`` (an integer array of ``shape``, written slab
    by slab) and return their number. ``mask_slab(z0, z1)`` gives the boolean mask of planes ``z0:z1``.

    Two passes over the mask: the first labels each slab and joins the ids that meet across its faces,
    the second labels each slab again (``cc3d`` is deterministic) and writes the final ids, so ``out`` is
    written once and never read. The first pass keeps the masks packed 8 voxels a byte (up to
    ``KEEP_PACKED`` bytes), so the second reads the scan again only past that.

    Examples
    --------
    >>> m = np.zeros((4, 3, 3), bool); m[0, 0, 0] = m[3, 2, 2] = m[1:3, 1, 1] = True
    >>> out = np.zeros(m.shape, np.uint32)
    >>> label(lambda a, b: m[a:b], m.shape, out, connectivity=6, slab=1)
    3
    >>> out[:, 1, 1].tolist(), int(out[3, 2, 2])
    ([0, 2, 2, 0], 3)
    """
    if connectivity not in FACE:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    nz = shape[0]
    if slab >= nz:
        out[...], n = label_whole(mask_slab(0, nz), connectivity)
        return n
    starts = list(range(0, nz, slab))
    task = progress.task("Labelling objects", total=2 * len(starts))
    offsets, pairs, last = [], [], None
    total = 0
    keep = int(np.prod(shape)) // 8 <= KEEP_PACKED
    packed = {}
    for z0 in starts:
        m = mask_slab(z0, min(nz, z0 + slab))
        if keep:
            packed[z0] = np.packbits(m)
        ids, n = _cc(m, connectivity)
        first = _shifted(ids[0], total)
        if last is not None:
            pairs.append(_face_pairs(last, first, connectivity))
        offsets.append((total, n))
        last, total = _shifted(ids[-1], total), total + n
        if total >= np.iinfo(out.dtype).max:
            raise OverflowError(f"more than {np.iinfo(out.dtype).max:,} provisional objects")
        task.advance()
    lut, n = _renumber(total, pairs)
    lut = lut.astype(out.dtype)
    for z0, (off, count) in zip(starts, offsets):
        z1 = min(nz, z0 + slab)
        m = np.unpackbits(packed.pop(z0), count=(z1 - z0) * int(np.prod(shape[1:]))).reshape(
            z1 - z0, *shape[1:]).view(bool) if keep else mask_slab(z0, z1)
        ids, _n = _cc(m, connectivity)
        here = lut[off:off + count + 1].copy()  # this slab's id k is provisional id off + k
        here[0] = 0
        out[z0:z1] = here[ids]
        task.advance()
    task.finish()
    return n


def label_whole(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """The uint32 ids of the objects of a mask in memory (1, 2, ... in scan order: ``cc3d`` numbers them
    so) and their number."""
    if connectivity not in FACE:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    return _cc(mask, connectivity)


def _cc(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    import cc3d

    ids, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool), connectivity=connectivity,
                                       return_N=True, out_dtype=np.uint32)
    return ids, int(n)


def _shifted(plane: np.ndarray, offset: int) -> np.ndarray:
    """A plane of a slab's ids as provisional ids of the whole scan (0 stays 0)."""
    p = plane.astype(np.uint64)
    p[p > 0] += offset
    return p


def _face_pairs(below: np.ndarray, above: np.ndarray, connectivity: int) -> np.ndarray:
    """(k, 2) provisional ids touching across a z face, each pair once: ``below`` is the last plane of a
    slab, ``above`` the first plane of the next (both as provisional ids of the scan)."""
    ny, nx = below.shape
    out = []
    for dy, dx in FACE[connectivity]:
        a = below[max(0, -dy):ny - max(0, dy), max(0, -dx):nx - max(0, dx)]
        b = above[max(0, dy):ny - max(0, -dy), max(0, dx):nx - max(0, -dx)]
        both = (a > 0) & (b > 0)
        out.append(np.stack([a[both], b[both]], axis=1))
    p = np.concatenate(out)
    if len(p) < 2:
        return p
    # neighbouring pixels mostly repeat a pair: drop the runs, then the rest through one sort of 1-D keys
    p = p[np.r_[True, np.any(p[1:] != p[:-1], axis=1)]]
    lo = p.min(axis=0)
    span = p.max(axis=0) - lo + 1
    if span[0] * span[1] < 2 ** 63:
        keys = np.unique((p[:, 0] - lo[0]) * span[1] + (p[:, 1] - lo[1]))
        return np.stack([keys // span[1] + lo[0], keys % span[1] + lo[1]], axis=1)
    return np.unique(p, axis=0)


def _renumber(total: int, pairs: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """The map from provisional ids (0..total) to final ids: joined ids share one, numbered by their
    smallest provisional id (the scan order); 0 stays 0."""
    p = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.uint64)
    graph = coo_matrix((np.ones(len(p), np.int8), (p[:, 0].astype(np.int64), p[:, 1].astype(np.int64))),
                       shape=(total + 1, total + 1))
    _n, comp = connected_components(graph, directed=False)
    first = np.full(comp.max() + 1, total + 1, np.int64)
    np.minimum.at(first, comp[1:], np.arange(1, total + 1))  # each component's smallest provisional id
    rank = np.zeros(comp.max() + 1, np.uint64)
    used = np.flatnonzero(first <= total)
    rank[used[np.argsort(first[used])]] = np.arange(1, len(used) + 1)
    lut = rank[comp]
    lut[0] = 0
    return lut, len(used)



def object_count(lab, most: int | None = None) -> int:
    """The number of objects of object ids ``lab`` (Labels): its ``metadata["objects"]``, else its largest
    id, read slab by slab; above ``most`` ids an :class:`InputError` (not ids from ``label_objects``)."""
    n = lab.metadata.get("objects")
    if n:
        return int(n)
    top = 0
    for z0 in range(0, lab.shape[0], SLAB):
        top = max(top, int(np.asarray(lab.data[z0:z0 + SLAB]).max(initial=0)))
    if most is not None and top > most:
        from ..core.errors import InputError

        raise InputError(f"holds object ids up to {top:,}; measure_objects takes ids from label_objects", lab.source)
    return top


# --------------------------------------------------------------------------------------------- measuring
def measure(data, n: int, spacing, origin, image=None, thickness=None, slab: int = SLAB) -> dict[str, np.ndarray]:
    """Per object 1..n of the object ids ``data`` (z, y, x): the columns of ``measure_objects`` (see the
    action's docstring), physical units from ``spacing`` and ``origin``; grey values of ``image`` and
    local thickness of ``thickness`` (arrays of ``data``'s shape) summarised per object."""
    sp, org = np.asarray(spacing, float), np.asarray(origin, float)
    shape = data.shape
    slab = bounded_slab(slab, shape)
    cnt = np.zeros(n + 1, np.int64)
    s1 = np.zeros((n + 1, 3))
    s2 = np.zeros((n + 1, 3, 3))
    lo = np.full((n + 1, 3), np.iinfo(np.int64).max, np.int64)
    hi = np.full((n + 1, 3), -1, np.int64)
    extra = {k: _Summary(v, n) for k, v in (("grey", image), ("thickness", thickness)) if v is not None}
    task = progress.task("Measuring objects", total=math.ceil(shape[0] / slab))
    for z0 in range(0, shape[0], slab):
        ids = np.asarray(data[z0:z0 + slab])
        zz, yy, xx = np.nonzero(ids)
        k = ids[zz, yy, xx].astype(np.intp)
        pos = (zz + z0, yy, xx)
        cnt += np.bincount(k, minlength=n + 1)
        phys = [p * float(sp[a]) for a, p in enumerate(pos)]  # relative to the origin; added back at the end
        for a in range(3):
            s1[:, a] += np.bincount(k, phys[a], minlength=n + 1)
            for b in range(a, 3):
                s2[:, a, b] += np.bincount(k, phys[a] * phys[b], minlength=n + 1)
            np.minimum.at(lo[:, a], k, pos[a])
            np.maximum.at(hi[:, a], k, pos[a])
        for summary in extra.values():
            summary.add(k, (z0, zz, yy, xx), slab)
        task.advance()
    cnt1 = np.maximum(cnt, 1)[1:]
    mean = s1[1:] / cnt1[:, None]
    cov = s2[1:] / cnt1[:, None, None] - mean[:, :, None] * mean[:, None, :]
    for a in range(3):
        for b in range(a):
            cov[:, a, b] = cov[:, b, a]
    lam, vec = np.linalg.eigh(cov)  # ascending; columns are the axes
    lam = np.clip(lam, 0, None)
    major = vec[:, :, 2] * np.where(_first_nonzero(vec[:, :, 2]) < 0, -1.0, 1.0)[:, None]  # one sign per axis
    area = surface_areas(data, n, sp, slab)[1:]
    task.finish()
    vol = cnt[1:] * float(np.prod(sp))
    cols = {
        "id": np.arange(1, n + 1), "voxels": cnt[1:], "volume": vol,
        "equivalent_diameter": np.cbrt(6 * vol / np.pi), "surface_area": area,
        "sphericity": np.where(area > 0, np.pi ** (1 / 3) * (6 * vol) ** (2 / 3) / np.maximum(area, 1e-300), 0.0),
        "centroid_z": mean[:, 0] + org[0], "centroid_y": mean[:, 1] + org[1], "centroid_x": mean[:, 2] + org[2],
        "bbox_z0": lo[1:, 0], "bbox_y0": lo[1:, 1], "bbox_x0": lo[1:, 2],
        "bbox_z1": hi[1:, 0] + 1, "bbox_y1": hi[1:, 1] + 1, "bbox_x1": hi[1:, 2] + 1,
        "axis_major_length": np.sqrt(20 * lam[:, 2]), "axis_middle_length": np.sqrt(20 * lam[:, 1]),
        "axis_minor_length": np.sqrt(20 * lam[:, 0]),
        "orientation_z": major[:, 0], "orientation_y": major[:, 1], "orientation_x": major[:, 2],
        "touches_border": np.any((lo[1:] == 0) | (hi[1:] == np.asarray(shape) - 1), axis=1),
    }
    if "grey" in extra:
        g = extra["grey"]
        cols.update(mean_grey=g.sum[1:] / cnt1, min_grey=g.min[1:], max_grey=g.max[1:])
    if "thickness" in extra:
        t = extra["thickness"]
        cols.update(mean_thickness=t.sum[1:] / cnt1, max_thickness=t.max[1:])
    return cols


class _Summary:
    """Sum, min and max per object of the values of one array, gathered slab by slab."""

    def __init__(self, data, n: int):
        self.data, self.sum, self.min, self.max = data, np.zeros(n + 1), np.full(n + 1, np.inf), np.full(n + 1, -np.inf)

    def add(self, k: np.ndarray, where, slab: int) -> None:
        z0, zz, yy, xx = where
        v = np.asarray(self.data[z0:z0 + slab], np.float64)[zz, yy, xx]
        self.sum += np.bincount(k, v, minlength=len(self.sum))
        np.minimum.at(self.min, k, v)
        np.maximum.at(self.max, k, v)


def _first_nonzero(v: np.ndarray) -> np.ndarray:
    """Per row, its first component that is not (nearly) zero: fixes the sign of an axis direction."""
    big = np.abs(v) > 1e-9
    return v[np.arange(len(v)), np.argmax(big, axis=1)]


#: corner k of a cube sits at (dz, dy, dx) = the bits of k
CORNERS = [((k >> 2) & 1, (k >> 1) & 1, k & 1) for k in range(8)]


def area_table(spacing) -> np.ndarray:
    """The marching-cubes area (level 0.5, ``spacing``) of one cube for each of the 256 sets of corners
    inside (bit k = corner k of :data:`CORNERS`)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    table = np.zeros(256)
    for code in range(1, 255):
        cube = np.zeros((2, 2, 2), np.float32)
        for k, c in enumerate(CORNERS):
            cube[c] = (code >> k) & 1
        verts, faces, _, _ = marching_cubes(cube, 0.5, spacing=tuple(float(s) for s in spacing))
        table[code] = mesh_surface_area(verts, faces)
    return table


#: voxels per slab at most when measuring (a slab's coordinates and corner arrays take ~60 bytes a voxel)
MEASURE_VOXELS = 2 ** 24


def bounded_slab(slab: int, shape) -> int:
    """``slab`` planes, fewer where planes are large, so that a slab holds at most ``MEASURE_VOXELS``.

    Examples
    --------
    >>> bounded_slab(16, (100, 1024, 1024)), bounded_slab(16, (100, 2048, 2048)), bounded_slab(16, (9, 8, 8))
    (16, 4, 16)
    """
    plane = max(1, int(np.prod(shape[1:3])))
    return max(1, min(slab, MEASURE_VOXELS // plane))


def surface_areas(data, n: int, spacing, slab: int = SLAB) -> np.ndarray:
    """The marching-cubes surface area of every object 1..n of ``data`` (index 0: none), as if each
    object's mask were padded with zeros (closed at the scan's border); streamed by layers of cubes.

    A cube whose corners hold one object (and background) adds ``table[code]`` to it at once, with the
    code from which corners are non-zero: every boundary cube of a 26-connected labelling is such a cube.
    Cubes where objects touch (split objects, 6- or 18-connected ones) go through the general path: each
    object of the cube with its own code."""
    table = area_table(spacing)
    area = np.zeros(n + 1)
    nz, ny, nx = data.shape
    slab = bounded_slab(slab, data.shape)
    dtype = np.dtype(getattr(data, "dtype", np.int64))
    dtype = dtype if dtype.kind == "u" else np.dtype(np.int64)
    for p0 in range(-1, nz, slab):  # cube layers p0..p1-1 use planes p0..p1 (-1 and nz: the zero padding)
        p1 = min(nz, p0 + slab)
        block = np.zeros((p1 - p0 + 1, ny + 2, nx + 2), dtype)
        a, b = max(0, p0), min(nz - 1, p1)
        block[a - p0:b - p0 + 1, 1:-1, 1:-1] = np.asarray(data[a:b + 1])
        c = [block[dz:dz + p1 - p0, dy:dy + ny + 1, dx:dx + nx + 1] for dz, dy, dx in CORNERS]
        code = np.zeros(c[0].shape, np.uint8)
        top = c[0].copy()
        for k, ck in enumerate(c):
            code |= (ck != 0).view(np.uint8) << k
            if k:
                np.maximum(top, ck, out=top)
        edge = (code != 0) & (code != 255)
        same = np.zeros(c[0].shape, np.uint8)  # corners holding the cube's largest id
        for ck in c:
            same += (ck == top).view(np.uint8)
        several = (same != _BITS[code]) & (code != 0)  # a non-zero corner holds another object
        one = edge & ~several
        area += np.bincount(top[one].astype(np.intp), table[code[one]], minlength=n + 1)
        if several.any():
            _touching_areas(np.stack([ck[several] for ck in c], axis=1), table, area)
    return area


#: the number of corners set in each of the 256 cube codes
_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _touching_areas(corners: np.ndarray, table: np.ndarray, area: np.ndarray) -> None:
    """Add the areas of cubes whose corners (rows of 8 ids) hold several objects: each (cube, object)
    once, at the object's first corner in the cube."""
    n = len(area) - 1
    for k in range(8):
        ref = corners[:, k]
        first = ref != 0
        for j in range(k):
            first &= corners[:, j] != ref
        sub, r = corners[first], ref[first]
        code = np.zeros(len(r), np.int64)
        for j in range(8):
            code |= (sub[:, j] == r).astype(np.int64) << j
        area += np.bincount(r.astype(np.intp), table[code], minlength=n + 1)
