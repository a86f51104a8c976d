"""From a class map to objects and numbers: label_objects, measure_objects, class_fractions."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core.data import Labels, Table, Volume, make_classes
from ..core.errors import ParameterError
from ..core.volume_ops import SLAB, output_like, read_depth
from ..objects import _components as objects
from ..objects import _separate as separate
from ..registry import action


def _indices(labels: Labels, class_: str | None, classes: list[str] | None) -> list[int]:
    if class_ is not None and classes:
        raise ParameterError("give class or classes, not both")
    names = [class_] if class_ is not None else list(classes or [])
    if not names:
        if len(labels.classes) > 1:
            raise ParameterError(f"name the class whose objects to label: class=\"...\" (classes: "
                                 f"{', '.join(labels.class_names)})")
        names = labels.class_names
    return [labels.class_index(n) for n in names]


@action("label_objects", result="objects", category="Measure")
def label_objects(labels: Labels, class_: str | None = None, classes: list[str] | None = None,
                  connectivity: Literal[6, 18, 26] = 26, min_voxels: int = 0) -> Labels:
    """The objects of a class: its connected components, each voxel given its object's id (1, 2, ... in
    the order of the objects' first voxels in the scan; 0 elsewhere).

    Streamed slab by slab (with ``cc3d``): objects that cross slabs are joined, so a scan of any size gives
    exactly the partition an in-memory labelling gives.

    Parameters
    ----------
    labels : Labels
        A segmentation.
    class : str, optional
        The class whose objects to label (e.g. "pore"); needed when the labels have several.
    classes : list of str, optional
        Several classes labelled together (their union).
    connectivity : {6, 18, 26}
        Voxels sharing a face (6), a face or an edge (18), or any corner (26) belong to one object.
    min_voxels : int
        Objects of fewer voxels are dropped (set to 0); the others keep their order.

    Examples
    --------
    >>> pores = label_objects(seg, class_="pore")                # doctest: +SKIP
    """
    if min_voxels < 0:
        raise ParameterError(f"min_voxels must be 0 or more, got {min_voxels}")
    idx = _indices(labels, class_, classes)
    def mask(z0, z1):
        a = np.asarray(labels.data[z0:z1])
        return a == idx[0] if len(idx) == 1 else np.isin(a, idx)

    # a scan in memory is labelled at once (cc3d's own speed, into its own array); one on disk, or into
    # scratch, slab by slab
    out = output_like([labels], labels.shape, np.uint32, compress=True)
    if isinstance(labels.data, np.ndarray) and isinstance(out, np.ndarray) and labels.data.size < 2 ** 31:
        out, n = objects.label_whole(mask(0, labels.shape[0]), connectivity)
    else:
        n = objects.label(mask, labels.shape, out, connectivity, slab=read_depth(labels.data, 128 * 2 ** 20))
    if min_voxels > 0 and n:
        n = _drop_small(out, n, min_voxels)
    return labels.as_labels(out, make_classes(["object"]), name=f"{labels.name}_objects" if labels.name else "objects",
                            metadata={"objects": int(n), "of_classes": [labels.class_names[i - 1] for i in idx]})


def _drop_small(out, n: int, min_voxels: int) -> int:
    return _keep(out, out, _counts(out, n) >= min_voxels)


def _counts(ids, n: int) -> np.ndarray:
    counts = np.zeros(n + 1, np.int64)
    for z0 in range(0, ids.shape[0], SLAB):
        counts += np.bincount(np.asarray(ids[z0:z0 + SLAB]).ravel(), minlength=n + 1)[:n + 1]
    return counts


def _keep(src, out, keep: np.ndarray) -> int:
    """Copy the objects of ``src`` that ``keep`` (by id, index 0 ignored) into ``out``, renumbered 1..k in
    their order (the scan order stays), slab by slab; returns k."""
    keep = keep.copy()
    keep[0] = False
    lut = np.zeros(len(keep), np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    for z0 in range(0, src.shape[0], SLAB):
        out[z0:z0 + SLAB] = lut[np.asarray(src[z0:z0 + SLAB])]
    return int(keep.sum())


@action("filter_objects", result="objects", category="Measure")
def filter_objects(objects_: Labels, min_volume: float | None = None, max_volume: float | None = None,
                   exclude_border: bool = False, largest: int | None = None) -> Labels:
    """Keep the objects within a volume range, away from the scan's border, or the largest ones; the kept
    objects are renumbered 1, 2, ... in their order.

    Parameters
    ----------
    objects : Labels
        Objects from ``label_objects`` or ``separate_objects``.
    min_volume, max_volume : float, optional
        Volume bounds in the scan's units (cubed), inclusive.
    exclude_border : bool
        Drop the objects that touch the scan's border (cut by the field of view: their sizes are wrong).
    largest : int, optional
        Then keep only this many, the largest (ties: the first in the scan).

    Examples
    --------
    >>> inside = filter_objects(pores, min_volume=1e-3, exclude_border=true)   # doctest: +SKIP
    """
    if largest is not None and largest < 0:
        raise ParameterError(f"largest must be 0 or more, got {largest}")
    n = objects.object_count(objects_, MAX_IDS)
    counts = _counts(objects_.data, n)
    volume = counts * float(np.prod(objects_.spacing))
    keep = counts > 0
    keep[0] = False  # not an object
    if min_volume is not None:
        keep &= volume >= min_volume
    if max_volume is not None:
        keep &= volume <= max_volume
    if exclude_border:
        d, (nz, ny, nx) = objects_.data, objects_.shape
        for face in (d[0], d[nz - 1], d[:, 0], d[:, ny - 1], d[:, :, 0], d[:, :, nx - 1]):
            keep[np.unique(np.asarray(face))] = False
    if largest is not None:
        order = np.argsort(-np.where(keep, volume, -1), kind="stable")
        top = np.zeros_like(keep)
        top[order[:largest]] = True
        keep &= top
    out = output_like([objects_], objects_.shape, np.uint32, compress=True)
    k = _keep(objects_.data, out, keep)
    return objects_.as_labels(out, make_classes(["object"]), name=f"{objects_.name}_filtered",
                              metadata={**objects_.metadata, "objects": k})


@action("measure_objects", result="table", category="Measure")
def measure_objects(objects_: Labels, image: Volume | None = None, thickness: Volume | None = None) -> Table:
    """One row per object: its size, shape, position and grey values, in the scan's physical units.

    Columns: ``id``, ``voxels``, ``volume``, ``equivalent_diameter`` (of the ball of that volume),
    ``surface_area`` (marching cubes), ``sphericity`` (π^(1/3)·(6V)^(2/3)/A: 1 for a ball, less otherwise),
    ``centroid_z/y/x``, the bounding box ``bbox_z0`` .. ``bbox_x1`` (voxel indices, half-open),
    ``axis_major/middle/minor_length`` (as ``skimage.measure.regionprops`` gives them), the major axis's
    direction ``orientation_z/y/x`` (a unit vector in physical space, its first non-zero component
    positive), ``touches_border``; with ``image`` its ``mean_grey``, ``min_grey``, ``max_grey``; with
    ``thickness`` its ``mean_thickness`` and ``max_thickness``. Streamed slab by slab; objects that cross
    slabs are measured exactly.

    Parameters
    ----------
    objects : Labels
        Object ids, from ``label_objects``.
    image : Volume, optional
        A scan of the same grid whose grey values to summarise per object.
    thickness : Volume, optional
        A local thickness map (``local_thickness``) of the same grid, summarised per object.

    Examples
    --------
    >>> pores = label_objects(seg, class_="pore")                # doctest: +SKIP
    >>> table = measure_objects(pores)                           # doctest: +SKIP
    """
    for other in (image, thickness):
        if other is not None:
            objects_.check_same_geometry(other)
    n = objects.object_count(objects_, MAX_IDS)
    cols = objects.measure(objects_.data, n, objects_.spacing, objects_.origin,
                           None if image is None else image.data, None if thickness is None else thickness.data)
    return Table({k: v.tolist() for k, v in cols.items()}, name=f"{objects_.name}_measurements",
                 metadata={"unit": objects_.unit, "objects": n})


#: object ids past this are not ids from label_objects (measuring would take per-id arrays that large)
MAX_IDS = 10_000_000


@action("class_fractions", result="table", category="Measure")
def class_fractions(labels: Labels) -> Table:
    """Voxels, volume and fraction of the scan per class (e.g. the porosity), in physical units.

    Parameters
    ----------
    labels : Labels
        A segmentation.

    Examples
    --------
    >>> class_fractions(seg).row("class", "pore")["fraction"]     # doctest: +SKIP
    0.012
    """
    k = len(labels.classes)
    counts = np.zeros(max(k, 1) + 1, np.int64)
    for z0 in range(0, labels.shape[0], SLAB):
        a = np.asarray(labels.data[z0:z0 + SLAB]).ravel()
        counts += np.bincount(np.clip(a, 0, k), minlength=k + 1)[:k + 1]
    total = int(np.prod(labels.shape))
    voxel = float(np.prod(labels.spacing))
    names = ["(unlabelled)"] + labels.class_names
    rows = [i for i in range(k + 1) if i > 0 or counts[0] > 0]
    return Table({"class": [names[i] for i in rows], "voxels": [int(counts[i]) for i in rows],
                  "volume": [float(counts[i] * voxel) for i in rows],
                  "fraction": [float(counts[i] / total) for i in rows], "unit": [labels.unit] * len(rows)},
                 name=f"{labels.name}_fractions" if labels.name else "class_fractions", metadata={"unit": labels.unit})


@action("separate_objects", result="objects", category="Measure")
def separate_objects(objects_: Labels, markers: Literal["h_maxima", "peak_local_max"] = "h_maxima",
                     h: float | None = None, smooth: float | None = None, min_distance: float | None = None,
                     connectivity: Literal[6, 18, 26] = 26) -> Labels:
    """Split touching objects (grains, particles, nuclei) along their necks: the distance transform of the
    objects (in physical units), lightly smoothed, one marker per maximum, then a watershed from the
    markers (scikit-image); an object without a marker stays whole. Ids are renumbered in scan order.
    A scan on disk is split group by group of objects (by the planes they start in, with a halo), into
    chunked storage: memory follows the objects' depth, and the result equals splitting it at once.

    On the real nuclei (20 instances, 12 connected components) the defaults give 22 objects
    (``benchmarks/README.md``).

    Parameters
    ----------
    objects : Labels
        Objects from ``label_objects`` (each is split on its own).
    markers : {"h_maxima", "peak_local_max"}
        Maxima of the distance standing at least ``h`` above their surroundings (robust to the plateaus
        of a distance map), or local maxima at least ``min_distance`` apart.
    h : float, optional
        How far a maximum must stand out, in the scan's units (default: 2 voxels of the finest spacing).
    smooth : float, optional
        Gaussian smoothing of the distance map, in the scan's units (default: 1 voxel; 0 for none).
    min_distance : float, optional
        ``peak_local_max``: the smallest distance between two markers, in the scan's units (default: 4
        voxels).
    connectivity : {6, 18, 26}
        The connectivity of the watershed.

    Examples
    --------
    >>> nuclei = separate_objects(label_objects(seg, class_="nucleus"))    # doctest: +SKIP
    """
    sp = np.asarray(objects_.spacing, float)
    h = 2 * float(sp.min()) if h is None else h
    smooth = float(sp.min()) if smooth is None else smooth
    min_distance = 4 * float(sp.min()) if min_distance is None else min_distance
    for name, v in (("h", h), ("min_distance", min_distance)):
        if not v > 0:
            raise ParameterError(f"{name} must be positive, got {v}")
    if smooth < 0:
        raise ParameterError(f"smooth must be 0 or more, got {smooth}")
    n = objects.object_count(objects_, MAX_IDS)
    out = output_like([objects_], objects_.shape, np.uint32, compress=True)
    n = separate.separate(objects_.data, n, out, sp, h, smooth, min_distance, markers, connectivity,
                          group_depth=objects_.shape[0] if isinstance(out, np.ndarray) else None)
    return objects_.as_labels(out, make_classes(["object"]), name=f"{objects_.name}_separated",
                              metadata={**objects_.metadata, "objects": int(n)})
