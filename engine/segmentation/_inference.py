"""Applying a trained segmentation model to whole volumes, streamed in slabs.

The volume is read slab by slab along z (so memory-mapped inputs larger than RAM work: only one slab
and its halo are in memory) through the device pipeline of
:func:`~damselfly.engine.segmentation._streaming.stream`: the next slab is read as stored and moved to the device
while this one computes there, and the labels of the one before are written. On the device
(:meth:`Predictor.slab_tensor`) each slab is normalised, each slice (2d / 2.5d, the context a view of
the slab) or the slab (3d) goes through :func:`~damselfly.engine.segmentation._tiling.sliding_window` with the
model's network as a :class:`~damselfly.engine.segmentation._tiling.NetworkPredictor`, and the probabilities become
labels, one class's probability or their entropy (:func:`_compute`) before anything leaves the device.
The same code serves training previews, ``infer``, ``infer_probabilities``, ``uncertainty`` and
predicting one slice in the app; on the CPU, labels of slices that are one tile take the compiled
passes of :mod:`~damselfly.engine.segmentation._slab_labels`.

On CUDA the batch size is picked from free GPU memory (and halved on out-of-memory by the predictor).
On the CPU the network runs in float32, channels-last, with batch norm folded into the convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core import progress
from ..core._blocks import run_blocks, runner_for, span
from ..core._device import resolve_device, to_device
from ..core.data import Labels, Volume
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import whole_chunks
from ._model import Model
from ._slab_labels import applies, label_slabs
from ._streaming import Staging, as_float, for_device, stream
from ._tiling import NetworkPredictor, norm_scale, reflect_index, round_up, sliding_window


# ------------------------------------------------------------------------------------------------
# pieces shared with training
# ------------------------------------------------------------------------------------------------
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
            raise ParameterError(f"overlap must be in 0 .. 0.9, got {overlap}")  # before building anything
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
            self.tile = round_up(min(tile, 128), self.multiple)
            self.tile_z = round_up(min(tile, 64), self.multiple)
        else:
            self.tile = round_up(tile, self.multiple)
            self.tile_z = 1
        self.overlap = overlap
        self.blend = blend
        self.net = self.net.to(memory_format=torch.channels_last if self.ndim == 2 else torch.channels_last_3d)
        self.run = NetworkPredictor(self.net, self.device, "softmax", tta, batch or self._default_batch())
        self.halo = model.context // 2 if model.input == "2.5d" else (self.tile_z // 4 if self.ndim == 3 else 0)
        self.norm = [norm_scale(low, high) for low, high in model.normalization]

    def _default_batch(self) -> int:
        voxels = self.tile ** 2 * (self.tile_z if self.ndim == 3 else 1)
        if self.cuda:
            free, _ = torch.cuda.mem_get_info(self.device)
            width = int(self.model.hparams.get("base", 16))
            per_voxel = width * 4 * 24  # bytes of live activations per voxel, measured loosely, with margin
            return int(max(1, min(64, free * 0.5 // (voxels * per_voxel))))
        return int(max(1, min(16, 2 ** 20 // voxels)))

    def slab_depth(self, shape: Sequence[int]) -> int:
        """Slices per slab when streaming a volume of ``shape`` (:func:`slab_size`)."""
        return slab_size(self, shape)

    # -- slabs of a volume, on the device -------------------------------------------------------------
    def slab_tensor(self, planes: Sequence[torch.Tensor], rows: np.ndarray, stored: Sequence,
                    mask: np.ndarray | None = None) -> torch.Tensor:
        """Probabilities (K, nz, y, x), on the device, of the slices whose planes ``planes`` hold (one
        tensor per input as :meth:`Staging.upload <damselfly.engine.segmentation._streaming.Staging.upload>`
        moved them, of NumPy type ``stored``); ``rows``: the plane of each slice and its context
        (:func:`needed_planes`). Normalising, the 2.5-D context (a view of the slab, not a copy for one
        input), tiles, flips, blending all run on the device; ``mask`` (the slices', with the halo's
        for 3-D networks; host memory) skips tiles wholly outside it."""
        idx = to_device(rows, self.device)
        slab = torch.stack([(as_float(p, dt).index_select(0, idx) - float(low)) * float(scale)
                            for p, dt, (low, scale) in zip(planes, stored, self.norm)])  # (inputs, zz, y, x)
        h, nz = self.halo, len(rows) - 2 * self.halo
        tiles = [self.tile_z, self.tile, self.tile]
        k = len(self.model.config["classes"])
        if self.model.input == "3d":
            m = None if mask is None else mask[None]
            probs = sliding_window(slab[None], self.run, tiles, self.overlap, self.blend, self.run.batch * 4, m,
                                   self.multiple, out_channels=k)[0]
            return probs[:, h:h + nz]
        if self.model.input == "2.5d":
            c = self.model.context
            items = slab.unfold(1, c, 1).permute(1, 0, 4, 2, 3).reshape(nz, -1, *slab.shape[2:])
        else:
            items = slab.transpose(0, 1)
        probs = sliding_window(items, self.run, tiles[1:], self.overlap, self.blend, self.run.batch * 4, mask,
                               self.multiple, out_channels=k)
        return probs.transpose(0, 1)

    def predict_slab(self, arrays: Sequence[np.ndarray], z0: int, z1: int,
                     mask: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (K, z1 - z0, y, x) for slices ``z0..z1`` of the input volumes, as NumPy (through
        :meth:`slab_tensor`; previews and single slices)."""
        lo, hi, rows = needed_planes(self, arrays[0].shape, z0, z1)
        m = None if mask is None else slab_mask(self, mask, z0, z1)
        with Staging(self.device) as st:
            probs = self.slab_tensor(st.upload([a[lo:hi] for a in arrays]), rows, [a.dtype for a in arrays], m)
            return probs.cpu().numpy()


def needed_planes(pred, shape: Sequence[int], z0: int, z1: int) -> tuple[int, int, np.ndarray]:
    """The planes ``lo..hi`` that slices ``z0..z1`` and their context (mirrored at the ends: the
    predictor's ``halo``) need from a volume of ``shape``, and each needed slice's row in them."""
    zi = reflect_index(np.arange(z0 - pred.halo, z1 + pred.halo), int(shape[0]))
    lo, hi = int(zi.min()), int(zi.max()) + 1
    return lo, hi, (zi - lo).astype(np.int64)


def slab_mask(pred: Predictor, mask, z0: int, z1: int) -> np.ndarray:
    """The part of ``mask`` that :meth:`Predictor.slab_tensor` takes for slices ``z0..z1``: theirs, and
    for a 3-D network, whose tiles see the halo, the halo's too (mirrored at the ends)."""
    if pred.ndim != 3:
        return np.asarray(mask[z0:z1], dtype=bool)
    lo, _, rows = needed_planes(pred, mask.shape, z0, z1)
    return np.asarray(mask[rows + lo], dtype=bool)


#: The largest tile edge chosen on the CPU (larger tiles save little and need much memory there).
CPU_TILE = 1024


def auto_tile(model: Model, shape: Sequence[int], device: str = "auto") -> int:
    """A tile edge for ``infer`` from the slice size and the device's memory: the whole slice in one tile
    when it fits (no work wasted on overlaps), else the largest edge whose activations take at most half
    the free GPU memory (on the CPU at most :data:`CPU_TILE`).

    Examples
    --------
    >>> auto_tile(model, (64, 1024, 1024), "cpu")   # doctest: +SKIP
    1024
    """
    side = max(int(shape[1]), int(shape[2]))
    if model.is_forest:
        from ._classifier import TILE

        return min(side, TILE)
    if model.input == "3d":
        return min(side, 128)
    dev = resolve_device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        per_voxel = int(model.hparams.get("base", 16)) * 4 * 24  # bytes of activations, with margin
        cap = int(math.sqrt(free * 0.5 / per_voxel))
    else:
        cap = CPU_TILE
    return max(64, min(side, cap))


def predictor(model: Model, **options):
    """The predictor for ``model``: :class:`Predictor` for a network, a
    :class:`~damselfly.engine.segmentation._classifier.ForestPredictor` for a forest (which runs on the CPU and ignores
    the network-only options)."""
    if model.is_forest:
        from ._classifier import TILE, ForestPredictor

        return ForestPredictor(model, tile=options.get("tile") or TILE)
    return Predictor(model, **options)


def for_scans(model: Model, images: Sequence[Volume]) -> Model:
    """``model`` with its normalisation for these scans: itself, unless it is a zoo model whose
    pre-processing is computed per scan (:func:`~damselfly.engine.segmentation._zoo.scan_normalization`)."""
    if not model.config.get("per_scan"):
        return model
    from ._zoo import scan_normalization

    inputs = [{"low": lo, "high": hi} for lo, hi in scan_normalization(model, images)]
    fixed = Model(dict(model.config, inputs=inputs, per_scan=None), model.state, model.name)
    fixed.module, fixed.metadata = model.module, model.metadata
    return fixed


def check_inputs(model: Model, images: Sequence[Volume]) -> None:
    """The inputs a model needs: as many volumes as it was trained with, 3-D, of one geometry."""
    if model.task != "segment":
        raise ParameterError(f"model '{model.name}' is a {model.task} model, not a segmentation: use enhance")
    if len(images) != model.n_inputs:
        raise ParameterError(f"model '{model.name}' takes {model.n_inputs} input volume(s), got {len(images)}")
    for im in images:
        if im.data.ndim != 3:
            raise InputError(f"expected a 3-D scalar volume, got shape {im.data.shape}", im.source)
    for im in images[1:]:
        images[0].check_same_geometry(im)


#: A slab's floats on the CPU, and at most on a GPU (where an eighth of the free memory is the bound).
CPU_SLAB_BYTES, GPU_SLAB_BYTES = 256 * 2 ** 20, 2 * 2 ** 30


def slab_size(pred: Predictor, shape: Sequence[int], budget: int | None = None) -> int:
    """Slices per slab so that one slab's floats stay within ``budget`` bytes (by default
    :data:`CPU_SLAB_BYTES`, or on a GPU an eighth of its free memory up to :data:`GPU_SLAB_BYTES`: the
    slab bounds how many slices a forward pass takes at once): a multiple of the scratch output's chunk
    depth (``volume_ops.SLAB``) where that fits, else a divisor of it."""
    if budget is None:
        budget = CPU_SLAB_BYTES
        if pred.cuda:
            budget = int(min(GPU_SLAB_BYTES, torch.cuda.mem_get_info(pred.device)[0] // 8))
    k = len(pred.model.config["classes"])
    per_slice = shape[1] * shape[2] * 4 * (k * 2 + pred.model.in_channels + 1)
    n = max(1, int(budget // per_slice))
    if pred.ndim == 3:
        n = max(n, 2 * pred.tile_z)
    return min(whole_chunks(n), shape[0])


def slabs(n: int, step: int, chunk: int | None = None) -> list[tuple[int, int]]:
    """The z ranges of ``n`` slices predicted in slabs of ``step``; with ``chunk`` (the output's chunk
    depth, for blocks run elsewhere), consecutive slabs are grouped so that every group starts on a chunk
    edge (each output chunk is then written by one group). The slabs themselves do not change, so
    neither do the predictions.

    Examples
    --------
    >>> slabs(40, 10, chunk=16)   # slab edges 0, 10, 20, 30; chunk edges 0, 16, 32: groups from 0 only
    [(0, 40)]
    >>> slabs(40, 8, chunk=16)
    [(0, 16), (16, 32), (32, 40)]
    """
    edges = list(range(0, n, step))
    if chunk is not None:
        edges = [e for e in edges if e % chunk == 0]
    edges.append(n)
    return list(zip(edges[:-1], edges[1:]))


@dataclass
class _Job:
    """What every slab group of one ``segment`` or ``probabilities`` run needs: picklable (the
    predictor is built where the job runs, once per process)."""

    model: Model
    options: dict
    arrays: list
    out: Any
    mask: Any
    outside: int | None  # labels: the class outside the mask; None: probabilities
    index: int | None  # probabilities of one class (1..K), None for all, 0 for their entropy
    step: int = 0  # slices per slab (:meth:`Predictor.slab_depth`), the same wherever the job runs
    _pred: Any = field(default=None, repr=False)

    def __getstate__(self):
        return {**self.__dict__, "_pred": None}

    @property
    def pred(self):
        if self._pred is None:
            self._pred = predictor(self.model, **self.options)
        return self._pred


def _predict_block(job: _Job, zs: tuple[int, int], advance=None) -> None:
    """Predict the slabs of ``zs`` (``(z0, z1)``, whole slabs) and write them into ``job.out``, streamed
    (:func:`~damselfly.engine.segmentation._streaming.stream`): the next slab is read and moved to the device while
    this one computes there, and the one before is written; ``advance(slices)`` after each slab."""
    pred, shape = job.pred, job.arrays[0].shape
    ranges = [(z, min(zs[1], z + job.step)) for z in range(zs[0], zs[1], job.step)]
    device = getattr(pred, "device", torch.device("cpu"))
    if job.outside is not None and job.mask is None and device.type == "cpu" and applies(pred, shape):
        label_slabs(pred, job.arrays, job.out, ranges, advance)  # a slice in one tile on the CPU: compiled passes
        return
    dtype, host = for_device(job.out.dtype)
    with Staging(device) as staging:
        stream(ranges, partial(_read, job, staging), partial(_compute, job, dtype), partial(_write, job, host), staging,
               advance)


def _read(job: _Job, staging: Staging, z0: int, z1: int):
    """The read thread's part: the slab's mask, and its planes on the device (none where the mask is empty;
    a forest reads for itself)."""
    pred, net = job.pred, isinstance(job.pred, Predictor)
    m = None if job.mask is None else slab_mask(pred, job.mask, z0, z1) if net else \
        np.asarray(job.mask[z0:z1], dtype=bool)  # read once: for 3-D tiles with the halo's mask
    own = m if m is None or not net or pred.ndim != 3 else m[pred.halo:pred.halo + z1 - z0]
    if (own is not None and not own.any()) or not net:
        return None, None, own
    lo, hi, rows = needed_planes(pred, job.arrays[0].shape, z0, z1)
    return staging.upload([a[lo:hi] for a in job.arrays]), rows, m


def _compute(job: _Job, dtype: torch.dtype, got, z0: int, z1: int):
    """Labels (z, y, x), probabilities (z, y, x[, K]) or their entropy for one slab, on the device."""
    planes, rows, m = got
    pred = job.pred
    if m is not None and not m.any():
        return np.full((z1 - z0, *job.out.shape[1:]), job.outside if job.outside is not None else 0, job.out.dtype)
    if planes is None:  # a forest, on the CPU
        probs = torch.from_numpy(pred.predict_slab(job.arrays, z0, z1, job.mask))
    else:
        probs = pred.slab_tensor(planes, rows, [a.dtype for a in job.arrays], m)
        if m is not None and pred.ndim == 3:
            m = m[pred.halo:pred.halo + z1 - z0]
    inside = None if m is None else to_device(m, probs.device)
    if job.outside is not None:
        lab = first_max(probs) + 1
        if inside is not None:  # not lab[~inside] = ...: a boolean index waits for the GPU
            lab = torch.where(inside, lab, job.outside)
        return lab.to(dtype)
    p = probs.permute(1, 2, 3, 0)  # (z, y, x, K)
    index = job.index
    if index == 0:  # uncertainty: the entropy of the class probabilities, 0 (sure) .. 1 (uniform)
        q = p.clamp(1e-12, 1.0)
        p, index = (-(q * q.log()).sum(-1) / math.log(max(2, q.shape[-1])))[..., None], 1
    if inside is not None:
        p = p * inside[..., None]
    return (p[..., index - 1] if index is not None else p).contiguous().to(dtype)


def first_max(probs: torch.Tensor) -> torch.Tensor:
    """The index of the largest of ``probs`` (K, ...) along its first axis, the first of equal ones (as
    ``numpy.argmax``): for a few classes one pass per class, as PyTorch's ``argmax`` across a strided axis
    is slow on the CPU (about 190 ns a voxel, against 1 ns a comparison)."""
    if probs.shape[0] > 16:
        return torch.movedim(probs, 0, -1).contiguous().argmax(-1)
    best, arg = probs[0], torch.zeros(probs.shape[1:], dtype=torch.int64, device=probs.device)
    for c in range(1, probs.shape[0]):
        better = probs[c] > best
        arg = torch.where(better, c, arg)
        best = torch.maximum(best, probs[c])
    return arg


def _write(job: _Job, host: np.dtype, result: np.ndarray, z0: int, z1: int) -> None:
    job.out[z0:z1] = result.view(host) if result.dtype != host and result.dtype.itemsize == host.itemsize else result


def _run(model: Model, images: Sequence[Volume], out, mask, outside, index, options: dict, message: str):
    """Predict every slab of ``images`` into ``out``: here, or through the run's block runner
    (:mod:`~damselfly.engine.core._blocks`) when the inputs and ``out`` are where its workers can read them."""
    check_inputs(model, images)
    model = for_scans(model, images)
    job = _Job(model, options, [im.data for im in images], out, mask, outside, index)
    # a zoo model's TorchScript does not pickle: its slabs run here rather than on a cluster's workers
    runner = runner_for(*job.arrays, out, mask) if model.module is None else None
    job.step = job.pred.slab_depth(job.arrays[0].shape)
    n = job.arrays[0].shape[0]
    if runner is None:  # here: one stream over every slab, so that reads, work and writes overlap
        task = progress.task(message, total=n)
        _predict_block(job, (0, n), task.advance)
        task.finish()
        return out
    run_blocks(runner, _predict_block, slabs(n, job.step, out.chunks[0]), job, message, size=span)
    return out


def segment(model: Model, images: Sequence[Volume], out: np.ndarray, mask: np.ndarray | None = None,
            outside: int = 1, **options) -> np.ndarray:
    """Write the most probable class (1..K) of every voxel into ``out``; outside ``mask``: ``outside``.
    ``options`` are :class:`Predictor`'s; where the slabs run: :func:`_run`."""
    return _run(model, images, out, mask, outside, None, options, "Segmenting")


def probabilities(model: Model, images: Sequence[Volume], out: np.ndarray, index: int | None = None,
                  mask: np.ndarray | None = None, **options) -> np.ndarray:
    """Write class probabilities into ``out``: (z, y, x, K), or (z, y, x) for class ``index`` (1..K)."""
    return _run(model, images, out, mask, None, index, options, "Computing probabilities")


def uncertainty(model: Model, images: Sequence[Volume], out: np.ndarray, mask: np.ndarray | None = None,
                **options) -> np.ndarray:
    """Write the entropy of the class probabilities into ``out`` (z, y, x), divided by its largest value
    (log K): 0 where the model is sure, 1 where every class is as likely. Where it is high is where to
    paint next."""
    return _run(model, images, out, mask, None, 0, options, "Computing uncertainty")


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
    model = for_scans(model, images)
    if not 0 <= z < images[0].shape[0]:
        raise ParameterError(f"slice {z} is outside 0..{images[0].shape[0] - 1}")
    task = progress.task(f"Predicting slice {z}", total=1)
    probs = predictor(model, device=device, tile=tile).predict_slab([im.data for im in images], z, z + 1)
    task.finish()
    return (np.argmax(probs, axis=0)[0] + 1).astype(np.uint8 if probs.shape[0] < 255 else np.uint16)


def labels_like(model: Model, image: Volume, data: np.ndarray) -> Labels:
    """A :class:`Labels` on ``image``'s grid with the model's classes."""
    return image.as_labels(data, model.classes, name=f"{image.name}_seg" if image.name else "seg",
                           metadata={"model": model.name, "model_sha256": model.hash})
