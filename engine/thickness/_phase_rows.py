"""Per-voxel int16 fields of a phase, stored row by row for the phase voxels only: the scratch format of
the out-of-core distance transform (:mod:`~damselfly.engine.thickness._blocks`).

Outside the phase the fields are 0 (a background voxel is its own nearest background), so only the
phase voxels are written: a scan whose phase is 7 % of it writes 7 % of the bytes a dense scratch file
would, and the kernel's write-back of dirty pages, which throttled the dense files, has little to do.

Layout: records of ``fields`` int16 values (and the voxel's ``x`` first, when ``with_x``) appended to one
scratch file as whole boxes of rows (``x`` the full width) are written; for every row ``(z, y)`` the
index of its first record and one past its last. The records of one row are contiguous; so are those of
the rows of one plane written in one box, which a read takes with one ``pread``.

Without ``with_x`` a read needs the mask of the rows it reads (the records say nothing of where in the
row they lie); with it, a read can take any box of ``x``.

:class:`DenseRows` offers the same writes and reads over plain scratch files (every voxel), for a phase
that is much of the volume: there the records save few bytes and cost packing and unpacking.

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((2, 3, 4), bool); mask[1, 2, 1:3] = True
>>> store = PhaseRows(mask.shape, 1, with_x=True)
>>> store.write(0, 0, mask, [np.full((2, 3, 4), 7, np.int16)])
>>> store.read((slice(0, 2), slice(0, 3), slice(0, 2)))[0][1]
array([[0, 0],
       [0, 0],
       [0, 7]], dtype=int16)
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from ..core.volume_ops import ScratchFile


@njit(parallel=True, cache=True)
def _row_counts(mask):
    nz, ny, nx = mask.shape
    counts = np.zeros((nz, ny), np.int64)
    for z in prange(nz):
        for y in range(ny):
            n = 0
            for x in range(nx):
                n += mask[z, y, x]
            counts[z, y] = n
    return counts


@njit(parallel=True, cache=True)
def _pack(mask, fields, starts, with_x, rec):
    """The records of the phase voxels of ``mask``, row ``(z, y)`` from ``starts[z, y]`` on."""
    nz, ny, nx = mask.shape
    o = 1 if with_x else 0
    for z in prange(nz):
        for y in range(ny):
            i = starts[z, y]
            for x in range(nx):
                if mask[z, y, x]:
                    if with_x:
                        rec[i, 0] = x
                    for k in range(len(fields)):
                        rec[i, o + k] = fields[k][z, y, x]
                    i += 1


@njit(parallel=True, cache=True)
def _unpack_x(rec, starts, stops, x0, out):
    """Records with their ``x`` into the zero-filled ``out`` (fields, z, y, x - x0)."""
    nf, nz, ny, nx = out.shape
    for z in prange(nz):
        for y in range(ny):
            for i in range(starts[z, y], stops[z, y]):
                x = rec[i, 0] - x0
                if 0 <= x < nx:
                    for k in range(nf):
                        out[k, z, y, x] = rec[i, 1 + k]


@njit(parallel=True, cache=True)
def _unpack_mask(rec, starts, mask, out):
    """Records without ``x`` into the zero-filled ``out``, placed by the mask of the same rows."""
    nf, nz, ny, nx = out.shape
    for z in prange(nz):
        for y in range(ny):
            i = starts[z, y]
            for x in range(nx):
                if mask[z, y, x]:
                    for k in range(nf):
                        out[k, z, y, x] = rec[i, k]
                    i += 1


class PhaseRows:
    """``fields`` int16 values per phase voxel of a volume of ``shape``, in a scratch file
    (:class:`~damselfly.engine.core.volume_ops.ScratchFile`: named and readable by other processes when
    ``shared``); see the module. Room for ``capacity`` records (default: every voxel) is checked at
    once."""

    def __init__(self, shape, fields: int, with_x: bool = False, shared: bool = False,
                 capacity: int | None = None):
        self.shape, self.fields, self.with_x = tuple(int(v) for v in shape), int(fields), bool(with_x)
        self.width = self.fields + self.with_x
        self.capacity = int(np.prod(self.shape)) if capacity is None else int(capacity)
        self.file = ScratchFile((1, 1, max(1, self.capacity * self.width * 2)), np.uint8, shared)
        self.start = np.zeros(self.shape[:2], np.int64)  # first record of each row
        self.stop = np.zeros(self.shape[:2], np.int64)  # one past its last
        self.records = 0

    def write(self, z0: int, y0: int, mask: np.ndarray, fields) -> None:
        """Store ``fields`` (a sequence of z, y, x arrays: whole rows) at the phase voxels of ``mask``,
        for the box of rows starting at ``(z0, y0)``. Each row is written once."""
        nz, ny, _ = mask.shape
        counts = _row_counts(mask)
        ends = np.cumsum(counts.reshape(-1)).reshape(counts.shape)
        starts = ends - counts
        rec = np.empty((int(ends[-1, -1]) if counts.size else 0, self.width), np.int16)
        if self.records + len(rec) > self.capacity:
            raise ValueError(f"{self.records + len(rec)} records for a store of {self.capacity}")
        _pack(mask, tuple(np.ascontiguousarray(f, np.int16) for f in fields), starts, self.with_x, rec)  # one tuple type
        offset = self.records * self.width * 2
        if rec.size and os.pwrite(self.file.fd, memoryview(rec).cast("B"), offset) != rec.nbytes:
            raise OSError(f"short write to the scratch file at {offset}")
        self.start[z0:z0 + nz, y0:y0 + ny] = starts + self.records
        self.stop[z0:z0 + nz, y0:y0 + ny] = ends + self.records
        self.records += len(rec)

    def read(self, box, mask: np.ndarray | None = None) -> np.ndarray:
        """The fields over a box of three slices, dense (fields, z, y, x; 0 outside the phase; each
        field contiguous). Without ``with_x``, the box takes whole rows and ``mask`` is the phase over
        it."""
        (z0, z1), (y0, y1), (x0, x1) = [(s.start or 0, n if s.stop is None else s.stop)
                                        for s, n in zip(box, self.shape)]
        starts, stops = self.start[z0:z1, y0:y1], self.stop[z0:z1, y0:y1]
        rec, local = self._records(starts, stops)
        out = np.zeros((self.fields, z1 - z0, y1 - y0, x1 - x0), np.int16)
        if self.with_x:
            _unpack_x(rec, local, local + (stops - starts), x0, out)
        else:
            _unpack_mask(rec, local, np.ascontiguousarray(mask, bool), out)
        return out

    def _records(self, starts: np.ndarray, stops: np.ndarray):
        """The records of the rows ``starts``/``stops`` (z, y) and where each row's start in them: rows
        that follow each other in the file are read together (one ``pread`` a plane when the rows were
        written together)."""
        s, e = starts.reshape(-1), stops.reshape(-1)
        full = np.nonzero(e > s)[0]
        s, e = s[full], e[full]
        new_run = np.r_[True, s[1:] != e[:-1]][:len(s)]
        a, b = s[new_run], e[np.r_[new_run[1:], True][:len(s)]]
        at = np.r_[0, np.cumsum(b - a)]  # where each run lands in the records
        rec = np.empty((int(at[-1]), self.width), np.int16)
        for lo, hi, k in zip(a.tolist(), b.tolist(), at.tolist()):
            view = memoryview(rec[k:k + hi - lo]).cast("B")
            if os.preadv(self.file.fd, [view], lo * self.width * 2) != view.nbytes:
                raise OSError(f"short read from the scratch file at {lo * self.width * 2}")
        run = np.cumsum(new_run) - 1
        local = np.zeros(starts.size, np.int64)
        local[full] = s - a[run] + at[run]
        return rec, local.reshape(starts.shape)


class DenseRows:
    """The same interface over one plain scratch file a field (every voxel stored): cheaper than
    :class:`PhaseRows` when the phase is much of the volume."""

    def __init__(self, shape, fields: int, shared: bool = False):
        self.shape = tuple(int(v) for v in shape)
        self.files = [ScratchFile(self.shape, np.int16, shared) for _ in range(fields)]

    def write(self, z0: int, y0: int, mask: np.ndarray, fields) -> None:
        box = (slice(z0, z0 + mask.shape[0]), slice(y0, y0 + mask.shape[1]))
        for f, a in zip(self.files, fields):
            f.write(box, a)

    def read(self, box, mask: np.ndarray | None = None) -> list[np.ndarray]:
        return [np.ascontiguousarray(f.read(box)) for f in self.files]
