"""Reading a Zarr store on disk without letting it reach further: a store is read only from files that
resolve inside its folder (a chunk that is a symlink to ``/etc/passwd`` is refused, Zarr v2 and v3), and
a small compressed chunk may not inflate beyond what the array's metadata declares for a chunk (a 2 MB
zlib chunk inflating to 2 GiB is refused before it is inflated). Library: ``zarr``'s ``LocalStore``.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from zarr.storage import LocalStore

from ..core.errors import InputError

#: The metadata keys of a store (Zarr v2 and v3): JSON, never chunk data.
METADATA = (".json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")

#: Chunks larger than this (declared, uncompressed) are refused: one read would take that much memory.
MAX_CHUNK_BYTES = 1 << 30
#: Arrays of more chunks than this are refused: reading them chunk by chunk would never end.
MAX_CHUNKS = 10_000_000


def open_confined(path: Path):
    """``zarr.open`` of the store at ``path`` through :class:`ConfinedStore`, read-only."""
    import zarr

    return zarr.open(ConfinedStore(path), mode="r")


class ConfinedStore(LocalStore):
    """A read-only ``LocalStore`` that reads only files inside its folder and refuses chunks that inflate
    beyond ``limit`` bytes (set from the arrays' metadata by :func:`check_chunks`)."""

    def __init__(self, root):
        super().__init__(str(root), read_only=True)
        self.real = os.path.realpath(str(root))
        self.limit: int | None = None

    def _check(self, key: str) -> None:
        real = os.path.realpath(os.path.join(str(self.root), key))
        if real != self.real and not real.startswith(self.real + os.sep):
            raise InputError(f"the Zarr store's entry '{key}' resolves to {real}, outside the store; Damselfly "
                             "reads a store only from files inside its folder", self.real)

    async def get(self, key, prototype=None, byte_range=None):
        self._check(key)
        buf = await super().get(key, prototype, byte_range)
        if buf is not None and byte_range is None and self.limit is not None and not key.endswith(METADATA):
            _check_inflation(buf.to_bytes(), self.limit, key, self.real)
        return buf

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        for key, _range in key_ranges:
            self._check(key)
        return await super().get_partial_values(prototype, key_ranges)


def _check_inflation(data: bytes, limit: int, key: str, where: str) -> None:
    """A zlib or gzip chunk that would inflate beyond ``limit`` bytes is an error (inflated only that far)."""
    if len(data) < 2 or not (data[:2] == b"\x1f\x8b" or (data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0)):
        return
    try:
        d = zlib.decompressobj(47)  # zlib or gzip header, detected
        d.decompress(data, limit + 1)
    except zlib.error:
        return  # not zlib after all: the codec says what is wrong
    if d.unconsumed_tail:
        raise InputError(f"the Zarr chunk '{key}' inflates beyond the {limit:,} bytes a chunk of this array holds "
                         "(a corrupt or malicious chunk)", where)


def check_chunks(arrays, store, path: Path) -> None:
    """Refuse chunk grids that cannot be read (too many chunks, or chunks too large), naming the count and
    suggesting a rechunk; then bound every chunk's inflation by the largest declared chunk."""
    import math

    largest = 0
    for name, arr in arrays:
        chunks = getattr(arr, "chunks", None) or arr.shape
        n = math.prod(math.ceil(s / max(1, c)) for s, c in zip(arr.shape, chunks))
        nbytes = math.prod(chunks) * arr.dtype.itemsize
        where = f"array '{name}' " if name else ""
        if n > MAX_CHUNKS:
            raise InputError(f"{where}has {n:,} chunks of {tuple(chunks)} (more than {MAX_CHUNKS:,}): reading it chunk "
                             "by chunk would never end; rechunk it to chunks of about 64^3 voxels (e.g. with "
                             "dask.array's rechunk and to_zarr)", path)
        if nbytes > MAX_CHUNK_BYTES:
            raise InputError(f"{where}has chunks of {nbytes / 2**30:.1f} GiB ({tuple(chunks)}), more than "
                             f"{MAX_CHUNK_BYTES / 2**30:.0f} GiB a read; rechunk it", path)
        largest = max(largest, nbytes)
    store.limit = largest
