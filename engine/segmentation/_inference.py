"""Applying a trained segmentation model to whole volumes, streamed in slabs.

The volume is read slab by slab along z (so memory-mapped inputs larger than RAM work: only one slab
and its halo are in memory); each slice (2d / 2.5d) or slab (3d) goes through
:func:`damselfly.engine.segmentation._tiling.sliding_window` with the model's network as a
:class:`~damselfly.engine.segmentation._tiling.NetworkPredictor`. The same code serves training previews, ``infer``,
``infer_probabilities`` and predicting one slice in the app.

On CUDA the batch size is picked from free GPU memory (and halved on out-of-memory by the predictor).
On the CPU the network runs in float32, channels-last, with batch norm folded into the convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core import progress
from ..core._blocks import run_blocks, runner_for, span
from ..core._device import resolve_device
from ..core.data import Labels, Volume
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import whole_chunks
from ._model import Model
from ._slab_labels import applies, label_slabs, slab_labels, slab_probabilities
from ._tiling import NetworkPredictor, read_slices, reflect_index, round_up, sliding_window, stack_context


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

    # -- sliding window over items (C, *spatial) ---------------------------------------------------
    def predict_items(self, items: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities (n, K, *spatial) for inputs (n, C, *spatial); tiles wholly outside
        ``masks`` (n, *spatial) are skipped and left at zero (:func:`~damselfly.engine.segmentation._tiling.sliding_window`)."""
        spatial = items.shape[2:]
        tiles = [self.tile_z, self.tile, self.tile][-len(spatial):]
        return sliding_window(items, self.run, tiles, self.overlap, self.blend, self.run.batch * 4, masks,
                              self.multiple, out_channels=len(self.model.config["classes"]))

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


def slab_size(pred: Predictor, shape: Sequence[int], budget: int = 256 * 2 ** 20) -> int:
    """Slices per slab so that one slab's floats stay within ``budget`` bytes: a multiple of the scratch
    output's chunk depth (``volume_ops.SLAB``) where that fits, else a divisor of it."""
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


def _predict_block(job: _Job, zs: tuple[int, int]) -> None:
    """Predict the slabs of ``zs`` (``(z0, z1)``, whole slabs) and write them into ``job.out``."""
    pred, mask, out = job.pred, job.mask, job.out
    if job.outside is not None and mask is None and applies(pred, job.arrays[0].shape):
        label_slabs(pred, job.arrays, out, [(z, min(zs[1], z + job.step)) for z in range(zs[0], zs[1], job.step)])
        return
    for z0 in range(zs[0], zs[1], job.step):
        z1 = min(zs[1], z0 + job.step)
        m = None if mask is None else np.asarray(mask[z0:z1], dtype=bool)
        if m is not None and not m.any():
            out[z0:z1] = job.outside if job.outside is not None else 0
            continue
        if job.outside is not None:
            lab = slab_labels(pred, job.arrays, z0, z1, out.dtype)  # a slice in one tile: straight from the net
            if lab is None:
                lab = (np.argmax(pred.predict_slab(job.arrays, z0, z1, mask), axis=0) + 1).astype(out.dtype)
            if m is not None:
                lab[~m] = job.outside
            out[z0:z1] = lab
            continue
        probs = slab_probabilities(pred, job.arrays, z0, z1)  # (z, y, x, K) where a slice is one tile
        if probs is None:
            probs = np.moveaxis(pred.predict_slab(job.arrays, z0, z1, mask), 0, -1)
        if job.index == 0:  # uncertainty: the entropy of the class probabilities, 0 (sure) .. 1 (uniform)
            p = np.clip(probs, 1e-12, 1.0)
            probs = (-(p * np.log(p)).sum(axis=-1) / np.log(max(2, p.shape[-1])))[..., None]
            job_index = 1
        else:
            job_index = job.index
        if m is not None:
            probs = probs * m[..., None]
        out[z0:z1] = probs[..., job_index - 1] if job_index is not None else probs


def _run(model: Model, images: Sequence[Volume], out, mask, outside, index, options: dict, message: str):
    """Predict every slab of ``images`` into ``out``: here, or through the run's block runner
    (:mod:`~damselfly.engine.core._blocks`) when the inputs and ``out`` are where its workers can read them."""
    check_inputs(model, images)
    model = for_scans(model, images)
    job = _Job(model, options, [im.data for im in images], out, mask, outside, index)
    # a zoo model's TorchScript does not pickle: its slabs run here rather than on a cluster's workers
    runner = runner_for(*job.arrays, out, mask) if model.module is None else None
    job.step = job.pred.slab_depth(job.arrays[0].shape)
    ranges = slabs(job.arrays[0].shape[0], job.step, out.chunks[0] if runner is not None else None)
    run_blocks(runner, _predict_block, ranges, job, message, size=span)
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
