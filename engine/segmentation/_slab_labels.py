"""Labels of a slab straight from the network on the CPU, when a slice is one tile (issue 34).

The device pipeline (:mod:`~damselfly.engine.segmentation._streaming`, :meth:`Predictor.slab_tensor
<damselfly.engine.segmentation._inference.Predictor.slab_tensor>`) normalises a slab, views each slice's context,
runs the tiles, blends the softmax probabilities and takes the argmax in PyTorch: on a GPU that is what
the GPU should do, on two CPU cores it is several passes over float copies of the slab. When every slice
fits in one tile (the default tile is the slice), blending multiplies and divides by the same window, so
the labels are the argmax of the network's output itself, and on the CPU this path moves the least:

- the slab is read as stored (uint16 stays uint16);
- one compiled pass (numba, both cores) writes each batch's normalised 2.5-D context straight into the
  channels-last layout the network runs in: no normalised copy of the slab, no context stack, no tiles;
- the argmax of the network's output (logits: softmax keeps their order; with test-time flips the mean
  of the softmax probabilities) is another compiled pass writing the uint8 (or uint16) labels.

The labels equal the device pipeline's but where two classes' probabilities tie to float precision
(tested). :func:`slab_labels` returns ``None`` where the path does not apply (3-D networks, tiles smaller
than the slice, slices whose size the network cannot take as they are, a forest).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._tiling import norm_scale, reflect_index


def applies(pred, shape: Sequence[int]) -> bool:
    """Whether :func:`slab_labels` can label slices of ``shape`` (z, y, x) for predictor ``pred``."""
    if getattr(pred, "ndim", None) != 2 or not hasattr(pred, "run"):
        return False
    y, x = int(shape[1]), int(shape[2])
    m = pred.multiple
    return pred.tile >= max(y, x) and y % m == 0 and x % m == 0


def read_raw(pred, arrays: Sequence, z0: int, z1: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The planes slices ``z0..z1`` need (their context, mirrored at the ends) of every input, as stored
    (uint16 stays uint16), and each needed slice's row in them. Reads only: it can run in another thread
    while the slab before is computed."""
    zi = reflect_index(np.arange(z0 - pred.halo, z1 + pred.halo), arrays[0].shape[0])
    lo, hi = int(zi.min()), int(zi.max()) + 1
    return [np.ascontiguousarray(a[lo:hi]) for a in arrays], (zi - lo).astype(np.int64)


def slab_labels(pred, arrays: Sequence, z0: int, z1: int, dtype=np.uint8, raw=None) -> np.ndarray | None:
    """The most probable class (1..K) of slices ``z0..z1`` of ``arrays`` as ``dtype``, or ``None`` where
    this path does not apply (then use :meth:`Predictor.predict_slab`). ``raw``: what :func:`read_raw`
    gave for these slices, read ahead."""
    if not applies(pred, arrays[0].shape):
        return None
    raws, rows = raw if raw is not None else read_raw(pred, arrays, z0, z1)
    k, norm = _inputs(pred.model)
    out = np.empty((z1 - z0, *raws[0].shape[1:]), dtype)
    from ._slab_kernels import argmax_plus_one

    for b, scores in _batches(pred, raws, rows, norm, k):
        argmax_plus_one(scores.reshape(-1, scores.shape[-1]), out[b:b + len(scores)].reshape(-1))
    return out


def _inputs(model) -> tuple[int, list]:
    """Slices of context per input, and each input's normalisation as float32 (low, 1 / (high - low))."""
    k = model.context if model.input == "2.5d" else 1
    return k, [norm_scale(low, high) for low, high in model.normalization]


def _batches(pred, raws, rows, norm, k: int):
    """(first slice, network output as (n, y, x, K) float32) per batch of slices: logits (with flips the
    mean probabilities)."""
    from ._slab_kernels import context_channels_last

    run = pred.run
    nz = len(rows) - 2 * pred.halo
    y, x = raws[0].shape[1:]
    for b in range(0, nz, run.batch):
        n = min(run.batch, nz - b)
        batch = np.empty((n, y, x, len(raws) * k), np.float32)  # channels last, as the network runs
        for i, (raw, (low, scale)) in enumerate(zip(raws, norm)):
            context_channels_last(raw, rows, b, k, low, scale, batch, i * k)
        scores = _forward(run, torch.from_numpy(batch).permute(0, 3, 1, 2))
        yield b, scores.permute(0, 2, 3, 1).contiguous().numpy()


def _forward(run, x: torch.Tensor) -> torch.Tensor:
    """The network's output for a batch (b, C, y, x) in channels-last layout: its logits, or with
    test-time flips the mean of the four in-plane flips' softmax probabilities exactly as
    ``NetworkPredictor`` gives them."""
    if run.tta:
        return run._forward(x).cpu()
    x = x.to(run.device, non_blocking=True)
    with torch.inference_mode(), torch.autocast(run.device.type, dtype=run.amp_dtype or torch.bfloat16,
                                                enabled=run.amp_dtype is not None):
        return run.net(x).float().cpu()


def label_slabs(pred, arrays: Sequence, out, ranges: Sequence[tuple[int, int]], advance=None) -> None:
    """Label the slabs ``ranges`` into ``out`` with reads and writes overlapping the work
    (:func:`~damselfly.engine.segmentation._streaming.stream`: the next slab's planes are read while this one is
    computed, each slab's labels written behind it); ``advance``: progress, as ``stream`` takes it."""
    from ._streaming import stream

    def compute(raw, z0, z1):
        return slab_labels(pred, arrays, z0, z1, out.dtype, raw=raw)

    stream(ranges, lambda z0, z1: read_raw(pred, arrays, z0, z1), compute,
           lambda lab, z0, z1: out.__setitem__(slice(z0, z1), lab), advance=advance)
