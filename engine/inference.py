"""Applying a trained model to whole volumes, streamed in slabs.

The volume is read slab by slab along z (so memory-mapped inputs larger than RAM work: only one slab
and its halo are in memory), each slice (2d / 2.5d) or slab (3d) is cut into overlapping tiles, the
tiles go through the network in batches, and their class probabilities are blended with a smooth window
(Gaussian or linear) so that tile seams do not show. The same function serves training previews,
``infer`` and ``infer_probabilities``.

On CUDA the network runs under bf16 (or fp16) autocast in channels-last layout, the batch size is
picked from free GPU memory and halved on out-of-memory. On the CPU it runs in float32, channels-last,
with batch norm folded into the convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import progress
from .data import Labels, Volume
from .errors import DamselflyError, InputError, ParameterError
from .model import Model


# ------------------------------------------------------------------------------------------------
# pieces shared with training
# ------------------------------------------------------------------------------------------------
def resolve_device(setting: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU")
    if setting in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Map indices outside ``0..n-1`` back inside by mirroring (``numpy.pad`` mode ``reflect``)."""
    idx = np.asarray(idx)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m < n, m, period - m)


def normalize(a: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low``..``high`` to 0..1 (float32); values beyond are kept, not clipped."""
    scale = 1.0 / (high - low) if high > low else 1.0
    return (np.asarray(a, dtype=np.float32) - np.float32(low)) * np.float32(scale)


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


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


def _fuse_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every (conv, batch norm) pair of a Sequential into one convolution (eval mode only)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for mod in net.modules():
        if isinstance(mod, nn.Sequential):
            keys = list(mod._modules)
            for a, b in zip(keys, keys[1:]):
                conv, bn = mod._modules[a], mod._modules[b]
                if isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm3d)):
                    mod._modules[a] = fuse_conv_bn_eval(conv, bn)
                    mod._modules[b] = nn.Identity()
    return net


# ------------------------------------------------------------------------------------------------
# the predictor
# ------------------------------------------------------------------------------------------------
class Predictor:
    """Runs a model over tiles and blends them; see the module docstring.

    Parameters
    ----------
    model : Model
    device : str or torch.device
        ``auto``, ``cpu``, ``cuda`` or a torch device.
    tile : int
        Tile edge in voxels (3-D tiles: at most 128 across and 64 deep). Rounded up to what the network
        needs. Larger tiles waste less work on overlaps; a slice that fits in one tile is
        predicted whole.
    overlap : float
        Fraction of a tile shared with its neighbour (0 .. 0.9).
    blend : {"gaussian", "linear"}
    tta : bool
        Average over the four in-plane flips (test-time augmentation; four times slower).
    batch : int, optional
        Tiles per forward pass; default picked for the device.
    network : nn.Module, optional
        Use this (training) network instead of building one from the model's weights.
    """

    def __init__(self, model: Model, device="auto", tile: int = 512, overlap: float = 0.25,
                 blend: str = "gaussian", tta: bool = False, batch: int | None = None,
                 network: nn.Module | None = None):
        if not 0.0 <= overlap < 0.9:
            raise ParameterError(f"overlap must be in 0 .. 0.9, got {overlap}")
        if tile < 8:
            raise ParameterError(f"tile must be at least 8 voxels, got {tile}")
        self.model = model
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.cuda = self.device.type == "cuda"
        if network is None:
            network = _fuse_batchnorm(model.network(self.device))
        self.net = network
        self.ndim = 3 if model.input == "3d" else 2
        self.multiple = getattr(network, "size_multiple", 1)
        if self.ndim == 3:  # 3-D activations are big: at most 64 deep and 128 across
            self.tile = _round_up(min(tile, 128), self.multiple)
            self.tile_z = _round_up(min(tile, 64), self.multiple)
        else:
            self.tile = _round_up(tile, self.multiple)
            self.tile_z = 1
        self.overlap = overlap
        self.blend = blend
        self.tta = tta
        self.memory_format = torch.channels_last if self.ndim == 2 else torch.channels_last_3d
        self.net = self.net.to(memory_format=self.memory_format)
        self.batch = batch or self._default_batch()
        self.amp_dtype = None
        if self.cuda:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.halo = model.context // 2 if model.input == "2.5d" else (self.tile_z // 4 if self.ndim == 3 else 0)

    def _default_batch(self) -> int:
        voxels = self.tile ** 2 * (self.tile_z if self.ndim == 3 else 1)
        if self.cuda:
            free, _ = torch.cuda.mem_get_info(self.device)
            width = int(self.model.hparams.get("base", 16))
            per_voxel = width * 4 * 24  # bytes of live activations per voxel, measured loosely, with margin
            return int(max(1, min(64, free * 0.5 // (voxels * per_voxel))))
        return int(max(1, min(16, 2 ** 20 // voxels)))

    # -- network over a batch ------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                                                    enabled=self.amp_dtype is not None):
            if not self.tta:
                return torch.softmax(self.net(x).float(), dim=1)
            dims = (x.ndim - 2, x.ndim - 1)
            acc = None
            for flip in ((), (dims[1],), (dims[0],), dims):
                xi = torch.flip(x, flip) if flip else x
                p = torch.softmax(self.net(xi).float(), dim=1)
                p = torch.flip(p, flip) if flip else p
                acc = p if acc is None else acc + p
            return acc / 4.0

    def _run(self, x: torch.Tensor) -> np.ndarray:
        """Probabilities for a batch of tiles, splitting the batch on GPU out-of-memory."""
        while True:
            try:
                outs = [self._forward(x[i:i + self.batch]) for i in range(0, len(x), self.batch)]
                return torch.cat(outs).cpu().numpy()
            except torch.cuda.OutOfMemoryError:
                if self.batch == 1:
                    raise DamselflyError("the GPU ran out of memory even for one tile; use a smaller "
                                         "tile or device='cpu'") from None
                torch.cuda.empty_cache()
                self.batch = max(1, self.batch // 2)

    # -- sliding window over items (C, *spatial) ---------------------------------------------------
    def predict_items(self, items: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities (n, K, *spatial) for inputs (n, C, *spatial); tiles wholly outside
        ``masks`` (n, *spatial) are skipped and left at zero."""
        n, c = items.shape[:2]
        spatial = items.shape[2:]
        k = len(self.model.config["classes"])
        tiles = [self.tile_z, self.tile, self.tile][-len(spatial):]
        # axes shorter than a tile are padded to the network's size step and get one tile
        padded = [s if s >= t else _round_up(s, self.multiple) for s, t in zip(spatial, tiles)]
        tiles = [min(t, p) for t, p in zip(tiles, padded)]
        pad = [(0, p - s) for p, s in zip(padded, spatial)]
        if any(p[1] for p in pad):
            mode = "reflect" if all(s > p[1] for s, p in zip(spatial, pad)) else "symmetric"
            items = np.pad(items, [(0, 0), (0, 0)] + pad, mode=mode)
            if masks is not None:
                masks = np.pad(masks, [(0, 0)] + pad, mode="constant")
        acc = np.zeros((n, k) + tuple(padded), dtype=np.float32)
        wsum = np.zeros((n,) + tuple(padded), dtype=np.float32)
        w = window(tiles, self.blend)
        grid = np.stack(np.meshgrid(*[tile_starts(p, t, self.overlap) for p, t in zip(padded, tiles)],
                                    indexing="ij"), -1).reshape(-1, len(tiles))
        jobs = []
        for i in range(n):
            for start in grid:
                sl = tuple(slice(int(s), int(s) + t) for s, t in zip(start, tiles))
                if masks is not None and not masks[(i,) + sl].any():
                    continue
                jobs.append((i, sl))
        chunk = max(self.batch, 1) * 4
        for j in range(0, len(jobs), chunk):
            part = jobs[j:j + chunk]
            x = torch.from_numpy(np.stack([items[(i, slice(None)) + sl] for i, sl in part]))
            probs = self._run(x)
            for (i, sl), p in zip(part, probs):
                acc[(i, slice(None)) + sl] += p * w
                wsum[(i,) + sl] += w
            progress.check()
        np.divide(acc, np.maximum(wsum, 1e-12)[:, None], out=acc)
        crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)
        return acc[crop]

    # -- slabs of a volume ----------------------------------------------------------------------------
    def predict_slab(self, arrays: Sequence[np.ndarray], z0: int, z1: int,
                     mask: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (K, z1 - z0, y, x) for slices ``z0..z1`` of the input volumes."""
        h = self.halo
        z = np.arange(z0 - h, z1 + h)
        slab = read_slices(arrays, z, self.model.normalization)
        if self.model.input == "3d":
            m = None
            if mask is not None:
                m = np.asarray(mask[reflect_index(z, mask.shape[0])], dtype=bool)[None]
            probs = self.predict_items(slab[None], m)[0]
            return probs[:, h:h + (z1 - z0)]
        items = stack_context(slab, self.model.context) if self.model.input == "2.5d" else slab.transpose(1, 0, 2, 3)
        m = np.asarray(mask[z0:z1], dtype=bool) if mask is not None else None
        return self.predict_items(np.ascontiguousarray(items), m).transpose(1, 0, 2, 3)


def check_inputs(model: Model, images: Sequence[Volume]) -> None:
    """The inputs a model needs: as many volumes as it was trained with, 3-D, of one geometry."""
    if len(images) != model.n_inputs:
        raise ParameterError(f"model '{model.name}' takes {model.n_inputs} input volume(s), got {len(images)}")
    for im in images:
        if im.data.ndim != 3:
            raise InputError(f"expected a 3-D scalar volume, got shape {im.data.shape}", im.source)
    for im in images[1:]:
        images[0].check_same_geometry(im)


def slab_size(pred: Predictor, shape: Sequence[int], budget: int = 256 * 2 ** 20) -> int:
    """Slices per slab so that one slab's floats stay within ``budget`` bytes."""
    k = len(pred.model.config["classes"])
    per_slice = shape[1] * shape[2] * 4 * (k * 2 + pred.model.in_channels + 1)
    n = max(1, int(budget // per_slice))
    if pred.ndim == 3:
        n = max(n, 2 * pred.tile_z)
    return min(n, shape[0])


def stream(pred: Predictor, images: Sequence[Volume], mask: np.ndarray | None = None,
           message: str = "Segmenting") -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(z0, z1, probabilities)`` slab by slab, with progress and cancellation."""
    arrays = [im.data for im in images]
    shape = arrays[0].shape
    step = slab_size(pred, shape)
    task = progress.task(message, total=shape[0])
    for z0 in range(0, shape[0], step):
        z1 = min(shape[0], z0 + step)
        m = None if mask is None else mask
        if m is not None and not np.asarray(m[z0:z1]).any():
            yield z0, z1, None
        else:
            yield z0, z1, pred.predict_slab(arrays, z0, z1, m)
        task.advance(z1 - z0)
    task.finish()


def segment(model: Model, images: Sequence[Volume], out: np.ndarray, mask: np.ndarray | None = None,
            outside: int = 1, on_slab: Callable | None = None, **options) -> np.ndarray:
    """Write the most probable class (1..K) of every voxel into ``out``; outside ``mask``: ``outside``."""
    check_inputs(model, images)
    pred = Predictor(model, **options)
    for z0, z1, probs in stream(pred, images, mask):
        if probs is None:
            out[z0:z1] = outside
            continue
        lab = (np.argmax(probs, axis=0) + 1).astype(out.dtype)
        if mask is not None:
            lab[~np.asarray(mask[z0:z1], dtype=bool)] = outside
        out[z0:z1] = lab
    return out


def probabilities(model: Model, images: Sequence[Volume], out: np.ndarray, index: int | None = None,
                  mask: np.ndarray | None = None, **options) -> np.ndarray:
    """Write class probabilities into ``out``: (z, y, x, K), or (z, y, x) for class ``index`` (1..K)."""
    check_inputs(model, images)
    pred = Predictor(model, **options)
    for z0, z1, probs in stream(pred, images, mask, "Computing probabilities"):
        if probs is None:
            out[z0:z1] = 0
            continue
        if mask is not None:
            probs = probs * np.asarray(mask[z0:z1], dtype=bool)[None]
        out[z0:z1] = probs[index - 1] if index is not None else np.moveaxis(probs, 0, -1)
    return out


def model_inputs(model: Model, volumes: Sequence[Volume], shown: Volume | None = None) -> list[Volume]:
    """The volumes to feed ``model``, matched by the names it was trained on (its ``inputs``); a one-input
    model takes ``shown`` when no name matches. Raises a :class:`ParameterError` naming what is missing."""
    names = [i.get("name") for i in model.config["inputs"]]
    by_name = {v.name: v for v in volumes}
    found = [by_name.get(n) for n in names]
    if len(names) == 1 and found[0] is None and shown is not None:
        return [shown]
    missing = [n for n, v in zip(names, found) if v is None]
    if missing:
        raise ParameterError(f"model '{model.name}' takes {len(names)} input volumes ({', '.join(map(str, names))}); "
                             f"none is loaded under the name(s) {', '.join(map(str, missing))}")
    return found


def predict_slice(model: Model, images: Sequence[Volume], z: int, device: str = "auto", tile: int = 512) -> np.ndarray:
    """The most probable class (1..K) of every voxel of slice ``z`` (axis 0), as ``infer`` gives it for
    the whole volume (the same tiles, context and normalisation), for segment-and-correct in the app.

    Examples
    --------
    >>> lab2d = predict_slice(model, [cal], z=40, device="cpu")   # doctest: +SKIP
    """
    check_inputs(model, images)
    if not 0 <= z < images[0].shape[0]:
        raise ParameterError(f"slice {z} is outside 0..{images[0].shape[0] - 1}")
    task = progress.task(f"Predicting slice {z}", total=1)
    probs = Predictor(model, device=device, tile=tile).predict_slab([im.data for im in images], z, z + 1)
    task.finish()
    return (np.argmax(probs, axis=0)[0] + 1).astype(np.uint8 if probs.shape[0] < 255 else np.uint16)


def labels_like(model: Model, image: Volume, data: np.ndarray) -> Labels:
    """A :class:`Labels` on ``image``'s grid with the model's classes."""
    return image.as_labels(data, model.classes, name=f"{image.name}_seg" if image.name else "seg",
                           metadata={"model": model.name, "model_sha256": model.hash})
