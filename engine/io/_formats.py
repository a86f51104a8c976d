"""Readers and writers of the volume formats behind :mod:`damselfly.engine.io._files`: TIFF (ImageJ
hyperstacks), folders of TIFF slices, NRRD (attached or detached data) and NIfTI. Each reader returns
``(array, geometry)``; the public functions in ``io`` make volumes of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..core._atomic import SLICE_MARKER
from ..core.data import Grid
from ..core.errors import InputError


# ----------------------------------------------------------------------------------------------
# TIFF
# ----------------------------------------------------------------------------------------------
class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_warnings() -> Iterator[list[str]]:
    """Collect what tifffile logs: it reports truncated files as warnings and reads what it can."""
    logger = logging.getLogger("tifffile")
    handler = _LogCapture()
    logger.addHandler(handler)
    old = logger.propagate
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


def _tiff_geometry(tif) -> dict:
    """Spacing, origin and unit from a TiffFile's ImageJ or tifffile-shaped metadata."""
    geo: dict = {}
    ij = tif.imagej_metadata
    if ij:
        page = tif.pages[0]
        try:
            xr = page.tags["XResolution"].value
            yr = page.tags["YResolution"].value
            sx = xr[1] / xr[0] if xr[0] else 1.0
            sy = yr[1] / yr[0] if yr[0] else 1.0
        except KeyError:
            sx = sy = 1.0
        geo["spacing"] = (float(ij.get("spacing", 1.0)), sy, sx)
        unit = ij.get("unit")
        if unit:
            geo["unit"] = {"micron": "um", "\\u00B5m": "um", "µm": "um", "pixel": "voxel"}.get(unit, unit)
        if "origin" in ij:
            geo["origin"] = tuple(float(v) for v in str(ij["origin"]).split(","))
        if "damselfly" in ij:
            geo["extra"] = json.loads(ij["damselfly"])
    elif tif.is_shaped and tif.shaped_metadata:
        md = tif.shaped_metadata[0]
        for key in ("spacing", "origin", "unit"):
            if key in md:
                geo[key] = md[key]
        if "damselfly" in md:
            geo["extra"] = md["damselfly"]
    return geo


def read_tiff(path: Path, mmap: bool):
    import tifffile

    with _tifffile_warnings() as warnings:
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                expected = tuple(series.shape)
                geo = _tiff_geometry(tif)
                ij = tif.imagej_metadata or {}
                npages = len(tif.pages)
                data = None
                if mmap:
                    try:
                        data = tifffile.memmap(path, mode="r")
                    except ValueError:  # compressed or not contiguous: a lazy Zarr view of its pages
                        data = _lazy_tiff(tifffile.imread(path, aszarr=True))
                if data is None:
                    data = series.asarray()
        except InputError:
            raise
        except Exception as e:  # tifffile raises many kinds on corrupt input
            raise InputError(f"cannot read TIFF: {e}", path) from None
    images = int(ij.get("images", 0) or 0)
    if warnings or (images and images > npages) or tuple(data.shape) != expected:
        detail = "; ".join(dict.fromkeys(w.split("\n")[0] for w in warnings)) or \
            f"holds {npages} of {images} images"
        raise InputError(f"truncated or corrupt TIFF ({detail})", path)
    if data.ndim == 2:
        data = data[None]
    return data, geo


def write_tiff(path: Path, vol: Grid, extra: dict | None = None) -> None:
    import tifffile

    data = np.asarray(vol.data)
    sz, sy, sx = vol.spacing
    imagej_ok = data.dtype in (np.uint8, np.uint16, np.float32) and data.ndim == 3
    if imagej_ok:
        md = {"axes": "ZYX", "spacing": sz, "unit": "pixel" if vol.unit == "voxel" else vol.unit,
              "origin": ",".join(repr(float(v)) for v in vol.origin)}
        if extra:
            md["damselfly"] = json.dumps(extra)
        tifffile.imwrite(path, data, imagej=True, resolution=(1.0 / sx, 1.0 / sy), metadata=md)
    else:
        md = {"spacing": list(vol.spacing), "origin": list(vol.origin), "unit": vol.unit}
        if extra:
            md["damselfly"] = extra
        tifffile.imwrite(path, data, metadata=md)


_NUM = re.compile(r"(\d+)")


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in _NUM.split(p.name)]


def _lazy_tiff(store):
    """A Zarr array over tifffile's store: pages are read when indexed."""
    import zarr

    arr = zarr.open(store, mode="r")
    if not hasattr(arr, "shape"):  # a multiscale group: level 0
        arr = arr["0"]
    return arr


def read_tiff_folder(path: Path, lazy: bool = False):
    """A folder of 2-D TIFF slices in natural order; ``lazy`` reads slices only when indexed."""
    files = sorted([p for p in path.iterdir() if p.name.lower().endswith((".tif", ".tiff"))
                    and not p.name.startswith(".")], key=_natural_key)
    if not files:
        raise InputError("folder holds no .tif/.tiff slices", path)
    if lazy:
        import tifffile

        first, geo = read_tiff(files[0], mmap=False)
        try:
            arr = _lazy_tiff(tifffile.TiffSequence(files).aszarr())
        except Exception as e:  # noqa: BLE001 - slices of different shapes or types
            raise InputError(f"the slices do not stack ({e})", path) from None
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr.reshape(arr.shape[0], *arr.shape[2:]) if hasattr(arr, "reshape") else arr
        if arr.ndim != 3 or tuple(arr.shape[1:]) != tuple(first.shape[1:]):
            raise InputError(f"the slices do not stack into a volume (got shape {tuple(arr.shape)})", path)
        return arr, geo
    slices = []
    geo = {}
    for i, f in enumerate(files):
        d, g = read_tiff(f, mmap=False)
        if i == 0:
            geo = g
        if d.shape[0] != 1:
            raise InputError(f"expected one 2-D slice per file, got shape {d.shape}", f)
        if slices and d.shape != slices[0].shape:
            raise InputError(f"slice shape {d.shape[1:]} differs from {slices[0].shape[1:]} of {files[0].name}", f)
        slices.append(d)
    return np.concatenate(slices, axis=0), geo


def write_tiff_folder(path: Path, vol: Grid, extra: dict | None) -> None:
    path.mkdir(parents=True)
    digits = max(4, len(str(vol.shape[0])))
    names = [f"slice_{z:0{digits}d}.tif" for z in range(vol.shape[0])]
    for z, name in enumerate(names):
        write_tiff(path / name, vol.with_data(np.asarray(vol.data[z:z + 1])), extra)
    (path / SLICE_MARKER).write_text(json.dumps({"files": names}) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# NRRD and NIfTI (both store x first: we transpose to z, y, x)
# ----------------------------------------------------------------------------------------------
def read_nrrd(path: Path):
    import nrrd

    try:
        header = nrrd.read_header(str(path))
    except Exception as e:
        raise InputError(f"cannot read NRRD header: {_why(e)}", path) from None
    geo = {"files": [str(path.resolve())]}
    detached = header.get("data file") or header.get("datafile")
    if detached:
        if str(detached).startswith("LIST") or len(str(detached).split()) > 1:
            raise InputError(f"multi-file NRRD data ('data file: {detached}') is not supported", path)
        geo["files"].append(str(data_file_beside(path, str(detached))))
    try:
        itemsize = np.dtype(nrrd.reader._determine_datatype(header)).itemsize
        encoding = str(header.get("encoding", "raw")).lower()
        if encoding in ("ascii", "text", "txt"):
            itemsize = 1
        _check_claimed_size(Path(geo["files"][-1]), header["sizes"], itemsize,
                            encoding not in ("raw", "ascii", "text", "txt"))
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read NRRD header: {_why(e)}", path) from None
    try:
        data, header = nrrd.read(str(path), index_order="C")
    except Exception as e:
        raise InputError(f"cannot read NRRD: {_why(e)}", path) from None
    nsp = data.ndim if data.ndim == 3 else 3
    if "space directions" in header and header["space directions"] is not None:
        dirs = [np.asarray(d, float) for d in header["space directions"]]
        dirs = [d for d in dirs if d is not None and np.all(np.isfinite(d))]
        if len(dirs) >= 3:
            geo["spacing"] = tuple(float(np.linalg.norm(d)) for d in dirs[:3])[::-1]
    elif "spacings" in header:
        geo["spacing"] = tuple(float(s) for s in header["spacings"][:nsp])[::-1]
    if "space origin" in header:
        geo["origin"] = tuple(float(v) for v in header["space origin"])[::-1]
    units = header.get("space units") or header.get("units")
    if units:
        geo["unit"] = str(units[0])
    return data, geo


def data_file_beside(header_path: Path, name: str) -> Path:
    """The data file a header names (detached NRRD, MetaImage), which must lie in the header's folder
    (or below): a header cannot make Damselfly read ``/etc/passwd`` as voxels."""
    folder = Path(os.path.realpath(header_path.parent))
    target = Path(os.path.realpath(folder / name))
    if folder not in target.parents:
        raise InputError(f"the header's data file '{name}' lies outside the header's folder {folder}; "
                         "Damselfly reads detached data only from beside its header", header_path)
    if not target.is_file():
        raise InputError(f"the header's data file '{name}' does not exist", header_path)
    return target


def _why(e: BaseException) -> str:
    """A library exception as a readable reason (some carry an empty message)."""
    text = str(e).strip()
    return text if text else type(e).__name__


def write_nrrd(path: Path, vol: Grid) -> None:
    import nrrd

    sz, sy, sx = vol.spacing
    header = {"space": "left-posterior-superior" if vol.unit == "mm" else "3D-right-handed",
              "space directions": np.diag([sx, sy, sz]),
              "space origin": np.asarray(vol.origin[::-1], float),
              "space units": [vol.unit] * 3, "encoding": "raw"}
    nrrd.write(str(path), np.asarray(vol.data), header, index_order="C")


def read_nifti(path: Path, mmap: bool):
    import nibabel as nib

    try:
        img = nib.load(str(path), mmap=mmap)
        _check_claimed_size(path, img.shape, img.get_data_dtype().itemsize, path.name.lower().endswith(".gz"))
        data = np.asanyarray(img.dataobj)
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read NIfTI: {_why(e)}", path) from None
    if data.ndim < 3:
        data = data.reshape(data.shape + (1,) * (3 - data.ndim))
    data = np.moveaxis(data, (0, 1, 2), (2, 1, 0))  # (x, y, z[, c]) -> (z, y, x[, c])
    zooms = img.header.get_zooms()[:3]
    unit = img.header.get_xyzt_units()[0]
    geo = {"spacing": tuple(float(z) for z in zooms)[::-1],
           "origin": tuple(float(v) for v in img.affine[:3, 3])[::-1]}
    if unit and unit != "unknown":
        geo["unit"] = {"micron": "um"}.get(unit, unit)
    return data, geo


def _check_claimed_size(path: Path, shape, itemsize: int, compressed: bool) -> None:
    """Refuse a header whose dimensions claim more voxel bytes than the file can hold (gzip packs at
    most ~1030:1), before anything is allocated."""
    claimed = int(np.prod([int(n) for n in shape], dtype=object)) * itemsize
    size = path.stat().st_size
    limit = size * 1100 if compressed else size
    if claimed > limit:
        raise InputError(f"the header claims {tuple(int(n) for n in shape)} voxels ({claimed:,} bytes) but the "
                         f"file holds {size:,} bytes: truncated or corrupt", path)


def write_nifti(path: Path, vol: Grid) -> None:
    import nibabel as nib

    data = np.moveaxis(np.asarray(vol.data), (0, 1, 2), (2, 1, 0))
    affine = np.diag(list(vol.spacing[::-1]) + [1.0])
    affine[:3, 3] = vol.origin[::-1]
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(vol.spacing[::-1] + img.header.get_zooms()[3:])
    unit = {"um": "micron"}.get(vol.unit, vol.unit)
    if unit in ("mm", "micron", "meter"):
        img.header.set_xyzt_units(xyz=unit)
    nib.save(img, str(path))
