"""Label clean-up and editing: morphology of one class (open, close, dilate, erode, fill holes, remove
small parts), and merging classes (e.g. the instance ids of another tool's labels into one class)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core.data import PALETTE, LabelClass, Labels
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import SLAB, output_like
from ..registry import action

#: operations and how many radii of halo a block needs to equal the whole-scan result
HALO = {"erode": 1, "dilate": 1, "open": 2, "close": 2}


def ball(radius: float, spacing) -> np.ndarray:
    """A ball of ``radius`` (physical units) on a grid of ``spacing``: an anisotropic footprint.

    Examples
    --------
    >>> ball(1.0, (1, 1, 1)).astype(int).sum()
    7
    >>> ball(1.0, (2, 1, 1)).shape
    (1, 3, 3)
    """
    r = np.floor(radius / np.asarray(spacing, float) + 1e-9).astype(int)
    axes = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((a * s) ** 2 for a, s in zip(axes, spacing)) <= radius ** 2 + 1e-9


def _apply(mask: np.ndarray, operation: str, fp: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    op = {"erode": ndimage.binary_erosion, "dilate": ndimage.binary_dilation,
          "open": ndimage.binary_opening, "close": ndimage.binary_closing}[operation]
    return op(mask, structure=fp)


@action("morphology", result="cleaned", category="Measure")
def morphology(labels: Labels, operation: Literal["open", "close", "dilate", "erode", "fill_holes", "remove_small"],
               class_: str, radius: float = 1.0, min_voxels: int = 0, into: str | None = None) -> Labels:
    """Clean up one class of a segmentation: open (remove specks and thin spurs), close (fill small gaps),
    dilate, erode (with a ball of ``radius`` in the scan's units, anisotropic where the voxels are),
    fill holes (enclosed cavities), or remove the parts of fewer than ``min_voxels`` voxels. Voxels added
    to the class take it; voxels it loses take the class ``into`` (default: unlabelled, 0).

    Open, close, dilate and erode run slab by slab with a halo and equal ``scipy.ndimage`` on the whole
    scan (a border counts as outside the class); fill_holes and remove_small look at the whole scan
    (held in memory as a mask).

    Parameters
    ----------
    labels : Labels
        A segmentation.
    operation : {"open", "close", "dilate", "erode", "fill_holes", "remove_small"}
        What to do.
    class : str
        The class to clean.
    radius : float
        The ball's radius, in the scan's units.
    min_voxels : int
        remove_small: parts of the class with fewer voxels (26-connected) are removed.
    into : str, optional
        The class that voxels removed from ``class`` become (default: unlabelled).

    Examples
    --------
    >>> clean = morphology(seg, "remove_small", class_="pore", min_voxels=8, into="metal")   # doctest: +SKIP
    """
    k = labels.class_index(class_)
    fill = labels.class_index(into) if into is not None else 0
    if radius <= 0:
        raise ParameterError(f"radius must be positive, got {radius}")
    out = output_like([labels], labels.shape, labels.data.dtype)
    if operation in HALO:
        fp = ball(radius, labels.spacing)
        halo = HALO[operation] * (fp.shape[0] // 2)
        nz = labels.shape[0]
        for z0 in range(0, nz, SLAB):
            z1 = min(nz, z0 + SLAB)
            a, b = max(0, z0 - halo), min(nz, z1 + halo)
            lab = np.asarray(labels.data[a:b])
            # the block's own faces are the scan's where it has them (scipy treats both alike); elsewhere
            # the halo's planes are real data, and a face's effect reaches no further than the halo
            got = _apply(lab == k, operation, fp)[z0 - a:z1 - a]
            core = lab[z0 - a:z1 - a].copy()
            was = core == k
            core[got & ~was] = k
            core[was & ~got] = fill
            out[z0:z1] = core
    else:
        from scipy import ndimage

        lab = np.asarray(labels.data)
        m = lab == k
        if operation == "fill_holes":
            got = ndimage.binary_fill_holes(m)
        elif operation == "remove_small":
            ids, n = ndimage.label(m, ndimage.generate_binary_structure(3, 3))
            sizes = np.bincount(ids.ravel(), minlength=n + 1)
            got = m & (sizes[ids] >= min_voxels)
        else:
            raise ParameterError(f"unknown operation {operation!r}")
        res = lab.copy()
        res[got & ~m] = k
        res[m & ~got] = fill
        out[:] = res
    return labels.with_data(out, name=f"{labels.name}_{operation}" if labels.name else operation)


def merged_classes(names: list[str], merge: list[str], into: str, unlabelled: str | None) -> tuple[list[str], list[int]]:
    """The class names after merging ``merge`` into ``into`` (and naming the unlabelled voxels
    ``unlabelled``), and where each value goes: ``lut[old value]`` is the new value (0 is unlabelled).

    ``into`` takes the place of the first merged class, or is the kept class of that name; a new
    ``unlabelled`` class comes first.

    Examples
    --------
    >>> merged_classes(["a", "b", "c"], ["a", "c"], "ac", None)
    (['ac', 'b'], [0, 1, 2, 1])
    >>> merged_classes(["1", "2"], ["1", "2"], "nucleus", "background")
    (['background', 'nucleus'], [1, 2, 2])
    """
    new = [unlabelled] if unlabelled is not None and unlabelled not in names and unlabelled != into else []
    for n in names:
        if n not in merge:
            new.append(n)
        elif into not in new and (into not in names or into in merge):
            new.append(into)
    lut = [new.index(unlabelled) + 1 if unlabelled is not None else 0]
    lut += [new.index(into if n in merge else n) + 1 for n in names]
    return new, lut


@action("merge_classes", result="merged", category="Segment")
def merge_classes(labels: Labels, into: str, classes: list[str] | None = None,
                  unlabelled: str | None = None) -> Labels:
    """Merge classes into one: e.g. the instance ids of labels from another tool (a class per nucleus)
    into one class ``nucleus``, for training or as the truth of ``evaluate``. Optionally the unlabelled
    voxels (0) become a class too (``unlabelled="background"``), for a truth that marks everything.

    Streamed slab by slab; the other classes keep their names and colours.

    Parameters
    ----------
    labels : Labels
        Labels with the classes to merge.
    into : str
        The merged class: a new name, or a class of ``labels`` that the others join.
    classes : list of str, optional
        The classes to merge (default: all of them).
    unlabelled : str, optional
        A class for the unlabelled voxels (a new name first in the list, or an existing class).

    Examples
    --------
    >>> truth = merge_classes(ids, into="nucleus", unlabelled="background")   # doctest: +SKIP
    """
    names = labels.class_names
    merge = list(dict.fromkeys(classes if classes is not None else names))
    for n in merge:
        labels.class_index(n)  # an unknown class: a clear error with did-you-mean
    if not merge:
        raise ParameterError("merge_classes needs at least one class to merge")
    if not str(into).strip() or (unlabelled is not None and not str(unlabelled).strip()):
        raise ParameterError("a class name must not be empty")
    if unlabelled in merge and unlabelled != into:
        raise ParameterError(f"unlabelled={unlabelled!r} names a class that is merged into {into!r}")
    new, lut = merged_classes(names, merge, into, unlabelled)
    colours = {c.name: c.color for c in labels.classes}
    colours.setdefault(into, colours[merge[0]])
    classes_out = [LabelClass(i + 1, n, colours.get(n, PALETTE[i % len(PALETTE)])) for i, n in enumerate(new)]
    dtype = labels.data.dtype if len(new) <= np.iinfo(labels.data.dtype).max else np.uint16
    table = np.asarray(lut, dtype)
    out = output_like([labels], labels.shape, dtype)
    for z0 in range(0, labels.shape[0], SLAB):
        lab = np.asarray(labels.data[z0:z0 + SLAB])
        if lab.size and (lab.min() < 0 or lab.max() > len(names)):
            bad = int(lab.max()) if lab.max() > len(names) else int(lab.min())
            raise InputError(f"labels hold the value {bad} in slices {z0}..{z0 + len(lab) - 1}, but only "
                             f"classes 1..{len(names)} are named", labels.source)
        out[z0:z0 + SLAB] = table[lab]
    return labels.as_labels(out, classes_out, name=f"{labels.name}_merged" if labels.name else "merged")
