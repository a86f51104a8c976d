"""DICOM series (a folder of ``.dcm`` files, one slice each), read with ``pydicom``.

Slices are ordered by their position along the normal of the image plane (``ImagePositionPatient`` and
``ImageOrientationPatient``); spacing from their distance and ``PixelSpacing``; ``RescaleSlope`` and
``RescaleIntercept`` applied (then float32); the origin is the first slice's position in the volume's own
axes (z along the normal, y down the columns, x along the rows). Never silently wrong:

- a folder holding several series (``SeriesInstanceUID``) is an error listing them, unless ``series=``
  names one (its UID or its ``SeriesNumber``): two series are never merged into one interleaved volume;
- missing slices (a gap over 1.5 times the usual distance), two slices at one position, and a degenerate
  orientation (a zero or parallel row/column direction) are errors naming the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError

#: A distance between neighbouring slices over this many times the median is a gap (missing slices).
GAP = 1.5


def is_dicom_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() == ".dcm" for p in path.iterdir())


def read_dicom_folder(path: Path, lazy: bool = False, series: str | None = None):
    """The series in ``path`` as an array (lazy: :class:`_DicomStack`, each slice's pixels read when asked
    for) and its geometry; see the module docstring for what is refused."""
    import pydicom

    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".dcm" and not p.name.startswith("."))
    heads = []
    for f in files:
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=lazy)
            if not lazy:
                ds.pixel_array  # noqa: B018 - fails early on missing pixel data
            shape = (int(ds.Rows), int(ds.Columns))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"cannot read DICOM: {e}", f) from None
        heads.append((ds, f, shape))
    if not heads:
        raise InputError("no DICOM slices (.dcm) in the folder", path)
    heads = _one_series(heads, series, path)
    try:
        return _geometry_and_data(heads, lazy)
    except (ValueError, TypeError) as e:  # a header field that is no number (DS/IS values are text)
        raise InputError(f"a DICOM header field holds no valid number ({e})", path) from None


def _geometry_and_data(heads, lazy: bool):
    orient = np.asarray(getattr(heads[0][0], "ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), float)
    row, col = orient[:3], orient[3:]
    normal = np.cross(row, col)
    if orient.shape != (6,) or min(np.linalg.norm(row), np.linalg.norm(col)) < 1e-6 or np.linalg.norm(normal) < 1e-6:
        raise InputError(f"degenerate ImageOrientationPatient {orient.tolist()} (a zero or parallel row and "
                         "column direction): the slices cannot be ordered", heads[0][1])
    normal /= np.linalg.norm(normal)
    ipp = [np.asarray(getattr(h[0], "ImagePositionPatient", [0, 0, i]), float) for i, h in enumerate(heads)]
    pos = [float(np.dot(normal, p)) for p in ipp]
    order = np.argsort(pos, kind="stable")
    heads, pos, ipp = [heads[i] for i in order], [pos[i] for i in order], [ipp[i] for i in order]
    for _, f, shape in heads:
        if shape != heads[0][2]:
            raise InputError(f"slice shape {shape} differs from {heads[0][2]}", f)
    first = heads[0][0]
    dz = _slice_distance(pos, heads) if len(pos) > 1 else float(getattr(first, "SliceThickness", 1) or 1)
    slope = [float(getattr(h[0], "RescaleSlope", 1) or 1) for h in heads]
    icept = [float(getattr(h[0], "RescaleIntercept", 0) or 0) for h in heads]
    stack = _DicomStack([h[1] for h in heads], heads[0][2], slope, icept)
    data = stack if lazy else np.stack([stack.slice(i, h[0]) for i, h in enumerate(heads)])
    dy, dx = (float(v) for v in getattr(first, "PixelSpacing", [1, 1]))
    origin = (pos[0], float(np.dot(col / np.linalg.norm(col), ipp[0])), float(np.dot(row / np.linalg.norm(row), ipp[0])))
    return data, {"spacing": (abs(dz) or 1.0, dy, dx), "unit": "mm", "origin": origin}


def _one_series(heads, series: str | None, path: Path):
    """The slices of one series: the only one, or the one ``series`` names (UID or SeriesNumber)."""
    groups: dict[str, list] = {}
    for h in heads:
        groups.setdefault(str(getattr(h[0], "SeriesInstanceUID", "") or ""), []).append(h)

    def label(uid, hs):
        ds = hs[0][0]
        return (f"{uid or '(no UID)'} (number {getattr(ds, 'SeriesNumber', '?')}, "
                f"'{getattr(ds, 'SeriesDescription', '') or ''}', {len(hs)} slices)")

    if series is not None:
        chosen = [hs for uid, hs in groups.items()
                  if series == uid or series == str(getattr(hs[0][0], "SeriesNumber", ""))]
        if len(chosen) != 1:
            raise InputError(f"{'no' if not chosen else 'more than one'} series '{series}' in the folder; it holds: "
                             + "; ".join(label(u, hs) for u, hs in groups.items()), path)
        return chosen[0]
    if len(groups) > 1:
        raise InputError(f"the folder holds {len(groups)} DICOM series; name one with series=\"UID\" or its number: "
                         + "; ".join(label(u, hs) for u, hs in groups.items()), path)
    return heads


def _slice_distance(pos: list[float], heads) -> float:
    """The distance between neighbouring slices; an error at a gap or at two slices in one place."""
    d = np.diff(pos)
    step = float(np.median(d))
    for i, v in enumerate(d):
        if v < 1e-6 * max(1.0, abs(step)) or step <= 0:
            raise InputError(f"two slices at one position ({pos[i]:g} mm along the normal): "
                             f"{heads[i][1].name} and {heads[i + 1][1].name}", heads[i + 1][1])
        if v > GAP * step:
            raise InputError(f"slices missing between {heads[i][1].name} and {heads[i + 1][1].name}: {v:g} mm apart "
                             f"where the series steps {step:g} mm (about {round(v / step) - 1} slice(s) missing)",
                             heads[i + 1][1])
    return step


class _DicomStack:
    """A DICOM series as a lazy array: indexing reads the files of the slices asked for."""

    def __init__(self, files, shape, slope, icept):
        self.files, self.slope, self.icept = files, slope, icept
        self.rescale = any(a != 1 for a in slope) or any(b != 0 for b in icept)
        self.shape = (len(files), *shape)
        self.ndim, self.size = 3, int(np.prod(self.shape))
        self.dtype = np.dtype(np.float32) if self.rescale else self.slice(0).dtype

    def slice(self, i: int, ds=None) -> np.ndarray:
        import pydicom

        try:
            px = (ds if ds is not None else pydicom.dcmread(str(self.files[i]))).pixel_array
        except Exception as e:  # noqa: BLE001
            raise InputError(f"cannot read DICOM: {e}", self.files[i]) from None
        if px.shape != self.shape[1:]:
            raise InputError(f"slice shape {px.shape} differs from {self.shape[1:]}", self.files[i])
        return px.astype(np.float32) * self.slope[i] + self.icept[i] if self.rescale else px

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        zs = range(self.shape[0])[key[0]] if key else range(self.shape[0])
        rest = key[1:]
        if isinstance(zs, int):
            return self.slice(zs)[rest]
        out = np.empty((len(zs), *self.shape[1:]), self.dtype)
        for k, z in enumerate(zs):
            out[k] = self.slice(z)
        return out[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a.astype(dtype) if dtype is not None else a
