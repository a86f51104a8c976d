"""The data model: :class:`Volume`, :class:`Labels` (the multi-ROI) and :class:`Table`.

Arrays are indexed ``(z, y, x[, channel])``; ``spacing`` and ``origin`` are ``(z, y, x)`` in ``unit``.
Spacing travels with the data through every action.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import InputError, ParameterError

#: Default class colours (RGBA, 0..255), chosen to be distinguishable; class k gets entry (k-1) mod N.
PALETTE = [
    (230, 25, 75, 255), (60, 180, 75, 255), (255, 225, 25, 255), (0, 130, 200, 255),
    (245, 130, 48, 255), (145, 30, 180, 255), (70, 240, 240, 255), (240, 50, 230, 255),
    (210, 245, 60, 255), (250, 190, 212, 255), (0, 128, 128, 255), (220, 190, 255, 255),
]


def _triple(value, what: str, positive: bool) -> tuple[float, float, float]:
    try:
        t = tuple(float(v) for v in value)
    except TypeError:
        t = (float(value),) * 3
    if len(t) != 3 or not all(math.isfinite(v) for v in t) or (positive and not all(v > 0 for v in t)):
        raise ParameterError(f"{what} must be three finite{' positive' if positive else ''} numbers "
                             f"(z, y, x), got {value!r}")
    return t


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def listed(names: Sequence[str], most: int = 5) -> str:
    """Names for a message: all of them, or the first ``most`` and how many there are.

    Examples
    --------
    >>> listed(["a", "b"]), listed([f"c{i}" for i in range(1, 21)], most=2)
    ('a, b', 'c1, c2, … (20 classes)')
    """
    names = list(names)
    return ", ".join(names) if len(names) <= most else ", ".join(names[:most]) + f", … ({len(names)} classes)"


def _lazy_array(a) -> bool:
    """An array that reads on indexing (numpy, a memory map, a Zarr or HDF5 array): kept as it is."""
    return isinstance(a, np.ndarray) or all(hasattr(a, k) for k in ("shape", "dtype", "ndim", "__getitem__"))


@dataclass(eq=False)
class Grid:
    """An array on a voxel grid (in memory or memory-mapped) plus its geometry: what :class:`Volume` and
    :class:`Labels` share. They are siblings, not parent and child, so an action that takes grey values
    (``Volume``) does not silently take a segmentation; one that takes both says ``Volume | Labels``.

    Parameters
    ----------
    data : ndarray
        Shape ``(z, y, x)`` or ``(z, y, x, channel)``; may be a ``numpy.memmap``.
    spacing : (float, float, float)
        Voxel size ``(z, y, x)`` in ``unit``.
    origin : (float, float, float)
        Physical position of voxel ``(0, 0, 0)``.
    unit : str
        Physical unit of spacing and origin (``"voxel"`` when unknown).
    name : str
        A short human name (the file stem when loaded).
    metadata : dict
        Free metadata; ``metadata["source"]`` is the file it was read from, used in error messages.
    """

    data: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    unit: str = "voxel"
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not _lazy_array(self.data):
            self.data = np.asarray(self.data)
        if self.data.ndim not in (3, 4):
            raise InputError(f"a volume must be 3-D (z, y, x) or 4-D (z, y, x, channel), "
                             f"got shape {self.data.shape}", self.metadata.get("source"))
        self.spacing = _triple(self.spacing, "spacing", positive=True)
        self.origin = _triple(self.origin, "origin", positive=False)

    # -- geometry -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(z, y, x)``."""
        return tuple(self.data.shape[:3])

    @property
    def channels(self) -> int:
        return 1 if self.data.ndim == 3 else self.data.shape[3]

    @property
    def source(self) -> str:
        """Where the volume came from: its file, else its name (for error messages)."""
        return str(self.metadata.get("source") or self.name or "<volume>")

    def with_data(self, data: np.ndarray, **changes):
        """The same kind of object with the same geometry, name and metadata but new data."""
        return replace(self, data=data, metadata=dict(self.metadata), **changes)

    def geometry(self) -> dict[str, Any]:
        """Spacing, origin, unit, name and (a copy of the) metadata: what a derived grid keeps."""
        return {"spacing": self.spacing, "origin": self.origin, "unit": self.unit, "name": self.name,
                "metadata": dict(self.metadata)}

    def as_volume(self, data: np.ndarray, **changes) -> Volume:
        """A :class:`Volume` of ``data`` on this grid (e.g. a thickness map of a segmentation)."""
        return Volume(data, **{**self.geometry(), **changes})

    def as_labels(self, data: np.ndarray, classes: Sequence[LabelClass], **changes) -> Labels:
        """A :class:`Labels` of ``data`` with ``classes`` on this grid (e.g. a segmentation of a scan)."""
        return Labels(data, **{**self.geometry(), **changes}, classes=list(classes))

    def same_geometry(self, other: Grid) -> bool:
        return self.shape == other.shape and np.allclose(self.spacing, other.spacing, rtol=1e-6)

    def check_same_geometry(self, other: Grid) -> None:
        """Raise :class:`InputError`, naming both files, if ``other`` has another shape or spacing."""
        if self.shape != other.shape:
            raise InputError(f"shape {other.shape} (z, y, x) does not match {self.shape} of "
                             f"{self.source}", other.source)
        if not np.allclose(self.spacing, other.spacing, rtol=1e-6):
            raise InputError(f"spacing {other.spacing} does not match {self.spacing} of {self.source}",
                             other.source)

    def hash(self) -> str:
        """SHA-256 of dtype, shape and data (chunked, so memory-mapped volumes are not read at once)."""
        h = hashlib.sha256(f"{self.data.dtype.str}{self.data.shape}".encode())
        for z in range(0, self.data.shape[0], 16):
            h.update(np.ascontiguousarray(self.data[z:z + 16]).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, shape={self.data.shape}, "
                f"dtype={self.data.dtype}, spacing={self.spacing}, unit={self.unit!r})")


@dataclass(eq=False, repr=False)
class Volume(Grid):
    """A scanned volume: grey values (any numeric type) on a grid; see :class:`Grid` for the fields.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((4, 8, 8), np.uint16), spacing=(0.5, 0.1, 0.1), unit="mm")
    >>> v.shape
    (4, 8, 8)
    """


@dataclass(frozen=True)
class LabelClass:
    """One class of a :class:`Labels`: index 1..K, a name and an RGBA colour (0..255)."""

    index: int
    name: str
    color: tuple[int, int, int, int]


def make_classes(names: Sequence[str], colors: Sequence[Sequence[int]] | None = None) -> list[LabelClass]:
    """Classes ``1..len(names)`` with the given names and colours (default: :data:`PALETTE`)."""
    out = []
    for i, name in enumerate(names):
        c = tuple(int(v) for v in colors[i]) if colors is not None else PALETTE[i % len(PALETTE)]
        rgba = (c[0], c[1], c[2], c[3] if len(c) > 3 else 255)
        out.append(LabelClass(i + 1, str(name), rgba))
    return out


@dataclass(eq=False, repr=False)
class Labels(Grid):
    """A multi-ROI: an integer volume plus an ordered list of classes.

    Value 0 means "unlabelled" (training ignores it); values ``1..K`` are the classes. A full
    segmentation assigns every voxel a class.
    """

    classes: list[LabelClass] = field(default_factory=list)

    def __post_init__(self):
        super().__post_init__()
        if self.data.ndim != 3:
            raise InputError(f"labels must be 3-D (z, y, x), got shape {self.data.shape}", self.source)
        if not np.issubdtype(self.data.dtype, np.integer):
            raise InputError(f"labels must hold integers, got {self.data.dtype}", self.source)
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise InputError(f"class names must be unique, got {names}", self.source)
        if [c.index for c in self.classes] != list(range(1, len(self.classes) + 1)):
            raise InputError("class indices must be 1..K in order", self.source)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def class_index(self, name: str) -> int:
        """Index of the class called ``name``; a clear error (with did-you-mean) if there is none."""
        for c in self.classes:
            if c.name == name:
                return c.index
        raise InputError(f"unknown class '{name}'{suggest(name, self.class_names)} "
                         f"(classes: {', '.join(self.class_names) or 'none'})", self.source)

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of the class called ``name``."""
        return np.asarray(self.data) == self.class_index(name)


@dataclass(eq=False)
class Table:
    """Measurements: named columns of equal length, saved as CSV.

    Parameters
    ----------
    columns : dict of str to list
        Column name to values (numbers or strings), all the same length.
    name : str
        A short name (used for the file name in the app).
    """

    columns: dict[str, list]
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.columns = {str(k): list(v) for k, v in self.columns.items()}
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise ParameterError(f"table columns differ in length: { {k: len(v) for k, v in self.columns.items()} }")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def __getitem__(self, column: str) -> list:
        return self.columns[column]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in zip(*self.columns.values())]

    def row(self, column: str, value) -> dict[str, Any]:
        """The first row whose ``column`` equals ``value``."""
        for r in self.rows():
            if r[column] == value:
                return r
        raise KeyError(f"no row with {column}={value!r}")

    def __repr__(self) -> str:
        return f"Table(name={self.name!r}, columns={list(self.columns)}, rows={len(self)})"
