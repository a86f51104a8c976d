"""HDF5 (``.h5``, ``.hdf5``, ``.hdf``), read lazily: one dataset, named by ``dataset=`` or the only 3-D one;
spacing from ``element_size_um`` (Fiji/ilastik) or ``spacing`` attributes. Library: ``h5py``.

An HDF5 dataset can read other files: external storage (raw bytes of any file), a virtual dataset (other
HDF5 files' datasets) and external links (a group or dataset in another file). Those files are inputs
like any other: each must lie in the input's folder (or below), as a detached NRRD or MetaImage header's
data file must, and every one is listed (``geo["files"]``, then the run record's inputs). Relative names
are resolved beside the file that names them, for the check and for the read alike (HDF5 looks for
virtual sources and linked files there first; external storage it would read from the working folder, so
such a dataset is opened with the ``${ORIGIN}`` prefix). Otherwise a crafted file could make Damselfly read ``/etc/passwd`` as voxels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.data import Grid
from ..core.errors import InputError

#: How deep virtual sources and links may nest (a source file's dataset may itself be virtual).
MAX_DEPTH = 8
def read_hdf5(path: Path, dataset: str | None = None):
    """The dataset (lazy, an ``h5py.Dataset``) and its geometry; refuses a dataset that reads files outside
    ``path``'s folder."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read HDF5: {e}", path) from None
    try:
        ds, files, found = _dataset(f, dataset, Path(path))
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises RuntimeError, OSError, KeyError... on corrupt files
        raise InputError(f"cannot read HDF5 (corrupt or truncated?): {e}", path) from None
    if ds is None:
        raise InputError(f"no dataset '{dataset}' (the file holds {found})", path)
    if ds.chunks is not None and "gzip" in ds._filters:
        ds = BoundedChunks(ds, Path(path))
    geo: dict = {"files": sorted(set(files))}
    for key, unit in (("element_size_um", "um"), ("spacing", None), ("resolution", None)):
        if key in ds.attrs:
            geo["spacing"] = tuple(float(v) for v in np.ravel(ds.attrs[key])[:3])
            if unit:
                geo["unit"] = unit
            break
    if "unit" in ds.attrs:
        geo["unit"] = str(ds.attrs["unit"])
    return ds, geo


class BoundedChunks:
    """An HDF5 dataset compressed with gzip, read so that no chunk inflates beyond its declared size: HDF5
    grows its buffer until a chunk is inflated (a 250 KB chunk of a 16 KB array took 256 MB, then read as
    zeros). Each chunk a read touches is first inflated here at most that far (once: checked chunks are
    remembered), then read by h5py."""

    def __init__(self, ds, path: Path):
        self.ds, self.path = ds, path
        self.shape, self.dtype, self.ndim, self.chunks, self.attrs = ds.shape, ds.dtype, ds.ndim, ds.chunks, ds.attrs
        self.size, self.nbytes = ds.size, ds.size * ds.dtype.itemsize
        self.limit = int(np.prod(ds.chunks)) * ds.dtype.itemsize
        self.checked: set[tuple[int, ...]] = set()

    def _check(self, key) -> None:
        import itertools
        import zlib

        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        ranges = []
        for k, n, c in zip(key, self.shape, self.chunks):  # the chunk starts a key touches, axis by axis
            if isinstance(k, slice):
                lo, hi, _ = k.indices(n)
                ranges.append(range(lo // c * c, min(max(lo + 1, hi), n), c))
            else:  # an index or an array of indices
                ranges.append(sorted({int(i) % n // c * c for i in np.ravel(k)}))
        for offset in itertools.product(*ranges):
            if offset in self.checked:
                continue
            mask, raw = self.ds.id.read_direct_chunk(offset)
            if raw is not None and not mask & 1:  # the deflate filter applied (bit 0 of the mask unset)
                d = zlib.decompressobj()
                try:
                    d.decompress(raw, self.limit + 1)
                except zlib.error:
                    raise InputError(f"the chunk at {offset} is not valid gzip data (corrupt)", self.path) from None
                if d.unconsumed_tail:
                    raise InputError(f"the chunk at {offset} inflates beyond the {self.limit:,} bytes a chunk of "
                                     "this dataset holds (a corrupt or malicious chunk)", self.path)
            self.checked.add(offset)

    def __getitem__(self, key):
        self._check(key)
        return self.ds[key]

    def __array__(self, dtype=None, copy=None):
        a = self[()] if self.ndim == 0 else self[tuple(slice(None) for _ in range(self.ndim))]
        return a.astype(dtype) if dtype is not None else a

    def __len__(self) -> int:
        return self.shape[0]


def _dataset(f, dataset: str | None, path: Path):
    """(the dataset, the other files it reads, the datasets of the file)."""
    import h5py

    found: list[str] = []
    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 else None)
    if dataset is None:
        three = [n for n in found if f[n].ndim == 3]
        if len(three) != 1:
            raise InputError(f"name the dataset to read (dataset=...); the file holds {found or 'no volume'}", path)
        dataset = three[0]
    files: list[str] = []
    return _follow(f, dataset, path, Path(os.path.realpath(path.parent)), files, 0), files, found


def _follow(f, name: str, where: Path, folder: Path, files: list[str], depth: int):
    """The dataset ``name`` of the open file ``f`` (at ``where``), its links followed one by one and its
    other files checked (added to ``files``); None if there is no such dataset."""
    import h5py

    if depth > MAX_DEPTH:
        raise InputError(f"links or virtual sources nest more than {MAX_DEPTH} deep", where)
    node = f
    parts = [p for p in name.strip("/").split("/") if p]
    if not parts:
        return None
    for i, part in enumerate(parts):
        if not isinstance(node, h5py.Group) or part not in node:
            return None
        link = node.get(part, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            other = _inside(folder, where, link.filename, "an external link")
            files.append(str(other))
            try:
                with h5py.File(other, "r") as g:
                    if _follow(g, link.path, other, folder, files, depth + 1) is None:
                        return None
            except InputError:
                raise
            except Exception as e:  # noqa: BLE001
                raise InputError(f"the external link's file {other.name} cannot be read: {e}", where) from None
        elif isinstance(link, h5py.SoftLink) and _follow(f, link.path, where, folder, files, depth + 1) is None:
            return None
        if i < len(parts) - 1:
            node = node[part]
    group, node = node, node[parts[-1]]
    if not isinstance(node, h5py.Dataset):
        return None
    if node.external and depth > 0:  # HDF5 would read it from the working folder, not from beside its file
        raise InputError("a linked or virtual source dataset uses external storage; Damselfly reads external "
                         "storage only in the dataset it opens", where)
    if node.external:
        for ext_name, _offset, _size in node.external:
            files.append(str(_inside(folder, where, ext_name, "external storage")))
        # HDF5 reads relative external storage from the working folder: open the dataset again with its
        # names resolved beside the file, as checked (HDF5 keeps an open dataset's prefix: close it first)
        del node
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_efile_prefix(b"${ORIGIN}")
        node = h5py.Dataset(h5py.h5d.open(group.id, parts[-1].encode(), dapl))
    if node.is_virtual:
        for m in node.virtual_sources():
            if m.file_name == ".":
                _follow(f, m.dset_name, where, folder, files, depth + 1)
                continue
            src = _inside(folder, where, m.file_name, "a virtual dataset's source")
            files.append(str(src))
            if src.exists():
                try:
                    with h5py.File(src, "r") as g:
                        _follow(g, m.dset_name, src, folder, files, depth + 1)
                except InputError:
                    raise
                except Exception:  # noqa: BLE001 - a missing or unreadable source reads as fill values
                    pass
    return node


def _inside(folder: Path, where: Path, name, what: str) -> Path:
    """``name`` (relative to ``where``'s folder) resolved; an error unless it lies in ``folder``."""
    name = name.decode() if isinstance(name, bytes) else str(name)
    target = Path(os.path.realpath(Path(where).parent / name))
    if folder != target and folder not in target.parents:
        raise InputError(f"{what} reads '{name}', outside the input's folder {folder}; Damselfly reads an "
                         "HDF5 file's other files only from its folder (or below)", where)
    return target


def write_hdf5(path: Path, vol: Grid, dataset: str = "data") -> None:
    import h5py

    from ..core._atomic import check_room

    check_room(path, int(np.prod(vol.shape)) * vol.data.dtype.itemsize + (1 << 20))  # HDF5 crashes on a full disk
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(dataset, shape=vol.shape, dtype=vol.data.dtype, chunks=True, compression="gzip")
        for z in range(0, vol.shape[0], 32):
            ds[z:z + 32] = np.asarray(vol.data[z:z + 32])
        ds.attrs["spacing"] = np.asarray(vol.spacing, float)
        ds.attrs["unit"] = vol.unit
        if vol.unit == "um":
            ds.attrs["element_size_um"] = np.asarray(vol.spacing, float)
