"""Reading and writing volumes, labels and tables.

Formats (chosen by the file name):

========================  ======================  ==========================================
format                    names                   spacing / origin / unit
========================  ======================  ==========================================
multi-page TIFF           ``.tif``, ``.tiff``     ImageJ hyperstack tags (Fiji reads them)
folder of TIFF slices     a directory             from the first slice's ImageJ tags
NumPy                     ``.npy``                not stored (``.npy`` has no header for it)
NRRD                      ``.nrrd``, ``.nhdr``    ``space directions``/``spacings``, origin
NIfTI                     ``.nii``, ``.nii.gz``   ``pixdim`` / affine (converted to z, y, x)
OME-Zarr / Zarr           ``.zarr`` folder        NGFF ``coordinateTransformations`` and axis units
HDF5                      ``.h5``, ``.hdf5``      ``element_size_um`` or ``spacing`` attributes
MRC                       ``.mrc``, ``.map``...   the header's voxel size (Å)
DICOM series              a folder of ``.dcm``    positions and ``PixelSpacing`` (mm)
MetaImage                 ``.mhd`` (+ raw file)   ``ElementSpacing``, ``Offset``
CSV (tables)              ``.csv``                --
========================  ======================  ==========================================

(:mod:`damselfly.engine.io._containers` reads and writes the chunked and scientific ones.)

Labels keep their class names and colours in a JSON sidecar next to the file: ``<file>.json``.

Every write is atomic: data goes to a temporary name in the destination folder, which is renamed onto
the final name only when complete, so an interrupted run never leaves a file that looks complete.
Big inputs stay on disk: Zarr, HDF5 and MRC always; TIFF, folders of TIFF slices, ``.npy`` and NIfTI
above 256 MiB (memory-mapped, or read page by page when compressed).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ..core._atomic import (  # noqa: F401 (re-exported: io is where callers look for writing helpers)
    SLICE_MARKER,
    atomic_path,
    is_own_folder,
    remove_stale_temporaries,
    write_text,
)
from ..core.data import PALETTE, Grid, Labels, Table, Volume, make_classes
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import SAMPLE_VOXELS, sample
from ._containers import is_zarr, read_mhd, read_mrc, read_zarr, write_mhd, write_mrc, write_ome_zarr, write_raw
from ._dicom import is_dicom_folder, read_dicom_folder
from ._formats import (
    read_nifti,
    read_nrrd,
    read_tiff,
    read_tiff_folder,
    write_nifti,
    write_nrrd,
    write_tiff,
    write_tiff_folder,
)
from ._hdf5 import read_hdf5, write_hdf5
from ._ngff_labels import check_label_home, image_of_label_path, register_label

#: Files above this size are memory-mapped when ``mmap="auto"``.
MMAP_THRESHOLD = 256 << 20
#: Volumes and labels with more voxels than this are kept as OME-Zarr when the app or the recorder saves
#: them for you (chunks; a painted layer's unpainted chunks are not written at all), else as TIFF.
ZARR_ASSET_VOXELS = 2 ** 27


def asset_suffix(grid) -> str:
    """The file type for a volume or labels that Damselfly saves on its own (assets beside a recorded
    macro, a session's data): ``.zarr`` for big ones, else ``.tif``."""
    return ".zarr" if int(np.prod(grid.shape[:3])) > ZARR_ASSET_VOXELS else ".tif"

VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".nrrd", ".nhdr", ".nii", ".nii.gz", ".zarr", ".h5", ".hdf5", ".mrc",
                   ".map", ".rec", ".mhd")
TABLE_SUFFIXES = (".csv",)


def file_kind(path: str | os.PathLike) -> str:
    """The format of ``path``: ``tiff``, ``tiff_folder``, ``npy``, ``nrrd``, ``nifti``, ``zarr`` (OME-Zarr or
    plain), ``hdf5``, ``mrc``, ``mhd`` (MetaImage header + raw), ``dicom_folder`` or ``csv``."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".zarr") or is_zarr(p) or image_of_label_path(p) is not None:
        return "zarr"
    if name.endswith((".h5", ".hdf5", ".hdf")):
        return "hdf5"
    if name.endswith((".mrc", ".map", ".rec", ".st")):
        return "mrc"
    if name.endswith(".mhd"):
        return "mhd"
    if is_dicom_folder(p):
        return "dicom_folder"
    if p.is_dir() or p.suffix == "":
        return "tiff_folder"
    raise InputError(f"unknown file type '{p.suffix}' (known: {', '.join(VOLUME_SUFFIXES + TABLE_SUFFIXES)}, "
                     "or a folder of TIFF slices)", path)


def content_kind(path: str | os.PathLike) -> str:
    """What a file holds, to open it by its kind: ``"macro"`` (``.dfm``), ``"model"`` (``.dfmodel``),
    ``"labels"`` (a class sidecar beside it, or "label" in its name) or ``"volume"``.

    Examples
    --------
    >>> content_kind("scan_01.tif"), content_kind("scan_01_labels.tif"), content_kind("pores.dfmodel")
    ('volume', 'labels', 'model')
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".dfm"):
        return "macro"
    if name.endswith(".dfmodel"):
        return "model"
    if sidecar(p).exists() or "label" in name:
        return "labels"
    return "volume"


def stem(path: str | os.PathLike) -> str:
    """A file's name up to its first dot (``scan_01.nii.gz`` -> ``scan_01``): names results and folders."""
    return PurePath(path).name.split(".")[0]


def sidecar(path: str | os.PathLike) -> Path:
    """The JSON sidecar that holds class names and colours for a labels file."""
    p = Path(path)
    return p.with_name(p.name + ".json")


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def read_volume(path: str | os.PathLike, spacing=None, mmap: bool | str = "auto", name: str | None = None,
                dataset: str | None = None, level: int = 0, unit: str | None = None,
                series: str | None = None) -> Volume:
    """Read a volume from ``path``.

    Parameters
    ----------
    path : path
        A file (TIFF, NPY, NRRD, NIfTI, HDF5, MRC, MetaImage) or a folder (OME-Zarr or Zarr, DICOM series,
        TIFF slices). Zarr, HDF5 and MRC data stay on disk and are read slab by slab.
    spacing : (z, y, x), optional
        Overrides the spacing stored in the file.
    mmap : bool or "auto"
        Keep the data on disk instead of reading it: uncompressed TIFF, NPY and NIfTI are memory-mapped,
        compressed TIFF and folders of TIFF slices are read page by page when indexed; ``"auto"`` does
        so for data larger than :data:`MMAP_THRESHOLD` (256 MiB).
    name : str, optional
        Volume name; the file stem by default.
    dataset : str, optional
        HDF5: the dataset to read (default: the only 3-D one).
    level : int
        OME-Zarr: the pyramid level (0 = full resolution).
    unit : str, optional
        The unit of the spacing. When ``spacing`` is given without one and the file has none, the unit is
        "unknown" (a scale bar says "units unknown", never a wrong "voxel").
    series : str, optional
        DICOM: the series to read (SeriesInstanceUID or SeriesNumber) from a folder holding several.

    Raises
    ------
    InputError
        The file is missing, of an unknown type, truncated or corrupt.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", p)
    kind = file_kind(p)
    if p.is_file() and p.stat().st_size == 0:
        raise InputError("the file is empty (0 bytes)", p)
    if mmap == "auto":
        size = p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        mmap = size > MMAP_THRESHOLD
    if kind == "tiff":
        data, geo = read_tiff(p, bool(mmap))
    elif kind == "tiff_folder":
        data, geo = read_tiff_folder(p, bool(mmap))
    elif kind == "npy":
        try:
            data = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
        except Exception as e:
            raise InputError(f"cannot read NPY: {e}", p) from None
        geo = {}
    elif kind == "nrrd":
        data, geo = read_nrrd(p)
    elif kind == "nifti":
        data, geo = read_nifti(p, bool(mmap))
    elif kind == "zarr":
        data, geo = read_zarr(p, level)
    elif kind == "hdf5":
        data, geo = read_hdf5(p, dataset)
    elif kind == "mrc":
        data, geo = read_mrc(p)
    elif kind == "mhd":
        data, geo = read_mhd(p)
    elif kind == "dicom_folder":
        data, geo = read_dicom_folder(p, lazy=bool(mmap), series=series)
    else:
        raise InputError(f"a {kind} file holds no volume", p)
    if data.ndim == 2:
        data = data[None]
    if data.dtype.kind not in "biuf":
        raise InputError(f"unsupported data type {data.dtype}", p)
    if data.size == 0:
        raise InputError(f"holds no voxels (shape {tuple(data.shape)})", p)
    default_name = stem(p) if kind not in ("tiff_folder", "dicom_folder") else p.name
    if unit is None and spacing is not None and geo.get("unit", "voxel") == "voxel":
        unit = "unknown"  # a spacing without a unit: the scale bar says so rather than "voxel"
    if unit is not None:
        geo["unit"] = unit
    metadata: dict[str, Any] = {"source": str(p.resolve())}
    if geo.get("files"):
        metadata["files"] = geo["files"]  # every file read, e.g. a detached NRRD header's data file
    if geo.get("extra"):
        metadata["file"] = geo["extra"]
    if geo.get("levels", 1) > 1 and spacing is None:
        metadata["pyramid"] = {"levels": geo["levels"], "level": geo["level"]}  # coarser levels, for renders
    try:
        return Volume(data, spacing=spacing if spacing is not None else geo.get("spacing", (1.0, 1.0, 1.0)),
                      origin=geo.get("origin", (0.0, 0.0, 0.0)), unit=str(geo.get("unit", "voxel")),
                      name=name or default_name, metadata=metadata)
    except (InputError, ParameterError) as e:
        raise InputError(str(e).removeprefix(f"{p.resolve()}: "), p) from None


def overview(vol: Volume, voxels: int = SAMPLE_VOXELS) -> np.ndarray:
    """Grey values for a window or a histogram, reading about ``voxels`` at most: the finest level of
    an OME-Zarr pyramid that is small enough (one read of a small array, not a slice of every chunk), else
    evenly spaced slices (:func:`sample`)."""
    pyramid = vol.metadata.get("pyramid")
    if pyramid and vol.source:
        for level in range(pyramid["level"], pyramid["levels"]):
            lvl = read_volume(vol.source, level=level)
            if np.prod(lvl.shape) <= voxels or level == pyramid["levels"] - 1:
                return np.asarray(lvl.data[:]).reshape(-1)
    return sample(vol, voxels)


def write_volume(vol: Grid, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``vol`` (a :class:`Volume` or :class:`Labels`) atomically; labels also get their sidecar."""
    p = Path(path)
    image = image_of_label_path(p)  # NGFF: labels inside their image; the metadata names the classes
    kind = file_kind(p) if p.suffix or p.exists() or image is not None else "tiff_folder"
    extra = None
    if image is not None:
        check_label_home(p, vol)
    elif isinstance(vol, Labels):
        extra = {"classes": [{"index": c.index, "name": c.name, "color": list(c.color)} for c in vol.classes]}
    with atomic_path(p, overwrite) as tmp:
        if kind == "tiff":
            write_tiff(tmp, vol, extra)
        elif kind == "tiff_folder":
            write_tiff_folder(tmp, vol, extra)
        elif kind == "npy":  # slab by slab into the file: a scan on disk is never held whole in memory
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=vol.data.dtype, shape=tuple(vol.shape))
            for z in range(0, vol.shape[0], 16):
                out[z:z + 16] = np.asarray(vol.data[z:z + 16])
            out.flush()
            del out
        elif kind == "nrrd":
            write_nrrd(tmp, vol)
        elif kind == "nifti":
            write_nifti(tmp, vol)
        elif kind == "zarr":
            write_ome_zarr(tmp, vol, in_image=image is not None)
        elif kind == "hdf5":
            write_hdf5(tmp, vol)
        elif kind == "mrc":
            write_mrc(tmp, vol)
        elif kind == "mhd":  # the raw data first, under its own final name, then the header that names it
            with atomic_path(p.with_suffix(".raw"), overwrite) as raw_tmp:
                write_raw(raw_tmp, vol)
            write_mhd(tmp, vol, p.with_suffix(".raw"))
        else:
            raise ParameterError(f"cannot save a volume as {kind}: {p}")
    if extra is not None:
        write_text(sidecar(p), json.dumps(extra, indent=2) + "\n", overwrite=True)
    if image is not None:
        register_label(image, p.name)
    return p


def read_labels(path: str | os.PathLike, classes: list[str] | None = None, spacing=None,
                mmap: bool | str = "auto") -> Labels:
    """Read a labels volume; class names and colours come from ``classes``, the sidecar, or defaults.

    Raises
    ------
    InputError
        Non-integer data, negative values, or a value above the number of named classes (except for
        objects: labels of the one class "object" hold object ids 1..n).
    """
    vol = read_volume(path, spacing=spacing, mmap=mmap)
    p = Path(path)
    data = vol.data
    if data.ndim != 3:
        raise InputError(f"labels must be 3-D (z, y, x), got shape {data.shape}", p)
    if data.dtype.kind in "fb" and not isinstance(data, np.ndarray):
        data = np.asarray(data)  # float or boolean labels are converted, so read (integer ones stay lazy)
    if data.dtype.kind == "f":
        if not np.all(np.mod(data, 1) == 0):
            raise InputError("labels must hold whole numbers, found fractional values", p)
        data = data.astype(np.int32)
    elif data.dtype.kind == "b":
        data = data.astype(np.uint8)
    lo, hi = _min_max(data)
    if lo < 0:
        raise InputError(f"labels must be >= 0, found {lo}", p)
    stored = vol.metadata.get("file", {}).get("classes")
    stored = _valid_classes(stored, p) if stored is not None else sidecar_classes(p)
    if classes is None and not stored and hi > MAX_CLASSES:
        raise InputError(f"holds label value {hi}; labels hold class indices 1..{MAX_CLASSES} "
                         "(is this an image rather than labels?)", p)
    if classes is not None:
        names = list(classes)
        colors = None
        if stored and [c["name"] for c in stored[:len(names)]] == names:
            colors = [c["color"] for c in stored[:len(names)]]
    elif stored:
        names = [c["name"] for c in stored]
        colors = [c["color"] for c in stored]
    else:
        names = [f"class{i}" for i in range(1, hi + 1)]
        colors = None
    meta = {"source": vol.metadata["source"]}
    if names == ["object"]:  # object ids (label_objects, saved): any number of objects
        meta["objects"] = hi
    elif hi > len(names):
        raise InputError(f"holds label value {hi} but only {len(names)} classes are named "
                         f"({', '.join(names) or 'none'})", p)
    return vol.as_labels(data, make_classes(names, colors), metadata=meta)


#: The most classes a labels file may hold (the largest class index).
MAX_CLASSES = 65535


def _min_max(data, slab: int = 16) -> tuple[int, int]:
    """Smallest and largest value; an array on disk is read slab by slab."""
    if not data.size:
        return 0, 0
    if type(data) is np.ndarray:
        return int(data.min()), int(data.max())
    lows, highs = [], []
    for z in range(0, data.shape[0], slab):
        a = np.asarray(data[z:z + slab])
        lows.append(int(a.min()))
        highs.append(int(a.max()))
    return min(lows), max(highs)


def sidecar_classes(path: str | os.PathLike) -> list[dict] | None:
    """The classes (``name``, ``color``) in the sidecar of the labels file ``path``, checked field by
    field; None without a sidecar. The checker reads class names here before anything runs."""
    side = sidecar(path)
    if not side.exists():
        return None
    try:
        stored = json.loads(side.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError) as e:
        raise InputError(f"bad class sidecar (not JSON): {e}", side) from None
    return _valid_classes(stored.get("classes") if isinstance(stored, dict) else stored, side)


def _valid_classes(stored, where: Path) -> list[dict]:
    """The ``classes`` list of a labels sidecar (or TIFF metadata), checked field by field."""
    def bad(msg):
        return InputError(f"bad class sidecar: {msg}", where)

    if not isinstance(stored, list):
        raise bad(f"'classes' must be a list, got {type(stored).__name__}")
    if len(stored) > MAX_CLASSES:
        raise bad(f"{len(stored)} classes; at most {MAX_CLASSES}")
    out = []
    for i, c in enumerate(stored):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise bad(f"class {i + 1} needs a non-empty 'name' string, got {c!r:.80}")
        color = c.get("color", PALETTE[i % len(PALETTE)])
        if (not isinstance(color, list | tuple) or len(color) not in (3, 4)
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)):
            raise bad(f"class '{c['name']}' needs 'color' as 3 or 4 integers 0..255, got {color!r:.80}")
        out.append({"name": c["name"], "color": list(color)})
    return out


def write_table(table: Table, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``table`` as CSV (atomically)."""
    p = Path(path)
    with atomic_path(p, overwrite) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(table.columns.keys())
            for row in zip(*table.columns.values()):
                w.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return p


def _parse_cell(s: str):
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def read_table(path: str | os.PathLike) -> Table:
    """Read a CSV written by :func:`write_table` (numbers come back as int/float)."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", p)
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise InputError("empty CSV", p)
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise InputError(f"line {i} has {len(r)} fields, the header has {len(header)}", p)
    cols = {h: [_parse_cell(r[j]) for r in body] for j, h in enumerate(header)}
    return Table(cols, name=p.stem)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, or of every file in a folder (sorted), for run records."""
    import hashlib

    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for q in files:
        with open(q, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()
