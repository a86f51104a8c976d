"""Grey-value and label actions: ``calibrate``, ``threshold``, ``crop``, ``evaluate``."""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np

from ..core import progress
from ..core.data import Labels, Table, Volume, listed, make_classes
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import SLAB, map_slabs, output_like, require_finite, sample
from ..registry import action

V = TypeVar("V", bound=Volume | Labels)

def _box_slices(box, vol: Volume | Labels, what: str) -> tuple[slice, slice, slice]:
    if len(box) != 6:
        raise ParameterError(f"{what} must be [z0, y0, x0, z1, y1, x1], got {box}")
    lo, hi = np.array(box[:3]), np.array(box[3:])
    if np.any(lo < 0) or np.any(hi > np.array(vol.shape)) or np.any(hi <= lo):
        raise ParameterError(f"{what} {list(box)} is empty or outside the volume {vol.source} "
                             f"of shape {vol.shape} (z, y, x)")
    return slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])), slice(int(lo[2]), int(hi[2]))


@action("calibrate", result="cal", toolbar=2, roles={"regions": "boxes"},
        when={"low": ("method", ("percentile",)), "high": ("method", ("percentile",)),
              "clip": ("method", ("percentile",)), "regions": ("method", ("two_point",)),
              "labels": ("method", ("two_point",)), "values": ("method", ("two_point",)),
              "reference": ("method", ("match",))})
def calibrate(volume: Volume, method: Literal["percentile", "two_point", "match"] = "percentile",
              low: float = 0.5, high: float = 99.5,
              regions: list[list[int]] | list[str] | None = None, labels: Labels | None = None,
              values: list[float] = [0.0, 1.0], reference: Volume | None = None,  # noqa: B006 (values: never mutated)
              clip: bool = True) -> Volume:
    """Map grey values to a common scale, so that a model trained on one scan works on the next.

    Parameters
    ----------
    volume : Volume
        The scan.
    method : {"percentile", "two_point", "match"}
        ``percentile``: the ``low`` and ``high`` percentiles go to 0 and 1. ``two_point``: the mean grey
        value of two reference regions (e.g. air and a known material) goes to the two ``values`` (the
        CT-style calibration). ``match``: histogram matching to ``reference``.
    low, high : float
        Percentiles for ``percentile`` (0..100).
    regions : list
        For ``two_point``: two boxes ``[z0, y0, x0, z1, y1, x1]`` (half-open voxel ranges), or two class
        names of ``labels``.
    labels : Labels, optional
        The labels whose classes ``regions`` names.
    values : list of float
        For ``two_point``: the values the two regions map to.
    reference : Volume, optional
        For ``match``: the volume whose histogram to match.
    clip : bool
        For ``percentile``: clip the result to 0..1.

    Notes
    -----
    ``percentile`` and ``two_point`` stream slab by slab (memory does not grow with the scan);
    ``match`` reads both volumes whole (``skimage.exposure.match_histograms``).

    Returns
    -------
    Volume
        float32, same geometry.
    """
    if volume.data.size == 0:
        raise InputError(f"calibrate: the volume holds no voxels (shape {tuple(volume.shape)})", volume.source)
    if volume.data.dtype.kind == "b":
        raise InputError("calibrate needs grey values, got a boolean (mask) volume", volume.source)
    require_finite(volume)
    if volume.channels != 1:
        raise InputError("calibrate works on single-channel volumes", volume.source)
    if method == "percentile":
        if not 0 <= low < high <= 100:
            raise ParameterError(f"calibrate: need 0 <= low < high <= 100, got low={low}, high={high}")
        lo, hi = np.percentile(sample(volume), [low, high]).astype(np.float64)
        if hi <= lo:
            raise InputError(f"the {low} and {high} percentiles are equal ({lo}): the volume is flat",
                             volume.source)
        scale = 1.0 / (hi - lo)

        def fn(a):
            r = (a.astype(np.float32) - np.float32(lo)) * np.float32(scale)
            return np.clip(r, 0, 1, out=r) if clip else r

        out = map_slabs(volume, fn, np.float32, "Calibrating")
        info = {"method": "percentile", "low_value": float(lo), "high_value": float(hi)}
    elif method == "two_point":
        if regions is None or len(regions) != 2:
            raise ParameterError("calibrate two_point needs regions=[box1, box2] or two class names")
        if len(values) != 2 or values[0] == values[1]:
            raise ParameterError(f"calibrate two_point needs two different values, got {list(values)}")
        means = []
        for i, r in enumerate(regions):
            if isinstance(r, str):
                if labels is None:
                    raise ParameterError(f"calibrate: region '{r}' is a class name but no labels= was given")
                volume.check_same_geometry(labels)
                total, count = _class_sum(volume, labels, labels.class_index(r))
                if not count:
                    raise InputError(f"class '{r}' has no voxels", labels.source)
                means.append(total / count)
            else:
                means.append(float(np.asarray(volume.data[_box_slices(r, volume, f'region {i + 1}')]).mean()))
        if means[0] == means[1]:
            raise InputError(f"the two reference regions have the same mean grey value {means[0]}",
                             volume.source)
        gain = (values[1] - values[0]) / (means[1] - means[0])
        v0, m0 = np.float32(values[0]), np.float32(means[0])
        out = map_slabs(volume, lambda a: (a.astype(np.float32) - m0) * np.float32(gain) + v0, np.float32,
                        "Calibrating")
        info = {"method": "two_point", "means": means, "values": list(values)}
    else:
        if reference is None:
            raise ParameterError("calibrate match needs reference=<a volume>")
        require_finite(reference)
        from skimage.exposure import match_histograms

        task = progress.task("Matching histograms", total=1)
        out = match_histograms(np.asarray(volume.data, np.float32),
                               np.asarray(reference.data, np.float32)).astype(np.float32)
        task.finish()
        info = {"method": "match", "reference": reference.source}
    res = volume.with_data(out, name=f"{volume.name}_cal")
    res.metadata["calibration"] = info
    return res


def _class_sum(volume: Volume, labels: Labels, index: int) -> tuple[float, int]:
    """Sum and count of the grey values where ``labels`` is ``index``, slab by slab."""
    total, count = 0.0, 0
    for z in range(0, volume.shape[0], SLAB):
        m = np.asarray(labels.data[z:z + SLAB]) == index
        if m.any():
            total += float(np.asarray(volume.data[z:z + SLAB], dtype=np.float64)[m].sum())
            count += int(m.sum())
    return total, count


@action("threshold", result="seg", category="Segment")
def threshold(volume: Volume, method: Literal["otsu", "multiotsu"] = "otsu", classes: int = 2,
              names: list[str] | None = None) -> Labels:
    """Segment by grey value with Otsu's threshold (the classic baseline).

    Parameters
    ----------
    volume : Volume
        The (calibrated) scan.
    method : {"otsu", "multiotsu"}
        ``otsu``: one threshold, two classes. ``multiotsu``: ``classes - 1`` thresholds.
    classes : int
        Number of classes for ``multiotsu`` (2 for ``otsu``).
    names : list of str, optional
        Class names from darkest to brightest; default ``class1..classK``.

    Returns
    -------
    Labels
        Every voxel gets a class 1..K (darkest = 1).
    """
    from skimage.filters import threshold_multiotsu, threshold_otsu

    require_finite(volume)
    if method == "otsu" and classes != 2:
        raise ParameterError(f"threshold: otsu makes 2 classes; use method=\"multiotsu\" for {classes}")
    if not 2 <= classes <= 255:
        raise ParameterError(f"threshold: classes must be 2..255, got {classes}")
    names = list(names) if names is not None else [f"class{i}" for i in range(1, classes + 1)]
    if len(names) != classes:
        raise ParameterError(f"threshold: {classes} classes but {len(names)} names: {names}")
    s = sample(volume)
    if s.min() == s.max():
        raise InputError("the volume is flat: nothing to threshold", volume.source)
    t = [threshold_otsu(s)] if method == "otsu" else list(threshold_multiotsu(s, classes=classes))
    ts = np.asarray(t, dtype=np.float64)
    out = map_slabs(volume, lambda a: (np.digitize(a, ts) + 1).astype(np.uint8), np.uint8, "Thresholding")
    seg = volume.as_labels(out, make_classes(names), name=f"{volume.name}_{method}", metadata={})
    seg.metadata["thresholds"] = [float(x) for x in ts]
    return seg


@action("crop", result="cropped", roles={"box": "box"})
def crop(volume: V, box: list[int]) -> V:
    """Cut out a box; the origin moves so physical positions stay the same.

    Parameters
    ----------
    volume : Volume or Labels
        What to crop.
    box : list of int
        ``[z0, y0, x0, z1, y1, x1]``: half-open voxel ranges.

    Returns
    -------
    Volume or Labels
        The same kind as ``volume``.
    """
    sl = _box_slices(box, volume, "crop box")
    origin = tuple(o + s.start * sp for o, s, sp in zip(volume.origin, sl, volume.spacing))
    shape = tuple(s.stop - s.start for s in sl) + tuple(volume.data.shape[3:])
    out = output_like([volume], shape, volume.data.dtype)  # a big crop of a scan on disk stays on disk
    for z in range(0, shape[0], SLAB):
        zs = slice(sl[0].start + z, min(sl[0].stop, sl[0].start + z + SLAB))
        out[z:z + SLAB] = np.asarray(volume.data[zs, sl[1], sl[2]])
    return volume.with_data(out, origin=origin, name=f"{volume.name}_crop")


@action("evaluate", result="scores", category="Measure")
def evaluate(seg: Labels, truth: Labels) -> Table:
    """Score a segmentation against ground truth: Dice and IoU per class.

    Classes are matched by name. Voxels where ``truth`` is 0 (unlabelled) are ignored, so sparse
    (partly painted) truth works. A truth class missing from ``seg`` scores 0; no class name in common
    is an error (e.g. another tool's instance ids: see ``merge_classes``).

    Parameters
    ----------
    seg : Labels
        The segmentation.
    truth : Labels
        The ground truth, same geometry.

    Returns
    -------
    Table
        Columns ``class``, ``dice``, ``iou``, ``truth_voxels``, ``seg_voxels``, ``intersection``.
    """
    seg.check_same_geometry(truth)
    if truth.classes and not set(truth.class_names) & set(seg.class_names):
        raise InputError(f"the segmentation and the truth share no class name (segmentation: "
                         f"{listed(seg.class_names)}; truth: {listed(truth.class_names)}): name the truth's "
                         f"classes with load_labels(..., classes=[...]), or merge them, e.g. "
                         f"merge_classes(truth, into=\"{seg.class_names[-1] if seg.classes else 'object'}\")",
                         truth.source)
    k_t, k_s = len(truth.classes), len(seg.classes)
    conf = np.zeros((k_t + 1, k_s + 1), np.int64)
    task = progress.task("Evaluating", total=seg.shape[0])
    for z in range(0, seg.shape[0], SLAB):
        t = np.asarray(truth.data[z:z + SLAB]).astype(np.int64).ravel()
        s = np.asarray(seg.data[z:z + SLAB]).astype(np.int64).ravel()
        if t.max(initial=0) > k_t or s.max(initial=0) > k_s:
            raise InputError("holds label values above its number of classes",
                             truth.source if t.max(initial=0) > k_t else seg.source)
        conf += np.bincount(t * (k_s + 1) + s, minlength=conf.size).reshape(conf.shape)
        task.advance(min(SLAB, seg.shape[0] - z))
    task.finish()
    conf = conf[1:]  # drop unlabelled truth voxels
    cols: dict[str, list] = {k: [] for k in ("class", "dice", "iou", "truth_voxels", "seg_voxels",
                                             "intersection")}
    for c in truth.classes:
        tv = int(conf[c.index - 1].sum())
        si = seg.class_names.index(c.name) + 1 if c.name in seg.class_names else None
        sv = int(conf[:, si].sum()) if si else 0
        inter = int(conf[c.index - 1, si]) if si else 0
        union = tv + sv - inter
        cols["class"].append(c.name)
        cols["dice"].append(2 * inter / (tv + sv) if tv + sv else float("nan"))
        cols["iou"].append(inter / union if union else float("nan"))
        cols["truth_voxels"].append(tv)
        cols["seg_voxels"].append(sv)
        cols["intersection"].append(inter)
    return Table(cols, name=f"{seg.name}_scores")
