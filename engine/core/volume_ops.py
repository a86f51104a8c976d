"""Library helpers over volumes, shared by the actions and the training and inference code: streaming a
function over slabs, disk-backed scratch arrays, histogram samples, NaN checks. Plain functions; nothing
here is an action.

Examples
--------
>>> import numpy as np
>>> from damselfly.engine.core.data import Volume
>>> vol = Volume(np.arange(64, dtype=np.float32).reshape(4, 4, 4))
>>> float(map_slabs(vol, lambda a: a * 2, np.float32, "Doubling").max())
126.0
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from . import _blocks as blocks
from .data import Volume
from .errors import InputError, ResourceError

#: Voxels used to estimate percentiles and thresholds on large volumes.
SAMPLE_VOXELS = 4_000_000
SLAB = 16


def sample(vol: Volume, voxels: int = SAMPLE_VOXELS) -> np.ndarray:
    """A deterministic sample of a volume's voxels (evenly spaced slices) for histogram statistics."""
    data = vol.data
    per_slice = int(np.prod(vol.shape[1:]))
    nz = max(1, min(vol.shape[0], voxels // max(per_slice, 1)))
    zs = np.unique(np.linspace(0, vol.shape[0] - 1, nz).round().astype(int))
    return np.asarray(data[zs]).reshape(-1)


def scratch_folder() -> str:
    """Where scratch data goes: ``$DAMSELFLY_SCRATCH``, or the system temp folder."""
    return os.environ.get("DAMSELFLY_SCRATCH") or tempfile.gettempdir()


#: Scratch entries (files and folders) are named so; a folder's lock lives in its ``OWNER`` file.
SCRATCH_PREFIX, PENDING_PREFIX, OWNER = "damselfly-scratch-", "damselfly-pending-", ".owner"
_cleaned: set[str] = set()  # scratch folders this process has swept


def claim_scratch(folder: bool) -> tuple[str, int]:
    """A new entry in the scratch folder (a folder if ``folder``, else a file) and a descriptor holding an
    exclusive ``flock`` on it (on its ``OWNER`` file for a folder) while it is open. A run that dies
    (killed, out of memory) leaves its locks free, so :func:`remove_stale_scratch` can tell its entries
    from a live run's, whatever the process ids; the entry takes its final name only once locked."""
    import fcntl

    where = scratch_folder()
    if where not in _cleaned:  # once per process: what crashed runs left here
        _cleaned.add(where)
        remove_stale_scratch(where)
    if folder:
        pending = tempfile.mkdtemp(prefix=PENDING_PREFIX, dir=where)
        fd = os.open(os.path.join(pending, OWNER), os.O_CREAT | os.O_RDWR, 0o600)
    else:
        fd, pending = tempfile.mkstemp(prefix=PENDING_PREFIX, dir=where)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a file system without locks (some NFS mounts): no lock, and no sweep can take it either
        pass
    final = os.path.join(where, SCRATCH_PREFIX + os.path.basename(pending)[len(PENDING_PREFIX):])
    os.rename(pending, final)
    return final, fd


def remove_stale_scratch(where: str | None = None) -> list[str]:
    """Remove the scratch entries in ``where`` (default: the scratch folder) whose lock no process holds:
    those of runs that died before removing them (a killed 16 GB run would otherwise keep its scratch
    on disk), and entries still under their pending name a minute after they were made (a run died
    between making and locking one). Entries without a lock file are left alone. Returns the paths
    removed."""
    import fcntl
    import shutil
    import time

    where = where or scratch_folder()
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(where) if e.name.startswith(SCRATCH_PREFIX)
                   or (e.name.startswith(PENDING_PREFIX) and time.time() - e.stat(follow_symlinks=False).st_mtime > 60)]
    except OSError:
        return removed
    for e in entries:
        is_dir = e.is_dir(follow_symlinks=False)
        try:
            fd = os.open(os.path.join(e.path, OWNER) if is_dir else e.path, os.O_RDONLY)
        except OSError:
            continue  # no lock file (an older version's, or gone): not ours to judge
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: its run is alive
        try:
            shutil.rmtree(e.path, ignore_errors=True) if is_dir else os.unlink(e.path)
            removed.append(e.path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _drop_folder(folder: str, fd: int) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    os.close(fd)


def check_scratch_room(nbytes: int) -> None:
    """Raise :class:`ResourceError` before any work if the scratch folder has less than ``nbytes`` free,
    so a big result never fails half-written for want of disk space."""
    import shutil

    folder = scratch_folder()
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise ResourceError(f"this needs {nbytes / 2 ** 30:.1f} GiB of scratch space in {folder}, which has "
                            f"{free / 2 ** 30:.1f} GiB free; set DAMSELFLY_SCRATCH to a folder on a bigger disk")


class ScratchFile:
    """A 3-D array in an anonymous temporary file (``$DAMSELFLY_SCRATCH``, default the system temp
    folder; already unlinked, so it goes with the object), read and written by boxes with one
    ``pread``/``pwrite`` per plane: no memory map, so nothing of it counts as the process's memory, and
    a box across many planes costs one call a plane, not one page fault per page.

    Writes take whole rows (``x`` the full width); reads take any box.

    ``shared=True`` gives the file a name, so that other processes (the workers of a block runner,
    :mod:`~damselfly.engine.core._blocks`) can read it: pickled, the object reopens the file there, read-only;
    the file goes with the object that made it.
    """

    def __init__(self, shape, dtype, shared: bool = False):
        import weakref

        self.shape, self.dtype = tuple(int(v) for v in shape), np.dtype(dtype)
        check_scratch_room(int(np.prod(self.shape)) * self.dtype.itemsize)
        self.path = None
        if shared:  # named, locked while this object lives (see claim_scratch)
            self.path, fd = claim_scratch(folder=False)
            self.file = os.fdopen(fd, "w+b")
            weakref.finalize(self, os.unlink, self.path)
        else:
            self.file = tempfile.TemporaryFile(dir=scratch_folder())
        self.file.truncate(max(1, int(np.prod(self.shape)) * self.dtype.itemsize))
        self.fd = self.file.fileno()

    def __getstate__(self):
        if self.path is None:
            raise TypeError("an anonymous scratch file cannot go to another process (make it with shared=True)")
        os.fsync(self.fd)  # what was written is on disk before another process (or machine) reads it
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype.str}

    def __setstate__(self, state):
        self.path, self.shape, self.dtype = state["path"], tuple(state["shape"]), np.dtype(state["dtype"])
        self.file = open(self.path, "rb")  # noqa: SIM115 - kept open with the object (which does not own the file)
        self.fd = self.file.fileno()

    def _span(self, z: int, y0: int, y1: int) -> tuple[int, int]:
        row = self.shape[2] * self.dtype.itemsize
        return (z * self.shape[1] + y0) * row, (y1 - y0) * row

    def _bounds(self, box) -> list[tuple[int, int]]:
        """``(start, stop)`` per axis of a box of up to three slices (missing ones: the whole axis)."""
        box = tuple(box) + (slice(None),) * (3 - len(box))
        return [(s.start or 0, n if s.stop is None else s.stop) for s, n in zip(box, self.shape)]

    def read(self, box) -> np.ndarray:
        (z0, z1), (y0, y1), (x0, x1) = self._bounds(box)
        out = np.empty((z1 - z0, y1 - y0, self.shape[2]), self.dtype)
        for k, z in enumerate(range(z0, z1)):
            offset, length = self._span(z, y0, y1)
            if os.preadv(self.fd, [memoryview(out[k]).cast("B")], offset) != length:
                raise OSError(f"short read from the scratch file at {offset}")
        return out[:, :, x0:x1] if (x0, x1) != (0, self.shape[2]) else out

    def write(self, box, data: np.ndarray) -> None:
        (z0, z1), (y0, y1), _ = self._bounds(box)
        data = np.ascontiguousarray(data, self.dtype)
        if data.shape != (z1 - z0, y1 - y0, self.shape[2]):
            raise ValueError(f"a scratch write takes whole rows: {data.shape} for {box}")
        for k, z in enumerate(range(z0, z1)):
            offset, length = self._span(z, y0, y1)
            if os.pwrite(self.fd, memoryview(data[k]).cast("B"), offset) != length:
                raise OSError(f"short write to the scratch file at {offset}")


def scratch_folder_of(owner) -> str:
    """A new scratch folder (:func:`claim_scratch`), removed with its lock when ``owner`` is collected."""
    import weakref

    folder, fd = claim_scratch(folder=True)
    weakref.finalize(owner, _drop_folder, folder, fd)
    return folder


def write_planes(out, box, data: np.ndarray, planes: int = 16) -> None:
    """``out[box] = data``, ``planes`` z-planes at a time (small copies into chunked storage); ``box``:
    three slices with explicit starts and stops."""
    z0 = box[0].start
    for z in range(0, data.shape[0], planes):
        out[(slice(z0 + z, min(box[0].stop, z0 + z + planes)),) + tuple(box[1:])] = data[z:z + planes]


def scratch_chunked(shape, dtype, compress: bool = False):
    """A writable Zarr array (uncompressed chunks of ``SLAB`` x 256 x 256 voxels) in a temporary folder
    under ``$DAMSELFLY_SCRATCH`` (default: the system temp folder), removed with the array (or, if the
    process dies first, by the next run's :func:`remove_stale_scratch`). Its reads and writes go through
    files, not a memory map, so they do not count in the process's memory. ``compress``: chunks through
    Blosc LZ4 (fast; for object ids, mostly runs of one value, many times smaller on disk)."""
    import weakref

    import zarr
    import zarr.codecs

    check_scratch_room(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    folder, fd = claim_scratch(folder=True)
    chunks = (min(SLAB, shape[0]), *(min(256, n) for n in shape[1:3]), *shape[3:])
    try:
        codec = zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="shuffle") if compress else None
        arr = zarr.create_array(store=folder, shape=tuple(shape), chunks=chunks, dtype=dtype, compressors=codec,
                                fill_value=0, zarr_format=3)
    except BaseException:
        _drop_folder(folder, fd)
        raise
    weakref.finalize(arr, _drop_folder, folder, fd)
    return arr


def release(*arrays) -> None:
    """Drop the pages of memory maps from this process (their data stays in the file and the page
    cache): streamed reads and writes of a memory map would otherwise count as the process's memory."""
    import mmap

    for a in arrays:
        m = getattr(a, "_mmap", None) if isinstance(a, np.memmap) else None
        if m is not None and hasattr(m, "madvise"):
            m.madvise(mmap.MADV_DONTNEED)


def on_disk(a) -> bool:
    """Whether an array stays on disk (a memory map, a Zarr or HDF5 array) rather than in memory."""
    return isinstance(a, np.memmap) or not isinstance(a, np.ndarray)


def output_like(inputs, shape, dtype, compress: bool = False) -> np.ndarray:
    """Where an action's result goes: chunked storage on disk (:func:`scratch_chunked`, ``compress``ed
    for object ids) when an input stays on disk or the result is over 1 GiB (so memory does not grow with
    the scan), else an in-memory array."""
    big = int(np.prod(shape)) * np.dtype(dtype).itemsize > 2 ** 30
    if big or any(on_disk(v.data) for v in inputs):
        return scratch_chunked(shape, dtype, compress)
    return np.empty(shape, dtype)


def read_depth(data, most: int = 256 * 2 ** 20) -> int:
    """A slab depth for streaming ``data`` (z first): its storage chunks' depth rounded up to a multiple of
    ``SLAB`` (a Zarr or HDF5 chunk is then read and decompressed once, not once per slab), while a slab
    stays under ``most`` bytes; ``SLAB`` for data without chunks.

    Examples
    --------
    >>> read_depth(np.zeros((100, 8, 8))), read_depth(type("Z", (), {"chunks": (64, 64, 64), "shape": (512, 512, 512),
    ...     "dtype": np.uint8})())
    (16, 64)
    """
    chunks = getattr(data, "chunks", None)
    if not chunks or not isinstance(chunks, tuple):
        return SLAB
    plane = int(np.prod(data.shape[1:])) * np.dtype(data.dtype).itemsize
    depth = -(-int(chunks[0]) // SLAB) * SLAB
    return max(SLAB, min(depth, most // max(plane, 1) // SLAB * SLAB))


def whole_chunks(n: int) -> int:
    """A slab depth near ``n`` that fits the scratch output's chunks (``SLAB`` slices deep): a multiple of
    ``SLAB`` where ``n`` reaches it, else the power of two at or below ``n`` (a divisor of ``SLAB``). Slabs
    of that depth write whole chunks, so each can go to another worker (:mod:`~damselfly.engine.core._blocks`).

    Examples
    --------
    >>> [whole_chunks(n) for n in (1, 5, 16, 81, 128)]
    [1, 4, 16, 80, 128]
    """
    return n - n % SLAB if n >= SLAB else 1 << (max(1, n).bit_length() - 1)


def map_slabs(vol: Volume, fn, dtype, message: str) -> np.ndarray:
    """Apply ``fn`` to ``vol.data`` slab by slab, with progress.

    Input on disk (memory-mapped, Zarr, HDF5) is streamed and gets a chunked output on disk
    (:func:`output_like`), so volumes larger than memory can be processed; in-memory input gets an
    in-memory output. A Zarr input in a run with a block runner (``--cluster``) has its slabs spread over
    the workers (:mod:`~damselfly.engine.core._blocks`; ``fn`` then goes to them, pickled).
    """
    out = output_like([vol], vol.data.shape, dtype)
    nz = vol.shape[0]
    slabs = [(z, min(nz, z + SLAB)) for z in range(0, nz, SLAB)]  # whole output chunks (SLAB deep)
    runner = blocks.runner_for(vol.data, out)
    blocks.run_blocks(runner, _map_slab, slabs, (vol.data, fn, out), message, size=blocks.span)
    return out


def _map_slab(job, zs) -> None:
    data, fn, out = job
    out[zs[0]:zs[1]] = fn(np.asarray(data[zs[0]:zs[1]]))
    release(data)


def nan_count(vol: Volume) -> int:
    """Number of NaN/Inf voxels (0 for integer data), counted slab by slab."""
    if vol.data.dtype.kind != "f":
        return 0
    n = 0
    for z in range(0, vol.shape[0], 32):
        n += int(np.count_nonzero(~np.isfinite(vol.data[z:z + 32])))
    return n


def require_finite(vol: Volume) -> None:
    """Raise :class:`InputError` naming the volume's file if it holds NaN or infinite values."""
    n = nan_count(vol)
    if n:
        raise InputError(f"{n} voxel(s) are NaN or infinite; load it with nan=\"zero\" to replace them",
                         vol.source)
