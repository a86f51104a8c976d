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
CSV (tables)              ``.csv``                --
========================  ======================  ==========================================

Labels keep their class names and colours in a JSON sidecar next to the file: ``<file>.json``.

Every write is atomic: data goes to a temporary name in the destination folder, which is renamed onto
the final name only when complete, so an interrupted run never leaves a file that looks complete.
Large uncompressed TIFF and ``.npy`` inputs can be memory-mapped instead of read.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath

import numpy as np

from .data import PALETTE, Labels, Table, Volume, make_classes
from .errors import InputError, ParameterError

#: Files above this size are memory-mapped when ``mmap="auto"``.
MMAP_THRESHOLD = 1 << 30

VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".nrrd", ".nhdr", ".nii", ".nii.gz")
TABLE_SUFFIXES = (".csv",)


def file_kind(path: str | os.PathLike) -> str:
    """The format of ``path``: ``tiff``, ``tiff_folder``, ``npy``, ``nrrd``, ``nifti`` or ``csv``."""
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
    if p.is_dir() or p.suffix == "":
        return "tiff_folder"
    raise InputError(f"unknown file type '{p.suffix}' (known: {', '.join(VOLUME_SUFFIXES + TABLE_SUFFIXES)}, "
                     "or a folder of TIFF slices)", path)


def stem(path: str | os.PathLike) -> str:
    """A file's name up to its first dot (``scan_01.nii.gz`` -> ``scan_01``): names results and folders."""
    return PurePath(path).name.split(".")[0]


def sidecar(path: str | os.PathLike) -> Path:
    """The JSON sidecar that holds class names and colours for a labels file."""
    p = Path(path)
    return p.with_name(p.name + ".json")


# ----------------------------------------------------------------------------------------------
# atomic writes
# ----------------------------------------------------------------------------------------------
#: The file that marks a folder of TIFF slices as Damselfly's: it lists the slices it wrote.
SLICE_MARKER = ".damselfly-slices.json"
#: Temporary names of :func:`atomic_path` (``.<name>.<8 random>.partial<suffixes>``) and of a replaced
#: slice folder set aside (``.<name>.old-<pid>``): what :func:`remove_stale_temporaries` may delete.
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.partial(\.[^/]*)?$")
_OLD_NAME = re.compile(r"^\..+\.old-\d+$")


def is_own_slice_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of slices Damselfly wrote and nothing else (safe to replace)."""
    try:
        listed = set(json.loads((path / SLICE_MARKER).read_text(encoding="utf-8"))["files"])
        present = {q.name for q in path.iterdir()} - {SLICE_MARKER}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return present <= listed and all((path / n).is_file() and not (path / n).is_symlink() for n in present)


def _remove_own_slice_folder(path: Path) -> None:
    """Delete a folder :func:`is_own_slice_folder` accepted: its listed slices, the marker, the folder."""
    listed = json.loads((path / SLICE_MARKER).read_text(encoding="utf-8"))["files"]
    for n in listed + [SLICE_MARKER]:
        with contextlib.suppress(FileNotFoundError):
            (path / n).unlink()
    with contextlib.suppress(OSError):
        path.rmdir()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete what interrupted writes left in ``folder`` (recursively): :func:`atomic_path` temporaries
    and slice folders set aside for replacement. Call it only while holding the folder's run lock.
    Returns what was removed."""
    removed = []
    for root, dirs, files in os.walk(folder):
        for name in files:
            if _TEMP_NAME.match(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(root, name))
                    removed.append(Path(root, name))
        for name in list(dirs):
            full = Path(root, name)
            if full.is_symlink():
                continue
            if _TEMP_NAME.match(name) or (_OLD_NAME.match(name) and is_own_slice_folder(full)):
                shutil.rmtree(full, ignore_errors=True)
                removed.append(full)
                dirs.remove(name)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name keeps the file's suffixes, so writers that pick a format from the name work.
    On error the temporary file (or folder) is removed and ``path`` is left as it was. An existing
    folder is replaced only if it is a slice folder Damselfly wrote (:func:`is_own_slice_folder`):
    nothing the user put there is ever deleted.
    """
    dest = Path(path)
    exists = dest.exists() or dest.is_symlink()
    if exists and not overwrite:
        raise InputError("exists already (overwriting is off)", dest)
    if dest.is_dir() and not dest.is_symlink() and not is_own_slice_folder(dest):
        raise InputError("is an existing folder that Damselfly did not write; choose another output name "
                         "(nothing was changed)", dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmpname = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial" + "".join(dest.suffixes),
                                       dir=dest.parent)
    except OSError as e:
        raise InputError(f"cannot write here: {e.strerror or e}", dest) from None
    os.close(fd)
    tmp = Path(tmpname)
    tmp.unlink()
    try:
        yield tmp
        if tmp.is_file():  # mkstemp makes 0600 files; give the usual permissions (umask applied)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        if dest.is_dir() and not dest.is_symlink():
            if not tmp.is_dir():
                raise InputError("is a folder; cannot replace it with a file", dest)
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            _remove_own_slice_folder(old)
        else:
            if tmp.is_dir() and exists:
                os.unlink(dest)  # a file (or link) replaced by a folder of slices
            os.replace(tmp, dest)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_text(path: Path, text: str, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


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


def _read_tiff(path: Path, mmap: bool):
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
                    except ValueError:
                        data = None  # compressed or not contiguous: read instead
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


def _write_tiff(path: Path, vol: Volume, extra: dict | None = None) -> None:
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


def _read_tiff_folder(path: Path):
    files = sorted([p for p in path.iterdir() if p.name.lower().endswith((".tif", ".tiff"))
                    and not p.name.startswith(".")], key=_natural_key)
    if not files:
        raise InputError("folder holds no .tif/.tiff slices", path)
    slices = []
    geo = {}
    for i, f in enumerate(files):
        d, g = _read_tiff(f, mmap=False)
        if i == 0:
            geo = g
        if d.shape[0] != 1:
            raise InputError(f"expected one 2-D slice per file, got shape {d.shape}", f)
        if slices and d.shape != slices[0].shape:
            raise InputError(f"slice shape {d.shape[1:]} differs from {slices[0].shape[1:]} of {files[0].name}", f)
        slices.append(d)
    return np.concatenate(slices, axis=0), geo


def _write_tiff_folder(path: Path, vol: Volume, extra: dict | None) -> None:
    path.mkdir(parents=True)
    digits = max(4, len(str(vol.shape[0])))
    names = [f"slice_{z:0{digits}d}.tif" for z in range(vol.shape[0])]
    for z, name in enumerate(names):
        _write_tiff(path / name, vol.with_data(np.asarray(vol.data[z:z + 1])), extra)
    (path / SLICE_MARKER).write_text(json.dumps({"files": names}) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# NRRD and NIfTI (both store x first: we transpose to z, y, x)
# ----------------------------------------------------------------------------------------------
def _read_nrrd(path: Path):
    import nrrd

    try:
        header = nrrd.read_header(str(path))
    except Exception as e:
        raise InputError(f"cannot read NRRD header: {_why(e)}", path) from None
    geo = {"files": [str(path.resolve())]}
    detached = header.get("data file") or header.get("datafile")
    if detached:
        geo["files"].append(str(_detached_data_file(path, str(detached))))
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


def _detached_data_file(header_path: Path, name: str) -> Path:
    """The data file a detached NRRD header names, which must lie in the header's folder (or below):
    a header cannot make Damselfly read ``/etc/passwd`` as voxels."""
    if name.startswith("LIST") or len(name.split()) > 1:
        raise InputError(f"multi-file NRRD data ('data file: {name}') is not supported", header_path)
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


def _write_nrrd(path: Path, vol: Volume) -> None:
    import nrrd

    sz, sy, sx = vol.spacing
    header = {"space": "left-posterior-superior" if vol.unit == "mm" else "3D-right-handed",
              "space directions": np.diag([sx, sy, sz]),
              "space origin": np.asarray(vol.origin[::-1], float),
              "space units": [vol.unit] * 3, "encoding": "raw"}
    nrrd.write(str(path), np.asarray(vol.data), header, index_order="C")


def _read_nifti(path: Path, mmap: bool):
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


def _write_nifti(path: Path, vol: Volume) -> None:
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


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def read_volume(path: str | os.PathLike, spacing=None, mmap: bool | str = "auto", name: str | None = None) -> Volume:
    """Read a volume from ``path``.

    Parameters
    ----------
    path : path
        A file (TIFF, NPY, NRRD, NIfTI) or a folder of TIFF slices.
    spacing : (z, y, x), optional
        Overrides the spacing stored in the file.
    mmap : bool or "auto"
        Memory-map uncompressed TIFF / NPY / NIfTI data instead of reading it; ``"auto"`` maps files
        larger than :data:`MMAP_THRESHOLD`.
    name : str, optional
        Volume name; the file stem by default.

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
        mmap = p.is_file() and p.stat().st_size > MMAP_THRESHOLD
    if kind == "tiff":
        data, geo = _read_tiff(p, bool(mmap))
    elif kind == "tiff_folder":
        data, geo = _read_tiff_folder(p)
    elif kind == "npy":
        try:
            data = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
        except Exception as e:
            raise InputError(f"cannot read NPY: {e}", p) from None
        geo = {}
    elif kind == "nrrd":
        data, geo = _read_nrrd(p)
    elif kind == "nifti":
        data, geo = _read_nifti(p, bool(mmap))
    else:
        raise InputError(f"a {kind} file holds no volume", p)
    if data.ndim == 2:
        data = data[None]
    if data.dtype.kind not in "biuf":
        raise InputError(f"unsupported data type {data.dtype}", p)
    if data.size == 0:
        raise InputError(f"holds no voxels (shape {tuple(data.shape)})", p)
    default_name = stem(p) if kind != "tiff_folder" else p.name
    metadata = {"source": str(p.resolve())}
    if geo.get("files"):
        metadata["files"] = geo["files"]  # every file read, e.g. a detached NRRD header's data file
    if geo.get("extra"):
        metadata["file"] = geo["extra"]
    try:
        return Volume(data, spacing=spacing if spacing is not None else geo.get("spacing", (1.0, 1.0, 1.0)),
                      origin=geo.get("origin", (0.0, 0.0, 0.0)), unit=str(geo.get("unit", "voxel")),
                      name=name or default_name, metadata=metadata)
    except (InputError, ParameterError) as e:
        raise InputError(str(e).removeprefix(f"{p.resolve()}: "), p) from None


def write_volume(vol: Volume, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``vol`` (a :class:`Volume` or :class:`Labels`) atomically; labels also get their sidecar."""
    p = Path(path)
    kind = file_kind(p) if p.suffix or p.exists() else "tiff_folder"
    extra = None
    if isinstance(vol, Labels):
        extra = {"classes": [{"index": c.index, "name": c.name, "color": list(c.color)} for c in vol.classes]}
    with atomic_path(p, overwrite) as tmp:
        if kind == "tiff":
            _write_tiff(tmp, vol, extra)
        elif kind == "tiff_folder":
            _write_tiff_folder(tmp, vol, extra)
        elif kind == "npy":
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(vol.data))
        elif kind == "nrrd":
            _write_nrrd(tmp, vol)
        elif kind == "nifti":
            _write_nifti(tmp, vol)
        else:
            raise ParameterError(f"cannot save a volume as {kind}: {p}")
    if extra is not None:
        write_text(sidecar(p), json.dumps(extra, indent=2) + "\n", overwrite=True)
    return p


def read_labels(path: str | os.PathLike, classes: list[str] | None = None, spacing=None,
                mmap: bool | str = "auto") -> Labels:
    """Read a labels volume; class names and colours come from ``classes``, the sidecar, or defaults.

    Raises
    ------
    InputError
        Non-integer data, negative values, or a value above the number of named classes.
    """
    vol = read_volume(path, spacing=spacing, mmap=mmap)
    p = Path(path)
    data = vol.data
    if data.ndim != 3:
        raise InputError(f"labels must be 3-D (z, y, x), got shape {data.shape}", p)
    if data.dtype.kind == "f":
        if not np.all(np.mod(data, 1) == 0):
            raise InputError("labels must hold whole numbers, found fractional values", p)
        data = data.astype(np.int32)
    elif data.dtype.kind == "b":
        data = data.astype(np.uint8)
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if lo < 0:
        raise InputError(f"labels must be >= 0, found {lo}", p)
    side = sidecar(p)
    stored = vol.metadata.get("file", {}).get("classes")
    where = p
    if stored is None and side.exists():
        try:
            stored = json.loads(side.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise InputError(f"bad class sidecar (not JSON): {e}", side) from None
        stored = stored.get("classes") if isinstance(stored, dict) else stored
        where = side
    if stored is not None:
        stored = _valid_classes(stored, where)
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
    if hi > len(names):
        raise InputError(f"holds label value {hi} but only {len(names)} classes are named "
                         f"({', '.join(names) or 'none'})", p)
    return vol.as_labels(data, make_classes(names, colors), metadata={"source": vol.metadata["source"]})


#: The most classes a labels file may hold (the largest class index).
MAX_CLASSES = 65535


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
