"""Streaming slabs through a device: reads ahead, computes, writes behind (issue 34).

``infer``, ``infer_probabilities``, ``uncertainty`` and ``enhance`` all run the same loop over the z-slabs
of a volume:

- a **read thread** reads the next slab's planes as stored (uint16 stays uint16) and moves them to the
  device: on CUDA straight into page-locked (pinned) host memory and from there to the GPU on a copy
  stream of its own, so the copy overlaps the network's work on the slab before;
- the caller's thread computes on the device (normalising, the context stack, tiles, flips, blending,
  argmax: see :meth:`~damselfly.engine.segmentation._inference.Predictor.slab_tensor`) and starts the copy of the
  result (uint8 labels, not probabilities) back into a pinned buffer;
- a **write thread** waits for that copy and writes the slab into the output while the next one computes.

On the CPU the same code runs with ordinary memory (no pinning, no streams). Stop (``progress.check``),
errors and out-of-memory end the loop: the threads finish what they started and exit, and the pinned
buffers are released (:meth:`Staging.close`). Nothing here knows what is computed.

Examples
--------
>>> import numpy as np, torch
>>> vol, out = np.arange(24, dtype=np.uint16).reshape(6, 2, 2), np.zeros((6, 2, 2), np.int32)
>>> with Staging(torch.device("cpu")) as st:
...     stream([(0, 3), (3, 6)], lambda z0, z1: st.upload([vol[z0:z1]])[0],
...            lambda t, z0, z1: t.to(torch.int32) * 2, lambda a, z0, z1: out.__setitem__(slice(z0, z1), a), st)
>>> int(out[5, 1, 1])
46
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..core import progress

#: NumPy dtypes moved to the device as they are, and the same-sized integer type for those PyTorch only
#: stores (unsigned 16 and 32 bits): the device widens those (:func:`as_float`).
_AS_STORED = {np.dtype(np.uint8): torch.uint8, np.dtype(np.int8): torch.int8, np.dtype(np.int16): torch.int16,
              np.dtype(np.int32): torch.int32, np.dtype(np.int64): torch.int64, np.dtype(np.float16): torch.float16,
              np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64, np.dtype(np.bool_): torch.bool}
_BITS_OF = {np.dtype(np.uint16): (np.int16, torch.int16, 0xFFFF), np.dtype(np.uint32): (np.int32, torch.int32, 0xFFFFFFFF)}


class Staging:
    """Moves slabs between host and device: pinned buffers and a copy stream on CUDA, plain tensors
    sharing NumPy's memory on the CPU. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.copies = torch.cuda.Stream(device) if self.cuda else None
        self.pinned: dict = {}  # (role, shape, dtype) -> page-locked host tensor, reused slab after slab

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Release the pinned buffers (the copies using them have finished: every upload waits for its
        own, every download is waited for by its writer)."""
        self.pinned.clear()

    def _buffer(self, role, shape, dtype) -> torch.Tensor:
        key = (role, tuple(shape), dtype)
        if key not in self.pinned:
            self.pinned[key] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return self.pinned[key]

    def upload(self, planes: Sequence) -> list[torch.Tensor]:
        """Each of ``planes`` (arrays or lazy array slices) on the device, in its stored type (unsigned
        16 and 32 bits as the signed type of their size: :func:`as_float` reads them back). Blocks until
        the copies are done, so call it in a read thread."""
        out = []
        for i, a in enumerate(planes):
            dt = np.dtype(a.dtype)
            if dt in _BITS_OF:
                host_dt, tdt, _ = _BITS_OF[dt]
            elif dt.newbyteorder("=") in _AS_STORED and dt.isnative:
                host_dt, tdt = dt, _AS_STORED[dt]
            else:  # big-endian or exotic: as float32
                host_dt, tdt = np.dtype(np.float32), torch.float32
            if not self.cuda:
                a = np.asarray(a)
                if isinstance(a, np.memmap) or not a.flags.writeable:  # read now, in this thread
                    a = np.array(a)
                a = a.view(host_dt) if dt in _BITS_OF else a.astype(host_dt, copy=False)
                out.append(torch.from_numpy(np.ascontiguousarray(a)))
                continue
            buf = self._buffer(("up", i), a.shape, tdt)
            view = buf.numpy()
            np.copyto(view.view(dt) if dt in _BITS_OF else view, a, casting="unsafe")  # the read itself
            with torch.cuda.stream(self.copies):
                dev = buf.to(self.device, non_blocking=True)
            dev.record_stream(torch.cuda.default_stream(self.device))
            out.append(dev)
        if self.cuda:
            self.copies.synchronize()
        return out

    def download(self, t: torch.Tensor) -> Download:
        """Start copying ``t`` to the host; :meth:`Download.array` waits for it (in the write thread).
        The pinned buffer is reused by the next download of that shape, which :func:`stream` starts only
        once the previous slab was written."""
        if not self.cuda:
            return Download(t.numpy(), None)
        buf = self._buffer("down", t.shape, t.dtype)
        buf.copy_(t, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return Download(buf.numpy(), done)


class Download:
    """A result on its way to the host (see :meth:`Staging.download`)."""

    def __init__(self, host: np.ndarray, done):
        self.host, self.done = host, done

    def array(self) -> np.ndarray:
        if self.done is not None:
            self.done.synchronize()
        return self.host


def as_float(t: torch.Tensor, stored: np.dtype) -> torch.Tensor:
    """The float32 values of planes uploaded by :meth:`Staging.upload` from an array of type ``stored``
    (unsigned types travel as the signed type of their size and are widened here, on the device)."""
    stored = np.dtype(stored)
    if stored in _BITS_OF:
        wide = torch.int32 if stored.itemsize == 2 else torch.int64
        return (t.to(wide) & _BITS_OF[stored][2]).to(torch.float32)
    return t.to(torch.float32)


def for_device(dtype) -> tuple[torch.dtype, np.dtype]:
    """The tensor type to compute an output of NumPy ``dtype`` in, and how its host copy is viewed
    (uint16 labels travel as int16: the same bits)."""
    dt = np.dtype(dtype)
    if dt in _BITS_OF:
        return _BITS_OF[dt][1], dt
    return _AS_STORED.get(dt, torch.float32), dt


def stream(ranges: Sequence[tuple[int, int]], read: Callable, compute: Callable, write: Callable,
           staging: Staging | None = None, advance: Callable | None = None) -> None:
    """For every ``(z0, z1)`` of ``ranges``: ``read(z0, z1)`` in a read thread (one slab ahead),
    ``compute(read's result, z0, z1)`` here, ``write(computed, z0, z1)`` in a write thread (the slab
    before is written while this one computes; with ``staging`` a tensor result is copied to the host
    first and ``write`` gets the NumPy array); ``advance(z1 - z0)`` here once a slab is computed
    (progress). Writes happen in order; Stop, an error in any of the three, or out-of-memory ends the
    loop after the threads finish what they started."""
    if not ranges:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="damselfly-io-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="damselfly-io-write") as writer:
        ahead = reader.submit(read, *ranges[0])
        written = None
        try:
            for i, (z0, z1) in enumerate(ranges):
                got = ahead.result()
                if i + 1 < len(ranges):
                    ahead = reader.submit(read, *ranges[i + 1])
                result = compute(got, z0, z1)
                if written is not None:
                    written.result()  # in order; a failed write stops the run here; frees the download buffer
                if staging is not None and isinstance(result, torch.Tensor):
                    result = staging.download(result)
                written = writer.submit(_write, write, result, z0, z1)
                if advance is not None:
                    advance(z1 - z0)
                progress.check()
            written.result()
        finally:
            ahead.cancel()


def _write(write: Callable, result, z0: int, z1: int) -> None:
    write(result.array() if isinstance(result, Download) else result, z0, z1)
