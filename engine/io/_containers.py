"""The formats of big and scientific scans, read lazily (nothing is read until a slab is indexed):

- **OME-Zarr / NGFF** (``.zarr`` folders; NGFF 0.4 written, 0.4 and 0.5 read): the multiscale pyramid, the
  physical scale from the coordinate transformations, the unit from the axes. Plain Zarr arrays too.
  Library: ``zarr`` (the reference implementation; the NGFF metadata is a few JSON fields on top).
- **HDF5**: in :mod:`damselfly.engine.io._hdf5`.
- **MRC** (``.mrc``, ``.map``, ``.rec``, ``.st``): cryo-EM and tomography, memory-mapped; the voxel size
  from the header, in Å. Library: ``mrcfile`` (CCP-EM's validated reader).
- **DICOM series**: in :mod:`damselfly.engine.io._dicom`.
- **MetaImage** (``.mhd`` header + raw data, ITK's format that vendors' raw files are described with):
  dimensions, element type, byte order, header size, spacing, offset. The header is a dozen text keys,
  parsed here; the data file must lie beside the header (like NRRD's).

Readers return ``(array, geometry)`` like those in :mod:`damselfly.engine.io._formats`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core._atomic import ZARR_MARKER
from ..core.data import Grid
from ..core.errors import InputError
from ._formats import data_file_beside

_UNITS = {"micrometer": "um", "nanometer": "nm", "millimeter": "mm", "angstrom": "Å", "meter": "m"}
_NGFF_UNITS = {v: k for k, v in _UNITS.items()}


# ----------------------------------------------------------------------------------------------- Zarr
def is_zarr(path: Path) -> bool:
    return path.is_dir() and (path.suffix == ".zarr" or any((path / n).exists() for n in
                                                            (".zarray", ".zgroup", "zarr.json")))


def read_zarr(path: Path, level: int = 0):
    """Level ``level`` of an OME-Zarr multiscale image, or a plain Zarr array (lazy)."""
    import zarr

    from ._zarr_store import check_chunks, open_confined

    try:
        node = open_confined(path)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - zarr raises many kinds on corrupt stores
        raise InputError(f"cannot read Zarr: {e}", path) from None
    if isinstance(node, zarr.Array):
        check_chunks([("", node)], node.store, path)
        return node, {}
    attrs = dict(node.attrs)
    ms = (attrs.get("ome") or attrs).get("multiscales")
    if not ms:
        arrays = [k for k, v in node.arrays()]
        if len(arrays) != 1:
            raise InputError(f"a Zarr group without OME multiscales metadata; it holds arrays {arrays}", path)
        check_chunks([(arrays[0], node[arrays[0]])], node.store, path)
        return node[arrays[0]], {}
    m, datasets = _multiscale(ms, path)
    if not 0 <= level < len(datasets):
        raise InputError(f"the pyramid has levels 0..{len(datasets) - 1}, not {level}", path)
    try:
        arr = node[datasets[level]["path"]]
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - zarr's KeyError or its own errors for a missing or corrupt array
        raise InputError(f"OME-Zarr metadata: datasets[{level}].path '{datasets[level]['path']}' is no array "
                         "in the store", path) from None
    check_chunks([(datasets[level]["path"], arr)], node.store, path)
    axes = [a if isinstance(a, dict) else {"name": a} for a in m.get("axes", [])]
    names = [a.get("name") for a in axes] or ["z", "y", "x"][-arr.ndim:]
    if len(names) != arr.ndim:
        raise InputError(f"OME-Zarr metadata: {len(names)} axes for an array of {arr.ndim} dimensions", path)
    scale, shift = [1.0] * arr.ndim, [0.0] * arr.ndim
    for t in _transforms(datasets[level], f"datasets[{level}]", arr.ndim, path) + _transforms(m, "multiscales[0]",
                                                                                               arr.ndim, path):
        if t["type"] == "scale":  # applied in order: the dataset's, then the image's
            scale = [a * b for a, b in zip(scale, t["scale"])]
            shift = [a * b for a, b in zip(shift, t["scale"])]
        elif t["type"] == "translation":
            shift = [a + b for a, b in zip(shift, t["translation"])]
    keep = [i for i, n in enumerate(names) if n in ("z", "y", "x")]
    if len(keep) != 3:
        raise InputError(f"expected z, y, x axes, found {names}", path)
    extra = [i for i in range(arr.ndim) if i not in keep]
    if any(arr.shape[i] != 1 for i in extra):
        raise InputError(f"axes {[names[i] for i in extra]} have more than one entry; Damselfly reads one "
                         "channel and time point", path)
    if extra:
        arr = _Squeezed(arr, extra)
    units = {a.get("name"): a.get("unit") for a in axes}
    unit = _UNITS.get(units.get("x") or "", units.get("x") or "voxel")
    geo = {"spacing": tuple(float(scale[i]) for i in keep), "unit": unit,
           "origin": tuple(float(shift[i]) for i in keep), "levels": len(datasets), "level": level}
    classes = _label_classes(attrs.get("image-label"))
    if classes:
        geo["extra"] = {"classes": classes}
    return arr, geo


def _label_classes(meta) -> list[dict] | None:
    """Class names and colours of an NGFF label image (``image-label``: ``properties`` with a ``name``,
    ``colors``), as a labels sidecar lists them (classes 1..n; checked by the reader of labels)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("properties"), list):
        return None
    names = {p.get("label-value"): p.get("name") for p in meta["properties"] if isinstance(p, dict)}
    colors = {c.get("label-value"): c.get("rgba") for c in meta.get("colors") or [] if isinstance(c, dict)}
    values = [v for v in names if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    if not values or sorted(values) != list(range(1, max(values) + 1)) or max(values) > 65535:
        return None  # not classes 1..n: object ids or another tool's values, read without names
    out = []
    for v in sorted(values):
        c = {"name": names[v]}
        if colors.get(v) is not None:
            c["color"] = colors[v]
        out.append(c)
    return out


def _multiscale(ms, path: Path) -> tuple[dict, list[dict]]:
    """The first multiscale image and its datasets, every field read checked: a malformed document is a
    clear error naming the field (it was "internal error" for 11 crafted stores)."""
    def bad(what):
        return InputError(f"OME-Zarr metadata: {what}", path)

    if not isinstance(ms, list) or not ms or not isinstance(ms[0], dict):
        raise bad("'multiscales' must be a list of objects")
    m = ms[0]
    datasets = m.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise bad("'datasets' must be a non-empty list")
    for k, d in enumerate(datasets):
        p = d.get("path") if isinstance(d, dict) else None
        if not isinstance(p, str) or not p or p.startswith("/") or ".." in p.split("/") or "\\" in p:
            raise bad(f"datasets[{k}].path must be a relative path inside the store, got {p!r}")
    axes = m.get("axes", [])
    if not isinstance(axes, list) or not all(
            isinstance(a, str) or (isinstance(a, dict) and isinstance(a.get("name"), str)) for a in axes):
        raise bad("'axes' must be a list of names or of objects with a 'name'")
    return m, datasets


def _transforms(owner: dict, where: str, ndim: int, path: Path) -> list[dict]:
    """``owner``'s coordinate transformations, each a scale or translation of ``ndim`` finite numbers."""
    import math

    ts = owner.get("coordinateTransformations", [])
    if not isinstance(ts, list):
        raise InputError(f"OME-Zarr metadata: {where}.coordinateTransformations must be a list", path)
    out = []
    for k, t in enumerate(ts):
        kind = t.get("type") if isinstance(t, dict) else None
        if kind not in ("scale", "translation", "identity"):
            raise InputError(f"OME-Zarr metadata: {where}.coordinateTransformations[{k}] has type {kind!r} "
                             "(scale, translation or identity)", path)
        v = t.get(kind) if kind != "identity" else [1.0] * ndim
        if not isinstance(v, list) or len(v) != ndim or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            raise InputError(f"OME-Zarr metadata: {where}.coordinateTransformations[{k}].{kind} must be {ndim} "
                             f"finite numbers, got {v!r}", path)
        if kind == "scale" and any(x <= 0 for x in v):
            raise InputError(f"OME-Zarr metadata: {where}'s scale must be positive, got {v}", path)
        out.append(t)
    return out


class _Squeezed:
    """A lazy view of an array without some length-1 axes (OME-Zarr's t and c)."""

    def __init__(self, arr, drop: list[int]):
        self.arr, self.drop = arr, drop
        self.shape = tuple(s for i, s in enumerate(arr.shape) if i not in drop)
        self.dtype, self.ndim = arr.dtype, len(self.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        full, it = [], iter(key)
        for i in range(self.arr.ndim):
            full.append(0 if i in self.drop else next(it))
        return np.asarray(self.arr[tuple(full)])

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a.astype(dtype) if dtype is not None else a


def write_ome_zarr(path: Path, vol: Grid, chunk: int = 64, min_size: int = 32, in_image: bool = False) -> None:
    """An OME-Zarr (NGFF 0.4, Zarr format 2) image, written slab by slab: level 0 is the volume, each
    further level halves the one before along each axis (grey values: the mean of 2 x 2 x 2 voxels, so
    a coarse level shows the structure, not aliased noise; labels: every second voxel), while the largest
    axis keeps at least ``min_size`` voxels. ``in_image``: labels stored in an image's ``labels/`` group
    (their metadata names the image, :mod:`damselfly.engine.io._ngff_labels`)."""
    import zarr

    from ..core.data import Labels

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets, level, prev = [], 0, vol.data
    while True:
        step = 2 ** level
        shape = tuple(len(range(0, s, step)) for s in vol.shape[:3])
        arr = root.create_array(str(level), shape=shape, chunks=tuple(min(chunk, s) for s in shape),
                                dtype=vol.data.dtype, chunk_key_encoding={"name": "v2", "separator": "/"})
        for z in range(0, shape[0], chunk):
            z1 = min(shape[0], z + chunk)
            if level == 0:
                arr[z:z1] = np.asarray(prev[z:z1])
            else:
                arr[z:z1] = _halve(np.asarray(prev[2 * z:2 * z1]), isinstance(vol, Labels))
        centre = 0.0 if isinstance(vol, Labels) else (step - 1) / 2  # a mean sits between the voxels it averages
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [float(s) * step for s in vol.spacing]},
            {"type": "translation", "translation": [float(o) + centre * float(s)
                                                    for o, s in zip(vol.origin, vol.spacing)]}]})
        if max(shape) // 2 < min_size:
            break
        level, prev = level + 1, arr
    _ome_zarr_attrs(path, vol, root, datasets, in_image)


def _halve(a: np.ndarray, labels: bool, piece: int = 16) -> np.ndarray:
    """Half the size along each axis: every second voxel (labels) or the mean of 2 x 2 x 2 (an odd edge
    repeats its last voxel), ``piece`` planes at a time (no float copy of the whole slab)."""
    if labels:
        return a[::2, ::2, ::2]
    pads = [(0, n % 2) for n in a.shape]
    if any(p for _, p in pads):
        a = np.pad(a, pads, mode="edge")
    nz, ny, nx = (n // 2 for n in a.shape)
    out = np.empty((nz, ny, nx), a.dtype)
    for z in range(0, nz, piece):
        b = a[2 * z:2 * min(nz, z + piece)].astype(np.float32)
        m = b.reshape(-1, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5))
        out[z:z + piece] = np.rint(m) if a.dtype.kind in "iu" else m
    return out


def _ome_zarr_attrs(path: Path, vol: Grid, root, datasets, in_image: bool = False) -> None:
    """The NGFF multiscales metadata (with ``image-label`` for labels) and Damselfly's marker."""
    from ..core.data import Labels

    unit = _NGFF_UNITS.get(vol.unit, vol.unit if vol.unit in _UNITS else None)
    axes = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in ("z", "y", "x")]
    root.attrs["multiscales"] = [{"version": "0.4", "name": vol.name or "image", "axes": axes,
                                  "datasets": datasets}]
    if isinstance(vol, Labels):  # an NGFF label image: class colours and names (napari, ome-zarr read them)
        root.attrs["image-label"] = {
            "version": "0.4",
            "colors": [{"label-value": c.index, "rgba": [int(v) for v in c.color]} for c in vol.classes],
            "properties": [{"label-value": c.index, "name": c.name} for c in vol.classes],
            **({"source": {"image": "../../"}} if in_image else {})}
    (path / ZARR_MARKER).write_text("written by Damselfly\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------- MRC
def read_mrc(path: Path):
    import mrcfile

    _check_mrc_sizes(path)
    try:
        m = mrcfile.mmap(str(path), mode="r", permissive=False)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read MRC: {e}", path) from None
    vs = m.voxel_size  # (x, y, z) in Å
    spacing = tuple(float(v) if float(v) > 0 else 1.0 for v in (vs.z, vs.y, vs.x))
    unit = "Å" if any(float(v) > 0 for v in (vs.x, vs.y, vs.z)) else "voxel"
    data = m.data if m.data.ndim == 3 else m.data[None]
    return data, {"spacing": spacing, "unit": unit}


def _check_mrc_sizes(path: Path) -> None:
    """The header's extended-header size and data size against the file's size, before ``mrcfile`` reads
    the extended header into memory (a 1 KB file claiming a 2 GiB extended header took 2.3 GB to refuse)."""
    size = path.stat().st_size
    if size < 1024:
        raise InputError(f"not an MRC file: {size} bytes, shorter than the 1024-byte header", path)
    for order in ("<i4", ">i4"):  # the byte order whose dimensions and mode make sense
        h = np.fromfile(path, dtype=order, count=256)
        nx, ny, nz, mode, nsymbt = (int(h[0]), int(h[1]), int(h[2]), int(h[3]), int(h[23]))
        if 0 <= mode <= 12 and min(nx, ny, nz) > 0:
            break
    else:
        return  # mrcfile says what is wrong with this header
    if nsymbt < 0 or 1024 + nsymbt > size:
        raise InputError(f"the header claims an extended header of {nsymbt:,} bytes; the file has {size - 1024:,} "
                         "after its 1024-byte header (truncated or corrupt)", path)


def write_mrc(path: Path, vol: Grid) -> None:
    import mrcfile

    data = np.asarray(vol.data)
    if data.dtype not in (np.int8, np.int16, np.uint16, np.float32, np.float16, np.uint8):
        data = data.astype(np.float32)
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(data)
        sz, sy, sx = vol.spacing
        if vol.unit in ("voxel", "unknown", ""):
            m.voxel_size = (0.0, 0.0, 0.0)  # MRC's "not known": read back as voxels, not as Å
        else:
            factor = {"nm": 10.0, "um": 1e4, "mm": 1e7}.get(vol.unit, 1.0)
            m.voxel_size = (sx * factor, sy * factor, sz * factor)


# ----------------------------------------------------------------------------------------------- MetaImage
_MHD_TYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2", "MET_UINT": "u4",
              "MET_INT": "i4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8", "MET_ULONG_LONG": "u8", "MET_LONG_LONG": "i8"}


def read_mhd(path: Path):
    """A MetaImage header and its raw data (memory-mapped)."""
    try:
        head = {}
        for line in path.read_text(encoding="latin-1").splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                head[k.strip()] = v.strip()
        dims = [int(v) for v in head["DimSize"].split()]
        dtype = np.dtype(_MHD_TYPES[head["ElementType"]])
    except KeyError as e:
        raise InputError(f"bad MetaImage header: no {e} or an unknown ElementType", path) from None
    except (ValueError, OSError) as e:
        raise InputError(f"bad MetaImage header ({e})", path) from None
    if not 1 <= len(dims) <= 3 or any(d < 1 for d in dims) or int(np.prod([float(d) for d in dims])) > 2 ** 50:
        raise InputError(f"bad MetaImage header: DimSize {head['DimSize']!r} must be 1 to 3 positive sizes of "
                         "a volume that can exist", path)
    spacing_text = head.get("ElementSpacing", "1 1 1")
    origin_text = head.get("Offset", "0 0 0")
    try:
        spacing = tuple(float(v) for v in spacing_text.split())[::-1]
        origin = tuple(float(v) for v in origin_text.split())[::-1]
        offset = int(head.get("HeaderSize", "0"))
    except ValueError as e:
        raise InputError(f"bad MetaImage header: ElementSpacing, Offset and HeaderSize must be numbers ({e})",
                         path) from None
    if not all(np.isfinite(spacing)) or any(v <= 0 for v in spacing) or not all(np.isfinite(origin)):
        raise InputError(f"bad MetaImage header: ElementSpacing {spacing_text!r} must be positive and Offset "
                         f"{origin_text!r} finite", path)
    if head.get("BinaryDataByteOrderMSB", head.get("ElementByteOrderMSB", "False")).lower() == "true":
        dtype = dtype.newbyteorder(">")
    name = head.get("ElementDataFile", "")
    if name == "LOCAL" or not name or len(name.split()) > 1:
        raise InputError(f"ElementDataFile '{name}' is not supported (a raw file beside the header is)", path)
    data_file = data_file_beside(path, name)
    shape = tuple(reversed(dims))  # MetaImage lists x first
    nbytes = int(np.prod(shape)) * dtype.itemsize
    size = data_file.stat().st_size  # data_file_beside made sure it exists
    if offset == -1:  # legal: the data are the last bytes of the file, after a header of any size
        offset = size - nbytes
    if offset < 0 or size < offset + nbytes:
        raise InputError(f"the data file '{name}' is shorter than the header says ({offset + nbytes:,} bytes, "
                         f"it has {size:,})" if offset >= 0 else f"the data file '{name}' is shorter than the "
                         f"header says ({nbytes:,} bytes, it has {size:,})", path)
    data = np.memmap(data_file, dtype=dtype, mode="r", offset=offset, shape=shape)
    # MetaImage has no unit field: ours is in an extra key (MetaIO keeps unknown keys); otherwise unknown
    unit = head.get("DamselflyUnit") or ("unknown" if "ElementSpacing" in head else "voxel")
    return data, {"spacing": spacing, "origin": origin, "unit": unit, "files": [str(path.resolve()), str(data_file)]}


def write_mhd(path: Path, vol: Grid, raw: Path) -> None:
    """A MetaImage header at ``path`` for data in ``raw`` (written beside it under its final name, see
    :func:`damselfly.engine.io._files.write_volume`)."""
    data = np.asarray(vol.data[:1])
    code = {np.dtype(v): k for k, v in _MHD_TYPES.items()}[data.dtype.newbyteorder("=")]
    sz, sy, sx = vol.spacing
    oz, oy, ox = vol.origin
    z, y, x = vol.shape[:3]
    path.write_text(f"ObjectType = Image\nNDims = 3\nDimSize = {x} {y} {z}\nElementType = {code}\n"
                    f"ElementSpacing = {sx!r} {sy!r} {sz!r}\nOffset = {ox!r} {oy!r} {oz!r}\nBinaryData = True\n"
                    f"BinaryDataByteOrderMSB = {str(data.dtype.byteorder == '>')}\nDamselflyUnit = {vol.unit}\n"
                    f"ElementDataFile = {raw.name}\n",
                    encoding="latin-1")


def write_raw(path: Path, vol: Grid) -> None:
    with open(path, "wb") as f:
        for z in range(0, vol.shape[0], 32):
            np.ascontiguousarray(vol.data[z:z + 32]).tofile(f)
