"""Sliding-window prediction over any predictor, and the pieces it is made of.

:func:`sliding_window` is the one function that runs a predictor over arrays larger than it can take
at once, in the manner of MONAI's ``sliding_window_inference``: overlapping tiles, batched, blended with
a smooth window so that seams do not show, tiles wholly outside a mask skipped, axes shorter than a tile
padded to what the network needs. It knows nothing of segmentation: the predictor is any callable from
a batch of tiles ``(b, C, *tile)`` to ``(b, K, *tile * scale)`` (class probabilities, restored grey
values, an up-sampled image). :class:`NetworkPredictor` is the small predictor for a PyTorch network:
device, mixed precision, channels-last, flip averaging and out-of-memory back-off.

It runs in PyTorch on the items' device: a tensor on a GPU is tiled, predicted and blended there (the
device pipeline of :mod:`~damselfly.engine.segmentation._streaming`), NumPy in gives NumPy out. Reading volumes
larger than memory is the caller's part (:mod:`damselfly.engine.segmentation._inference` streams slab by slab);
:func:`read_slices` and :func:`stack_context` are the host-side reading and 2.5-D context stacking the
training patches and the benchmarks use.

Examples
--------
>>> import numpy as np
>>> double = lambda x: 2 * x                          # any predictor: (b, C, h, w) -> (b, K, h, w)
>>> out = sliding_window(np.ones((1, 1, 100, 70), np.float32), double, tile=(32, 32))
>>> out.shape, float(out.min()), float(out.max())
((1, 1, 100, 70), 2.0, 2.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..core import progress
from ..core._device import to_device
from ..core.errors import DamselflyError, ParameterError


def reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Map indices outside ``0..n-1`` back inside by mirroring (``numpy.pad`` mode ``reflect``)."""
    idx = np.asarray(idx)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m < n, m, period - m)


def norm_scale(low: float, high: float) -> tuple[np.float32, np.float32]:
    """``(low, 1 / (high - low))`` as float32 (scale 1 where ``high <= low``): ``(v - low) * scale`` maps
    ``low``..``high`` to 0..1, the one formula every normalisation of a model's input uses."""
    return np.float32(low), np.float32(1.0 / (high - low) if high > low else 1.0)


def normalize(a: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low``..``high`` to 0..1 (float32); values beyond are kept, not clipped."""
    low32, scale = norm_scale(low, high)
    return (np.asarray(a, dtype=np.float32) - low32) * scale


def read_slices(arrays: Sequence[np.ndarray], z: np.ndarray, norm: Sequence[tuple[float, float]]) -> np.ndarray:
    """Normalised slices ``z`` (mirrored at the volume's ends) of every input: (inputs, len(z), y, x)."""
    n = arrays[0].shape[0]
    zi = reflect_index(z, n)
    lo, hi = int(zi.min()), int(zi.max()) + 1
    out = []
    for a, (low, high) in zip(arrays, norm):
        block = np.asarray(a[lo:hi])
        out.append(normalize(block[zi - lo], low, high))
    return np.stack(out)


def stack_context(slab: np.ndarray, k: int) -> np.ndarray:
    """(inputs, z + k - 1, y, x) → (z, inputs * k, y, x): each slice with its k neighbours as channels."""
    n_in, zz, y, x = slab.shape
    nz = zz - (k - 1)
    idx = np.arange(nz)[:, None] + np.arange(k)[None, :]       # (nz, k)
    out = slab[:, idx]                                          # (inputs, nz, k, y, x)
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3, 4).reshape(nz, n_in * k, y, x))


def window(shape: Sequence[int], blend: str = "gaussian") -> np.ndarray:
    """Blending weights for one tile: a Gaussian (sigma = size / 8) or a linear ramp over the outer quarter."""
    w = np.ones((), dtype=np.float32)
    for n in shape:
        i = np.arange(n, dtype=np.float32) + 0.5
        if blend == "gaussian":
            sigma = n / 8.0
            v = np.exp(-0.5 * ((i - n / 2.0) / sigma) ** 2)
        elif blend == "linear":
            ramp = max(n / 4.0, 1.0)
            v = np.minimum(1.0, np.minimum(i, n - i) / ramp)
        else:
            raise ParameterError(f"blend must be 'gaussian' or 'linear', got {blend!r}")
        v = np.maximum(v / v.max(), 1e-3).astype(np.float32)
        w = np.multiply.outer(w, v)
    return w.astype(np.float32)


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Tile origins covering ``0..size`` with tiles of ``tile`` overlapping by about ``overlap``."""
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    n = int(math.ceil((size - tile) / step)) + 1  # fewest tiles that keep at least the overlap
    return [int(round(v)) for v in np.linspace(0, size - tile, n)]


def round_up(n: int, m: int) -> int:
    """``n`` rounded up to a multiple of ``m``."""
    return int(math.ceil(n / m) * m)


def sliding_window(items, predictor: Callable, tile: Sequence[int],
                   overlap: float = 0.25, blend: str = "gaussian", batch: int = 8,
                   masks: np.ndarray | None = None, multiple: int = 1, scale: Sequence[int] | None = None,
                   out_channels: int | None = None):
    """Run ``predictor`` over overlapping tiles of ``items`` and blend the results.

    Parameters
    ----------
    items : ndarray or torch.Tensor, shape (n, C, *spatial)
        ``n`` independent inputs (slices, or 3-D blocks) of ``C`` channels, float32. A tensor stays on
        its device: tiles, blending and the result are computed there (a strided view is fine, e.g.
        the 2.5-D context that :meth:`Predictor.slab_tensor
        <damselfly.engine.segmentation._inference.Predictor.slab_tensor>` unfolds).
    predictor : callable
        ``(b, C, *tile) -> (b, K, *(tile * scale))``, NumPy arrays for NumPy ``items``, tensors on the
        items' device for a tensor; called with at most ``batch`` tiles at a time.
    tile : sequence of int
        Tile size per spatial axis; an axis shorter than its tile is padded (mirrored) to a multiple of
        ``multiple`` and gets one tile.
    overlap : float
        Fraction of a tile shared with its neighbour, 0 .. 0.9.
    blend : {"gaussian", "linear"}
        Blending window (:func:`window`).
    batch : int
        Tiles per call of ``predictor``.
    masks : ndarray of bool, shape (n, *spatial), optional
        Tiles wholly outside are skipped and their output left at zero (NumPy, on the host, for either
        kind of ``items``).
    multiple : int
        What every tile size must be a multiple of (a U-Net's ``2 ** (levels - 1)``).
    scale : sequence of int, optional
        Integer up-sampling of the output per spatial axis (restoration to a finer grid); 1 by default.
    out_channels : int, optional
        ``K``, for the output when every tile is masked out (otherwise read from the predictor's output).

    Returns
    -------
    ndarray or torch.Tensor, shape (n, K, *(spatial * scale)), float32
        The blended predictions (a tile's weight is the window; where windows overlap, a weighted mean;
        an item that one tile covers gets its prediction as it is, never blended), of ``items``' kind.

    Raises
    ------
    ParameterError
        ``overlap`` out of range, or a predictor that returns the wrong shape.
    """
    import torch

    if isinstance(items, torch.Tensor):
        return _blend_tiles(items, predictor, tile, overlap, blend, batch, masks, multiple, scale, out_channels)

    def on_tensors(x):
        return torch.as_tensor(np.asarray(predictor(x.numpy()), dtype=np.float32))

    out = _blend_tiles(torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32)), on_tensors, tile, overlap,
                       blend, batch, masks, multiple, scale, out_channels)
    return out.numpy()


def mirrored(n: int, size: int, edge: bool) -> np.ndarray:
    """Indices ``0..size-1`` of an axis of ``n`` padded at its end by mirroring: ``numpy.pad``'s
    ``symmetric`` mode with ``edge`` (the last voxel repeated), else its ``reflect`` mode."""
    i = np.arange(size)
    if edge:
        m = np.mod(i, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    return reflect_index(i, n)


def _blend_tiles(items, predictor, tile, overlap, blend, batch, masks, multiple, scale, out_channels):
    """:func:`sliding_window` on a tensor ``items``: everything on its device."""
    import torch

    if not 0.0 <= overlap < 0.9:
        raise ParameterError(f"overlap must be in 0 .. 0.9, got {overlap}")
    dev = items.device
    n = items.shape[0]
    spatial = tuple(items.shape[2:])
    scale = tuple(scale or (1,) * len(spatial))
    padded = [s if s >= t else round_up(s, multiple) for s, t in zip(spatial, tile)]
    tiles = [min(t, p) for t, p in zip(tile, padded)]
    if padded != list(spatial):  # mirrored to what the network takes, as numpy.pad would
        edge = not all(s > p - s for s, p in zip(spatial, padded))
        for ax, (s, p) in enumerate(zip(spatial, padded)):
            if p != s:
                items = items.index_select(2 + ax, to_device(mirrored(s, p, edge), dev))
        if masks is not None:
            masks = np.pad(masks, [(0, 0)] + [(0, p - s) for p, s in zip(padded, spatial)], mode="constant")
    out_tile = [t * f for t, f in zip(tiles, scale)]
    grid = np.stack(np.meshgrid(*[tile_starts(p, t, overlap) for p, t in zip(padded, tiles)], indexing="ij"),
                    -1).reshape(-1, len(tiles))
    jobs = [(i, tuple(int(s) for s in start)) for i in range(n) for start in grid
            if masks is None or masks[(i,) + tuple(slice(s, s + t) for s, t in zip(start, tiles))].any()]
    w = to_device(window(out_tile, blend), dev) if len(grid) > 1 else None
    acc = wsum = None
    step = max(batch, 1)
    whole = w is None  # one tile start on each axis: each (padded) item is one tile, as it is
    for j in range(0, len(jobs), step):
        part = jobs[j:j + step]
        first, last = part[0][0], part[-1][0]
        in_a_row = whole and last - first + 1 == len(part)
        if whole:  # a view, or one gather, not a stack
            x = items[first:last + 1] if in_a_row else \
                items.index_select(0, to_device(np.array([i for i, _ in part]), dev))
        else:
            x = torch.stack([items[(i, slice(None)) + tuple(slice(s, s + t) for s, t in zip(st, tiles))]
                             for i, st in part])
        y = predictor(x)
        if y.shape[0] != len(part) or list(y.shape[2:]) != out_tile:
            raise ParameterError(f"the predictor returned shape {tuple(y.shape)} for tiles {tuple(x.shape)}; "
                                 f"expected ({len(part)}, K, {', '.join(map(str, out_tile))})")
        y = y.float()
        if acc is None:
            acc = torch.zeros((n, y.shape[1]) + tuple(p * f for p, f in zip(padded, scale)), dtype=torch.float32,
                              device=dev)
            wsum = torch.zeros((n,) + tuple(acc.shape[2:]), dtype=torch.float32, device=dev) if w is not None else None
        if in_a_row:  # whole items in a row: one copy for the batch, not one an item
            acc[first:last + 1] = y
            progress.check()
            continue
        for (i, st), p in zip(part, y):
            sl = tuple(slice(s * f, s * f + t) for s, f, t in zip(st, scale, out_tile))
            if w is None:  # one tile covers the item: nothing to blend
                acc[(i, slice(None)) + sl] = p
                continue
            acc[(i, slice(None)) + sl] += p * w
            wsum[(i,) + sl] += w
        progress.check()
    if acc is None:  # every tile masked out: nothing was predicted
        k = out_channels or predictor(torch.zeros((1, items.shape[1]) + tuple(tiles), device=dev)).shape[1]
        return torch.zeros((n, k) + tuple(s * f for s, f in zip(spatial, scale)), dtype=torch.float32, device=dev)
    if wsum is not None:
        acc /= wsum.clamp_min_(1e-12).unsqueeze(1)
    return acc[(slice(None), slice(None)) + tuple(slice(0, s * f) for s, f in zip(spatial, scale))]


class NetworkPredictor:
    """A PyTorch network as a :func:`sliding_window` predictor.

    Parameters
    ----------
    net : torch.nn.Module
        In eval mode, on ``device``.
    device : torch.device
    activation : {"softmax", None}
        Applied to the network's output (class probabilities), or nothing (restoration).
    tta : bool
        Average over the four in-plane flips (four times slower).
    batch : int
        Tiles per forward pass; halved on a CUDA out-of-memory error, down to one.

    On CUDA the network runs under bf16 (fp16 where bf16 is missing) autocast in channels-last layout.
    """

    def __init__(self, net, device, activation: str | None = "softmax", tta: bool = False, batch: int = 8):
        import torch

        self.torch = torch
        self.net = net
        self.device = device
        self.activation = activation
        self.tta = tta
        self.batch = max(1, int(batch))
        self.amp_dtype = None
        if device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _forward(self, x):
        torch = self.torch
        ndim = x.ndim - 2
        fmt = torch.channels_last if ndim == 2 else torch.channels_last_3d
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=fmt)

        def once(xi):
            y = self.net(xi).float()
            return torch.softmax(y, dim=1) if self.activation == "softmax" else y

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                                                    enabled=self.amp_dtype is not None):
            if not self.tta:
                return once(x)
            dims = (x.ndim - 2, x.ndim - 1)
            acc = None
            for flip in ((), (dims[1],), (dims[0],), dims):
                p = once(torch.flip(x, flip) if flip else x)
                p = torch.flip(p, flip) if flip else p
                acc = p if acc is None else acc + p
            return acc / 4.0

    def __call__(self, tiles):
        """The network's output for ``tiles`` (b, C, *tile): a NumPy array for an array, a tensor on the
        device for a tensor (nothing comes back to the host)."""
        torch = self.torch
        on_device = isinstance(tiles, torch.Tensor)
        x = tiles if on_device else torch.from_numpy(np.ascontiguousarray(tiles))
        while True:
            try:
                outs = [self._forward(x[i:i + self.batch]) for i in range(0, len(x), self.batch)]
                y = outs[0] if len(outs) == 1 else torch.cat(outs)
                return y if on_device else y.cpu().numpy()
            except torch.cuda.OutOfMemoryError:
                if self.batch == 1:
                    raise DamselflyError("the GPU ran out of memory even for one tile; use a smaller "
                                         "tile or device='cpu'") from None
                torch.cuda.empty_cache()
                self.batch = max(1, self.batch // 2)
