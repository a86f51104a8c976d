"""Deep-learning enhancement: self-supervised denoising and paired restoration, and applying them.

- **Denoising** (``task="denoise"``), the Noise2Void scheme of Krull et al. 2019: trained on the noisy
  scan alone. In every patch a few pixels of the centre slice (one per 8 x 8 cell) are replaced by a
  random neighbour (within 2 pixels); the network is scored only there, against the values it could
  not see. Noise independent from pixel to pixel cannot be predicted from the neighbours, the signal
  can, so the network learns the signal. With 2.5-D input the neighbouring slices are seen too (their
  noise is independent of the centre's).
- **Restoration** (``task="restore"``), the CARE scheme of Weigert et al. 2018: trained on registered
  pairs, a fast/noisy or coarse source and a slow/clean or fine target. A coarse source is first
  up-sampled to the target's grid by cubic convolution (:mod:`~damselfly.engine.restoration._resample`, integer
  factors per axis, z included); the network learns the correction (residual; its last layer starts
  at zero, so training starts from the up-sampled source), scored by the mean squared error.
- The networks are the U-Nets of segmentation with one output channel: 2-D (2-D or 2.5-D inputs) or
  3-D (``input="3d"``: blocks of half the patch edge, blind spots plane by plane).
- :func:`enhance` applies either kind to a whole volume slab by slab through the same tiled, blended
  sliding window as ``infer``, writing float32 on the target grid (the up-sampled spacing).

Training is deterministic on the CPU for a seed; Stop keeps the best epoch (lowest validation loss).
The model is the moving average of the weights over the steps (``Schedule.average``): at the learning
rate that trains a blind-spot network fastest, the weights of single epochs give denoisers that swing by
several dB from one epoch to the next (16-31 dB late in training on a phantom), which the validation
loss cannot tell apart; their average does not swing.

Examples
--------
>>> model = train("denoise", [noisy], [noisy], schedule=replace(DEFAULT_SCHEDULE, epochs=5), device="cpu")  # doctest: +SKIP
>>> clean = enhance(model, noisy, np.empty(noisy.shape, np.float32), device="cpu")          # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..core import progress
from ..core._device import to_device
from ..core._provenance import versions
from ..core.data import Volume
from ..core.errors import InputError, ParameterError
from ..segmentation import _nets as nets
from ..segmentation import _training
from ..segmentation._model import Model
from ..segmentation._streaming import Staging, as_float, stream
from ..segmentation._tiling import NetworkPredictor, norm_scale, reflect_index, sliding_window
from ..segmentation._training import Ahead, Schedule, deterministic, fit_epochs
from ..segmentation._trainset import data_hash, norm_range
from ._resample import upsample_slices
from ._samples import Pairs, batch, blind_spot, draw, pairs

TASKS = ("denoise", "restore")


#: The enhancement trainers' defaults: longer than segmentation's, a higher learning rate, and the
#: moving average of the weights (decay 0.99 a step) as the model: at this learning rate the weights of
#: single epochs swing by several dB. The averaged validation loss flattens while the learning rate is
#: still high; patience 30 lets the cosine decay finish (patience 15 stopped a phantom's denoiser at
#: epoch 46, 0.8 dB short of running all 60).
DEFAULT_SCHEDULE = Schedule(epochs=60, lr=2e-3, patience=30, average=0.99)


# ------------------------------------------------------------------------------------------------
# training data
# ------------------------------------------------------------------------------------------------
def scale_between(source: Volume, target: Volume) -> tuple[int, int, int]:
    """The integer up-sampling per axis from ``source``'s grid to ``target``'s; their fields of view and
    spacings must agree."""
    s, t = source.shape, target.shape
    if len(s) != 3 or len(t) != 3:
        raise InputError(f"restoration pairs must be 3-D volumes, got shapes {s} and {t}", source.source)
    f = tuple(b // a if a and b % a == 0 else 0 for a, b in zip(s, t))
    if not all(f) or not all(1 <= v <= 8 for v in f):
        raise InputError(f"the target's shape {t} is not the source's {s} times whole factors 1..8 per axis",
                         target.source)
    if not np.allclose(np.array(source.spacing) / f, target.spacing, rtol=1e-3):
        raise InputError(f"the target's spacing {target.spacing} is not the source's {source.spacing} divided "
                         f"by {f}: not the same field of view", target.source)
    return f


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------
class _Objective:
    """The input, target and loss of one batch for a task."""

    def __init__(self, task: str, context: int, residual: bool):
        self.task, self.centre, self.residual = task, context // 2, residual

    def prepare(self, x: torch.Tensor, y: torch.Tensor, rng):
        """Input, target and the mask of scored voxels (blind spots) of a batch, on its device."""
        if self.task == "denoise":
            if x.ndim == 5:  # 3-D blocks (b, 1, z, y, x): blind spots plane by plane
                b, _, d, ny, nx = x.shape
                xm, m = blind_spot(x.transpose(1, 2).reshape(b * d, 1, ny, nx), rng, 0)
                return xm.reshape(b, d, 1, ny, nx).transpose(1, 2).contiguous(), y, m.reshape(b, d, ny, nx)[:, None]
            xm, m = blind_spot(x, rng, self.centre)
            return xm, y, m[:, None]
        return x, y, None

    def output(self, net, x):
        out = net(x).float()
        return out + x[:, self.centre:self.centre + 1] if self.residual else out

    def loss(self, out, y, m):
        err = (out - y) ** 2
        if m is None:
            return err.mean()
        if err.is_cuda:  # the same mean without asking the GPU where the mask is (a sync every step)
            return (err * m).sum() / m.sum().clamp(min=1)
        return err[m].mean()


def _fit(net, data: Pairs, obj: _Objective, sc: Schedule, context: int, dev, rng, preview_at, on_epoch):
    """Enhancement training: batches of the task's objective and its loss on held-out slices, through
    the shared loop (:func:`~damselfly.engine.segmentation._training.fit_epochs`). Returns ``(history, best, how it stopped)``."""
    net = net.to(dev)
    vrng = np.random.default_rng(sc.seed + 1)
    val = None
    if data.val:
        rows = draw(data, data.val, max(2 * sc.batch, 16), context, sc.patch, vrng, flip=False)
        val = obj.prepare(*batch(data, rows, context, sc.patch, dev), vrng)

    def make():  # drawn on the host, gathered and masked on the device
        rows = draw(data, data.train, sc.batch, context, sc.patch, rng, flip=True)
        return obj.prepare(*batch(data, rows, context, sc.patch, dev), rng)

    forward = _training.step_network(net)  # looked up when called: a benchmark may swap it

    def batch_loss() -> torch.Tensor:
        x, y, m = ahead()
        return obj.loss(obj.output(forward, x), y, m)

    with Ahead(make, dev) as ahead:
        return fit_epochs(sc, net, batch_loss, lambda m: {"val_loss": _validate(m, obj, val, dev)}, val is not None,
                          ("epoch", "loss", "val_loss", "lr", "seconds"), preview_at, on_epoch)


def _validate(net, obj: _Objective, val, dev) -> float:
    if val is None:
        return float("nan")
    net.eval()
    x, y, m = val
    with torch.no_grad():
        return float(obj.loss(obj.output(net, x.to(dev)), y.to(dev), None if m is None else m.to(dev)))


# ------------------------------------------------------------------------------------------------
# train
# ------------------------------------------------------------------------------------------------
def _check(task, sources, targets, input, context, sc: Schedule):
    if task not in TASKS:
        raise ParameterError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not sources or len(sources) != len(targets):
        raise ParameterError(f"restoration needs as many targets as sources, got {len(sources)} and {len(targets)}")
    if input not in ("2d", "2.5d", "3d"):
        raise ParameterError(f"input must be '2d', '2.5d' or '3d' for enhancement, got {input!r}")
    if input == "2.5d" and (context < 3 or context % 2 == 0):
        raise ParameterError(f"2.5d context must be an odd number of slices >= 3, got {context}")
    for name, v in (("epochs", sc.epochs), ("steps", sc.steps), ("batch", sc.batch), ("patience", sc.patience)):
        if v < 1:
            raise ParameterError(f"{name} must be at least 1, got {v}")
    if sc.patch < 16 or sc.patch % 8:
        raise ParameterError(f"patch must be a multiple of 8, at least 16, got {sc.patch}")
    if not 0.0 <= sc.validation < 1.0:
        raise ParameterError(f"validation must be a fraction in 0 .. 1, got {sc.validation}")
    if not 0.0 <= sc.average < 1.0:
        raise ParameterError(f"average must be a decay in 0 .. 1 (0 = off), got {sc.average}")
    for v in (*sources, *targets):
        if v.data.ndim != 3:
            raise InputError(f"expected a 3-D scalar volume, got shape {v.data.shape}", v.source)
    scales = {scale_between(s, t) for s, t in zip(sources, targets)}
    if len(scales) > 1:
        raise InputError(f"the pairs differ in up-sampling: {sorted(scales)}")
    return scales.pop()


def train(task: str, sources: Sequence[Volume], targets: Sequence[Volume], *, input: str = "2.5d",
          context: int = 5, hparams: dict | None = None, schedule: Schedule = DEFAULT_SCHEDULE,
          init: Model | None = None, preview: Sequence[int] | None = None, preview_dir: str | Path | None = None,
          device: str = "auto", on_epoch: Callable[[dict], None] | None = None, mask=None) -> Model:
    """Train a denoising (``targets`` = ``sources``) or restoration model; see the module docstring.

    ``mask`` (boolean slabs on the target's grid, e.g. a lazy view of a segmentation; one pair only):
    patches are centred inside it, so training learns the region that matters (the sample, not the air).

    ``preview`` is a box ``[z, y0, x0, z + 1, y1, x1]`` of the first source whose enhancement is saved
    beside the input as ``preview_dir/epoch_NNN.png`` after every epoch.
    """
    from ..core._device import resolve_device
    sc = schedule
    sources, targets = list(sources), list(targets)
    scale = _check(task, sources, targets, input, context, sc)
    if task == "denoise" and (any(t is not s for s, t in zip(sources, targets)) or scale != (1, 1, 1)):
        raise ParameterError("a denoiser learns from the noisy scan alone: its targets are its sources")
    context = context if input == "2.5d" else 1
    arch = "unet3d" if input == "3d" else "unet"
    if input == "3d":  # 3-D blocks are costly: half the edge (32 by default)
        sc = replace(sc, patch=max(16, sc.patch // 2 // 8 * 8))
    hp = dict(nets.DEFAULTS[arch], **(hparams or {}))
    if init is not None:
        _check_init(init, task, input, context, scale)
        hp = init.hparams
        norm_in, norm_out = init.normalization[0], init.output_range
    else:
        # one range for both: the residual's prior "target = source" then holds in normalised units too
        norm_in = norm_out = norm_range(sources[0])
    dev = resolve_device(device)
    rng = np.random.default_rng(sc.seed)
    if mask is not None and (len(targets) != 1 or tuple(mask.shape) != tuple(targets[0].shape)):
        raise ParameterError(f"a mask needs one volume (pair) and the target's shape {targets[0].shape}, got "
                             f"{len(targets)} and {tuple(mask.shape)}")
    data = pairs(sources, targets, scale, norm_in, norm_out, sc.validation, rng, mask)
    # a restoration model learns a correction of its input; one refined from a denoiser keeps its form
    residual = bool(init.config.get("residual")) if init is not None else task == "restore"
    config = {
        "arch": arch, "hparams": hp, "input": input, "context": context, "axis": "z", "task": task,
        "scale": list(scale), "residual": residual,
        "inputs": [{"name": sources[0].name, "low": norm_in[0], "high": norm_in[1],
                    "spacing": list(sources[0].spacing), "unit": sources[0].unit}],
        "output": {"low": norm_out[0], "high": norm_out[1]}, "classes": [],
    }
    t_start = time.perf_counter()
    with deterministic(sc.seed):
        net = nets.build(arch, context, 1, hp)
        if init is not None:
            net.load_state_dict(init.state)
        elif residual:  # start as the identity on the up-sampled source: training can only improve on it
            torch.nn.init.zeros_(net.head.weight)
            torch.nn.init.zeros_(net.head.bias)
        preview_at = None
        if preview is not None:
            preview_at = lambda net_, epoch: save_preview(  # noqa: E731
                Model(config, {}, name="preview"), net_, sources[0], preview, Path(preview_dir or "preview"),
                epoch, dev)
        hist, best, stopped = _fit(net, data, _Objective(task, context, residual), sc,
                                   0 if input == "3d" else context, dev, rng,
                                   preview_at, on_epoch)
    config["history"] = hist
    config["training"] = {
        "epochs": sc.epochs, "steps": sc.steps, "batch": sc.batch, "patch": sc.patch, "lr": sc.lr,
        "validation": sc.validation, "patience": sc.patience, "seed": sc.seed, "average": sc.average,
        "device": str(dev), "best_epoch": best["epoch"], "epochs_run": len(hist["epoch"]), "stopped": stopped,
        "seconds": round(time.perf_counter() - t_start, 3), "pairs": len(sources),
        "init": init.hash if init is not None else None,
        "data_sha256": data_hash([*sources, *targets[:-1]], targets[-1]),
    }
    config["versions"] = versions("torch", "numpy")
    config["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Model(config, {k: v.detach().cpu() for k, v in best["state"].items()}, name=task)


def _check_init(init: Model, task, input, context, scale) -> None:
    what = []
    if init.task != task and not (init.task == "denoise" and task == "restore"):  # pairs may refine a denoiser
        what.append(f"task '{init.task}' (asked: '{task}')")
    if init.input != input or init.context != context:
        what.append(f"input '{init.input}' with context {init.context} (asked: '{input}', {context})")
    if tuple(init.scale) != tuple(scale):
        what.append(f"up-sampling {init.scale} (the pairs: {list(scale)})")
    if what:
        raise ParameterError(f"cannot continue training model '{init.name}': it has " + "; ".join(what))


# ------------------------------------------------------------------------------------------------
# enhance
# ------------------------------------------------------------------------------------------------
class Enhancer:
    """Applies a restoration model to slabs of a volume (see :func:`enhance`)."""

    def __init__(self, model: Model, device="auto", tile: int = 512, overlap: float = 0.25, blend: str = "gaussian",
                 network=None, tta: bool = False):
        from ..core._device import resolve_device
        from ..segmentation._inference import _fuse_batchnorm

        if model.task not in TASKS:
            raise ParameterError(f"model '{model.name}' is a segmentation model: use infer, not enhance")
        if not 0.0 <= overlap < 0.9:
            raise ParameterError(f"overlap must be in 0 .. 0.9, got {overlap}")
        self.model, self.overlap, self.blend = model, overlap, blend
        self.device = resolve_device(device) if isinstance(device, str) else device
        net = network if network is not None else _fuse_batchnorm(model.network(self.device))
        self.multiple = getattr(net, "size_multiple", 1)
        self.three_d = model.input == "3d"
        if self.three_d:  # 3-D activations are big: tiles at most 128 across and 64 deep, a quarter as halo
            tile = min(int(tile), 128)
            self.tile_z = max(self.multiple, min(64, tile) // self.multiple * self.multiple)
        self.tile = max(self.multiple, int(tile) // self.multiple * self.multiple)
        self.run = NetworkPredictor(net, self.device, activation=None, tta=tta,
                                    batch=4 if self.device.type == "cpu" else 16)
        self.h = self.tile_z // 4 if self.three_d else model.context // 2
        self.norm = norm_scale(*model.normalization[0])

    def planes(self, data, z0: int, z1: int) -> tuple[np.ndarray, np.ndarray]:
        """What slices ``z0:z1`` of the output grid need from ``data``: the planes (as stored, or
        up-sampled to the target grid as float32) and each needed slice's row in them. Reads only (the
        read thread's part)."""
        scale = self.model.scale
        zi = reflect_index(np.arange(z0 - self.h, z1 + self.h), data.shape[0] * scale[0])
        a, b = int(zi.min()), int(zi.max()) + 1
        planes = data[a:b] if tuple(scale) == (1, 1, 1) else upsample_slices(data, scale, a, b)
        return planes, (zi - a).astype(np.int64)

    def slab_tensor(self, planes: torch.Tensor, rows: np.ndarray, stored) -> torch.Tensor:
        """Enhanced slices (float32, the target's grey values) on the device from ``planes`` as
        :meth:`Staging.upload <damselfly.engine.segmentation._streaming.Staging.upload>` moved them (NumPy
        type ``stored``): normalising, context, tiles, blending on the device."""
        low, scale = self.norm
        slab = (as_float(planes, stored).index_select(0, to_device(rows, planes.device)) - float(low)) \
            * float(scale)
        nz = len(rows) - 2 * self.h
        if self.three_d:
            y = sliding_window(slab[None, None], self.run, (self.tile_z, self.tile, self.tile), self.overlap,
                               self.blend, self.run.batch, multiple=self.multiple)[0, 0, self.h:self.h + nz]
            centre = slab[self.h:self.h + nz]
        else:
            c = self.model.context
            items = slab.unfold(0, c, 1).permute(0, 3, 1, 2) if c > 1 else slab[:, None]  # a view
            y = sliding_window(items, self.run, (self.tile, self.tile), self.overlap, self.blend,
                               self.run.batch * 2, multiple=self.multiple)[:, 0]
            centre = items[:, self.h]
        if self.model.config.get("residual"):
            y = y + centre
        lo, hi = self.model.output_range
        return y * float(np.float32(hi - lo)) + float(np.float32(lo))

    def slab(self, data, z0: int, z1: int) -> np.ndarray:
        """Enhanced slices ``z0:z1`` of the output grid (float32, in the target's grey values) as NumPy."""
        planes, rows = self.planes(data, z0, z1)
        with Staging(self.device) as st:
            return self.slab_tensor(st.upload([planes])[0], rows, planes.dtype).cpu().numpy()


def enhance(model: Model, image: Volume, out: np.ndarray, *, device="auto", tile: int = 512,
            overlap: float = 0.25, blend: str = "gaussian", tta: bool = False,
            budget: int = 256 * 2 ** 20) -> np.ndarray:
    """Write the enhanced ``image`` into ``out`` (the output grid: the input's shape times the model's
    up-sampling), slab by slab with progress and Stop; ``tta``: average over the four in-plane flips.
    Streamed (:func:`~damselfly.engine.segmentation._streaming.stream`): the next slab is read and moved to the device
    while this one computes there, and the one before is written."""
    if image.data.ndim != 3:
        raise InputError(f"expected a 3-D scalar volume, got shape {image.data.shape}", image.source)
    enh = Enhancer(model, device, tile, overlap, blend, tta=tta)
    per_slice = out.shape[1] * out.shape[2] * 4 * (3 * model.context + 4)
    step = int(max(1, min(out.shape[0], budget // per_slice)))
    if enh.three_d:  # slabs deep enough that the halo is a small part of them
        step = min(out.shape[0], max(step, 2 * enh.tile_z))
    task = progress.task("Enhancing", total=out.shape[0])

    def read(z0, z1):
        planes, rows = enh.planes(image.data, z0, z1)
        return staging.upload([planes])[0], rows, planes.dtype

    with Staging(enh.device) as staging:
        stream([(z0, min(out.shape[0], z0 + step)) for z0 in range(0, out.shape[0], step)], read,
               lambda got, z0, z1: enh.slab_tensor(*got), lambda y, z0, z1: out.__setitem__(slice(z0, z1), y),
               staging, task.advance)
    task.finish()
    return out


def save_preview(model: Model, net, image: Volume, box, folder: Path, epoch: int, dev) -> Path:
    """Before (left) and after (right) of the one-slice ``box`` of ``image`` (output grid), as a PNG."""
    import imageio.v3 as iio

    z0, y0, x0, _, y1, x1 = (int(v) for v in box)
    enh = Enhancer(model, dev, tile=256, network=net)
    after = enh.slab(image.data, z0, z0 + 1)[0, y0:y1, x0:x1]
    before = upsample_slices(image.data, model.scale, z0, z0 + 1)[0, y0:y1, x0:x1]
    lo, hi = model.output_range

    def grey(a):
        return (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"epoch_{epoch:03d}.png"
    iio.imwrite(path, np.concatenate([grey(before), np.full((before.shape[0], 4), 255, np.uint8), grey(after)], 1))
    return path
