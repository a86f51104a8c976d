"""Training a segmentation network from sparse labels (a few painted slices).

- Label 0 is "unlabelled": the loss (masked cross-entropy + masked soft Dice) ignores it, so a few
  painted slices — or a few strokes — are enough. Every class must be painted somewhere.
- Patches are drawn around labelled voxels, class by class in turn (so a rare class such as pores is
  seen as often as the background), optionally only inside a mask.
- Augmentation on the fly: in-plane flips and 90-degree rotations, contrast (intensity scale/shift),
  Gaussian noise, signal-dependent (Poisson-like) noise and blur, each with a strength (0 = off).
- Validation on held-out blocks of the labelled region (a fraction) or on a separate labelled volume;
  early stopping on validation loss with patience; the best epoch's weights are what the model keeps.
- Deterministic on the CPU for a given seed. Progress per batch; Stop keeps the best model so far.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core import progress
from ..core._device import resolve_device
from ..core._provenance import versions
from ..core.data import Labels, Volume
from ..core.errors import Cancelled, InputError, ParameterError
from . import _nets as nets
from ._inference import Predictor
from ._model import Model
from ._patches import AUGMENT_DEFAULTS, PatchSource, augment, preview_png
from ._tiling import normalize
from ._trainset import check_images, data_hash, norm_range  # noqa: F401  (data_hash: part of this module's API)


# ------------------------------------------------------------------------------------------------
# loss
# ------------------------------------------------------------------------------------------------
def masked_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy plus soft Dice over labelled voxels only.

    ``logits``: (B, K, *spatial); ``target``: (B, *spatial) with 0 = unlabelled and 1..K the classes.
    Unlabelled voxels contribute nothing, whatever the network predicts there. The Dice term averages
    over the classes present in the batch's labels.
    """
    k = logits.shape[1]
    valid = target > 0
    t = (target - 1).clamp(min=0)
    n = valid.sum().clamp(min=1)
    ce = F.cross_entropy(logits.float(), t, reduction="none")
    ce = torch.where(valid, ce, torch.zeros_like(ce)).sum() / n
    p = torch.softmax(logits.float(), dim=1)
    v = valid.unsqueeze(1)
    p = torch.where(v, p, torch.zeros_like(p))
    onehot = F.one_hot(t, k).movedim(-1, 1).to(p.dtype) * v
    dims = (0,) + tuple(range(2, logits.ndim))
    inter = (p * onehot).sum(dims)
    size = onehot.sum(dims)
    dice = (2 * inter + 1e-6) / (p.sum(dims) + size + 1e-6)
    present = size > 0  # the mean over the classes present, without asking the GPU which they are
    dice_loss = ((1 - dice) * present).sum() / present.sum().clamp(min=1)
    return ce + dice_weight * dice_loss


def dice_scores(pred: np.ndarray, target: np.ndarray, k: int) -> list[float]:
    """Hard Dice per class 1..k over labelled voxels (NaN where a class is absent from both)."""
    valid = target > 0
    p, t = pred[valid], target[valid]
    out = []
    for c in range(1, k + 1):
        a, b = p == c, t == c
        s = int(a.sum() + b.sum())
        out.append(float(2 * np.logical_and(a, b).sum() / s) if s else float("nan"))
    return out


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def deterministic(seed: int):
    """Seeded, deterministic algorithms, without filling every new tensor with NaN. PyTorch does that by
    default under deterministic algorithms: about 470 extra kernels a training step on a GPU (a quarter
    of them), and about 7 % of the time of a CPU training run. The engine reads no uninitialised memory,
    so the trained weights are the same bit for bit."""
    old = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0])
        torch.utils.deterministic.fill_uninitialized_memory = old[1]


def _mask_array(mask, shape):
    """A mask is anything with a ``shape`` that gives boolean slabs when indexed along z."""
    if mask is not None and tuple(mask.shape) != tuple(shape):
        raise InputError(f"the mask has shape {tuple(mask.shape)}, the image has {tuple(shape)}")
    return mask


@dataclass(frozen=True)
class Schedule:
    """How long and how hard to train: epochs of ``steps`` batches of ``batch`` patches of ``patch``
    voxels a side, AdamW at ``lr`` with a cosine decay, ``validation`` (a fraction of the labelled
    region held out) with early stopping after ``patience`` epochs without progress, and the ``seed``.
    ``average`` > 0: validate, preview and keep an exponential moving average of the weights (this
    decay per step, e.g. 0.99) instead of the weights of the last step. ``seconds``: a time budget;
    the epoch in which it runs out ends at that step (validated as usual) and training stops there
    (``"budget"``)."""

    epochs: int = 30
    steps: int = 50
    batch: int = 8
    patch: int = 64
    lr: float = 1e-3
    validation: float = 0.2
    patience: int = 5
    seed: int = 0
    average: float = 0.0
    seconds: float | None = None


@dataclass
class _Data:
    """What the fit loop draws from: patch sources for training and validation, and a fixed validation set."""

    src: PatchSource
    vsrc: PatchSource
    train_centres: list
    val_set: tuple | None
    counts: list[int]


def train(images: Sequence[Volume], labels: Labels, *, arch: str = "unet", input: str = "2.5d",
          context: int = 5, hparams: dict | None = None, schedule: Schedule = Schedule(),
          val_images: Sequence[Volume] | None = None, val_labels: Labels | None = None,
          init: Model | None = None, mask: np.ndarray | None = None, augment_opts: dict | None = None,
          preview: Sequence[int] | None = None, preview_dir: str | Path | None = None, device: str = "auto",
          on_epoch: Callable[[dict], None] | None = None) -> Model:
    """Train a network on sparse labels and return the best :class:`Model` (see the module docstring).

    ``images`` are one or more volumes of the labels' geometry (several = extra input channels);
    ``mask`` (boolean, same shape) limits where patches are drawn. ``preview`` is a box
    ``[z0, y0, x0, z1, y1, x1]`` whose prediction is saved as ``epoch_NNN.png`` in ``preview_dir``
    after every epoch. ``on_epoch`` gets each epoch's history row.

    Examples
    --------
    >>> model = train([cal], painted, schedule=Schedule(epochs=5, seed=1), device="cpu")  # doctest: +SKIP
    """
    sc = schedule
    images = list(images)
    opts, hp = check_settings(images, labels, arch, input, context, hparams, sc, augment_opts, init)
    mode = input
    context = context if mode == "2.5d" else 1
    norm = init.normalization if init is not None else [norm_range(im) for im in images]
    dev = resolve_device(device)
    rng = np.random.default_rng(sc.seed)
    patch_shape = (sc.patch,) * (3 if mode == "3d" else 2)
    data = _data(images, labels, norm, mode, context, patch_shape, rng, _mask_array(mask, labels.shape), sc,
                 val_images, val_labels)
    config = {
        "arch": arch, "hparams": hp, "input": mode, "context": context, "axis": "z",
        "inputs": [{"name": im.name, "low": lo, "high": hi, "calibration": im.metadata.get("calibration"),
                    "spacing": list(im.spacing), "unit": im.unit} for im, (lo, hi) in zip(images, norm)],
        "classes": [{"index": c.index, "name": c.name, "color": list(c.color)} for c in labels.classes],
        "patch": list(patch_shape),
    }
    t_start = time.perf_counter()
    with deterministic(sc.seed):
        net = nets.build(arch, len(images) * context, len(labels.classes), hp)
        if init is not None:
            net.load_state_dict(init.state)
        preview_at = None
        if preview is not None:
            arrays = [im.data for im in images]
            preview_at = lambda net_, epoch: save_preview(  # noqa: E731
                Predictor(Model(config, {}, name="preview"), dev, tile=256, network=net_), arrays, preview,
                Path(preview_dir or "preview"), epoch)
        hist, best, stopped = _fit(net, data, labels, sc, opts, dev, rng, mode, preview_at, on_epoch)
    state = {k_: v.detach().cpu() for k_, v in best["state"].items()}
    config["history"] = hist
    config["training"] = {
        "epochs": sc.epochs, "steps": sc.steps, "batch": sc.batch, "patch": sc.patch, "lr": sc.lr,
        "validation": sc.validation, "patience": sc.patience, "seed": sc.seed, "augment": opts, "device": str(dev),
        "best_epoch": best["epoch"], "epochs_run": len(hist["epoch"]), "stopped": stopped,
        "seconds": round(time.perf_counter() - t_start, 3),
        "labelled_voxels": dict(zip(labels.class_names, data.counts)),
        "validation_voxels": dict(zip(labels.class_names, data.vsrc.counts(val=True))),
        "init": init.hash if init is not None else None,
        "data_sha256": data_hash(images, labels),
    }
    config["versions"] = versions("torch", "numpy")
    config["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Model(config, state, name="model")


def _data(images, labels, norm, mode, context, patch_shape, rng, m, sc: Schedule, val_images, val_labels) -> _Data:
    """Patch sources around the labelled voxels (every class must have some) and the validation set."""
    k = len(labels.classes)
    src = PatchSource([im.data for im in images], labels.data, norm, mode, context, patch_shape, k, rng, m,
                      split=sc.validation if val_labels is None else 0.0, source=labels.source)
    counts = src.counts()
    missing = [c.name for c, n in zip(labels.classes, counts) if n == 0]
    if missing:
        raise InputError(f"class{'es' if len(missing) > 1 else ''} {', '.join(repr(n) for n in missing)} "
                         f"ha{'ve' if len(missing) > 1 else 's'} no labelled voxel"
                         f"{' inside the mask' if m is not None else ''}; paint every class somewhere",
                         labels.source)
    vsrc = src
    if val_labels is not None:
        vimgs = list(val_images) if val_images is not None else images
        if len(vimgs) != len(images):
            raise ParameterError(f"validation needs {len(images)} input volume(s), got {len(vimgs)}")
        for v in vimgs:
            val_labels.check_same_geometry(v)
        if val_labels.class_names != labels.class_names:
            raise InputError(f"validation classes {val_labels.class_names} differ from {labels.class_names}",
                             val_labels.source)
        vsrc = PatchSource([v.data for v in vimgs], val_labels.data, norm, mode, context, patch_shape, k,
                           rng, None, source=val_labels.source)
        vsrc.labels_val, vsrc.labels = vsrc.labels, vsrc.labels_val
    train_centres = src.centres(False, rng)
    val_centres = vsrc.centres(True, rng)
    n_val = min(64, max(2 * sc.batch, 16)) if val_centres else 0
    val_set = (vsrc.batch(val_centres, n_val, np.random.default_rng(sc.seed + 1), val=True, jitter=False)
               if n_val else None)
    return _Data(src, vsrc, train_centres, val_set, counts)


def fit_epochs(sc, net, batch_loss: Callable[[], torch.Tensor], validate: Callable[[torch.nn.Module], dict], has_val: bool,
               hist_keys: Sequence[str], preview_at, on_epoch) -> tuple[dict, dict, str]:
    """The training loop shared by every trainer. Per epoch: ``sc.steps`` steps of AdamW
    (:func:`adamw_cosine`) on ``batch_loss()`` (the loss of a fresh training batch), then ``validate(m)``
    (the row's ``val_loss`` and any scores of the network ``m``). ``m`` is ``net``, or with
    ``sc.average`` the moving average of its weights (Polyak averaging: the weights of single steps at a
    high learning rate swing from epoch to epoch, their average does not). The best epoch (lowest
    ``val_loss``, or ``loss`` without validation) keeps a copy of ``m``'s weights; early stop after
    ``sc.patience`` epochs without progress; a preview and an ``epoch`` event per epoch; Stop keeps the
    best epoch so far (a plain cancel before the first one ends). Returns ``(history, best, how it
    stopped)``."""
    opt, sched = adamw_cosine(net, sc)
    judged = copy.deepcopy(net) if sc.average > 0 else net
    steps_done = 0
    t_start = time.perf_counter()

    def over_budget() -> bool:
        return sc.seconds is not None and time.perf_counter() - t_start > sc.seconds

    def one_epoch(task) -> dict:
        nonlocal steps_done
        net.train()
        losses = []
        for _ in range(sc.steps):
            if over_budget() and losses:
                break
            loss = batch_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps_done += 1
            if judged is not net:
                _average_into(judged, net, sc.average, steps_done)
            losses.append(loss.detach())  # read once an epoch: the host runs ahead of the GPU meanwhile
            task.advance()
        row = {"loss": float(np.mean(torch.stack(losses).cpu().numpy().astype(np.float64))),
               "lr": opt.param_groups[0]["lr"]}
        sched.step()
        return {**row, **validate(judged)}

    hist: dict[str, list] = {k: [] for k in hist_keys}
    best = {"loss": math.inf, "state": None, "epoch": 0}
    stopped, wait = "completed", 0
    task = progress.task("Training", total=sc.epochs * sc.steps)
    try:
        for epoch in range(1, sc.epochs + 1):
            t0 = time.perf_counter()
            row = {"epoch": epoch, **one_epoch(task)}
            score = row["val_loss"] if has_val else row["loss"]
            if score < best["loss"]:
                best, wait = {"loss": score, "state": copy.deepcopy(judged.state_dict()), "epoch": epoch}, 0
            else:
                wait += 1
            if preview_at is not None:
                judged.eval()
                row["preview"] = str(preview_at(judged, epoch))
            row["seconds"] = round(time.perf_counter() - t0, 3)
            for key in hist:
                hist[key].append(row.get(key, float("nan")))
            task.message = (f"Training: epoch {epoch}/{sc.epochs} done, loss {row['loss']:.4f}"
                            + (f", val_loss {row['val_loss']:.4f}" if has_val else ""))
            if on_epoch is not None:
                on_epoch(row)
            progress.event("epoch", **row)
            if has_val and wait >= sc.patience:
                stopped = "early"
                break
            if over_budget():
                stopped = "budget"
                break
    except Cancelled:
        if best["state"] is None:
            raise
        stopped = "cancelled"
    task.finish()
    return hist, best, stopped


@torch.no_grad()
def _average_into(avg, net, decay: float, n: int) -> None:
    """Step ``n`` of an exponential moving average: ``avg``'s weights and batch-norm statistics move
    ``1 - d`` of the way to ``net``'s (counters are copied), with ``d = min(decay, (1 + n) / (10 + n))``:
    low at first, so the starting weights soon fade."""
    decay = min(decay, (1 + n) / (10 + n))
    pairs = list(zip(avg.state_dict().values(), net.state_dict().values()))
    floats = [(a, p) for a, p in pairs if a.is_floating_point()]
    torch._foreach_lerp_([a for a, _ in floats], [p for _, p in floats], 1.0 - decay)  # a few kernels, not one a tensor
    for a, p in pairs:
        if not a.is_floating_point():
            a.copy_(p)


#: Devices on which the next training batch is made in a thread while the current one trains. Not on
#: the CPU: there the step needs every core.
AHEAD_ON = ("cuda",)


class Ahead:
    """``make()`` called one batch ahead in a thread (``damselfly-batches``) on the devices of
    :data:`AHEAD_ON`, so that the host prepares the next batch (drawing, gathering, augmenting: kernels
    launched) while the device trains on this one; elsewhere called in turn. ``make`` must be the only
    user of the generators it draws from: then the batches are the same either way, in the same order.
    Use as a context manager: leaving it waits for the batch in the making and ends the thread."""

    def __init__(self, make: Callable, device: torch.device):
        from concurrent.futures import ThreadPoolExecutor

        self.make = make
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="damselfly-batches") if device.type in AHEAD_ON else None
        self.coming = None

    def __call__(self):
        if self.pool is None:
            return self.make()
        got = (self.coming or self.pool.submit(self.make)).result()
        self.coming = self.pool.submit(self.make)
        return got

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def step_network(net: torch.nn.Module) -> Callable:
    """What a training step calls to run ``net`` forward: ``net`` itself, eager. The one place where a
    compiled network (``torch.compile``, or CUDA graphs through ``mode="reduce-overhead"``) would go in:
    ``benchmarks/bench_gpu.py``'s ``compile_train`` section swaps this function to measure both on a GPU
    before either is kept (a compiled module shares ``net``'s parameters, so the optimiser, the moving
    average and the saved weights stay ``net``'s)."""
    return net


def adamw_cosine(net, sc: Schedule):
    """The optimiser of every trainer: AdamW at ``sc.lr`` (weight decay 1e-4), decayed along a cosine to 2 %
    of it over ``sc.epochs``. Returns ``(optimiser, scheduler)``."""
    cuda = next(net.parameters()).device.type == "cuda"  # there one fused kernel updates every parameter
    opt = torch.optim.AdamW(net.parameters(), lr=sc.lr, weight_decay=1e-4, fused=True if cuda else None)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(sc.epochs, 1), eta_min=sc.lr * 0.02)


def _fit(net, data: _Data, labels: Labels, sc: Schedule, opts: dict, dev, rng, mode: str, preview_at, on_epoch):
    """Segmentation training: augmented patch batches, masked loss, Dice on the validation set, through
    :func:`fit_epochs`."""
    k = len(labels.classes)
    fmt = torch.channels_last if mode != "3d" else torch.channels_last_3d
    net = net.to(dev).to(memory_format=fmt)
    gen = torch.Generator().manual_seed(sc.seed)  # per-sample choices, drawn on the host
    noise = gen if dev.type == "cpu" else torch.Generator(dev).manual_seed(sc.seed)  # noise fields, on the device
    amp = dev.type == "cuda"
    data.src.to(dev)  # the labelled region on the device: patches are gathered and augmented there
    forward = step_network(net)

    def make() -> tuple[torch.Tensor, torch.Tensor]:
        return augment(*data.src.batch(data.train_centres, sc.batch, rng), opts, gen, noise)

    def batch_loss() -> torch.Tensor:
        x, y = ahead()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            out = forward(x.contiguous(memory_format=fmt))
        return masked_loss(out, y)

    def validate(m) -> dict:
        val_loss, dice = _validate(m, data.val_set, k, dev, fmt, amp)
        return {"val_loss": val_loss, **{f"dice_{c.name}": d for c, d in zip(labels.classes, dice)}}

    keys = ["epoch", "loss", "val_loss", *(f"dice_{c.name}" for c in labels.classes), "lr", "seconds"]
    with Ahead(make, dev) as ahead:
        return fit_epochs(sc, net, batch_loss, validate, data.val_set is not None, keys, preview_at, on_epoch)


def _validate(net, val_set, k, dev, fmt, amp) -> tuple[float, list[float]]:
    if val_set is None:
        return float("nan"), [float("nan")] * k
    net.eval()
    x, y = val_set
    losses, preds = [], []
    with torch.no_grad():
        for i in range(0, len(x), 8):
            xb = x[i:i + 8].to(dev).contiguous(memory_format=fmt)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                out = net(xb)
            yb = y[i:i + 8].to(dev)
            losses.append(float(masked_loss(out, yb)) * len(xb))
            preds.append(out.argmax(1) + 1)
    return float(np.sum(losses) / len(x)), dice_scores(torch.cat(preds).cpu().numpy(), y.numpy(), k)


def save_preview(pred, arrays, box, folder: Path, epoch: int, margin: int = 32) -> Path:
    """Predict the one-slice ``box`` ``[z, y0, x0, z + 1, y1, x1]`` with ``pred`` (on a crop with
    ``margin`` voxels of context) and save it over the image as ``folder/epoch_NNN.png``."""
    z0, y0, x0, z1, y1, x1 = (int(v) for v in box)
    ya, xa = max(0, y0 - margin), max(0, x0 - margin)
    yb, xb = min(arrays[0].shape[1], y1 + margin), min(arrays[0].shape[2], x1 + margin)
    crop = [a[:, ya:yb, xa:xb] for a in arrays]
    probs = pred.predict_slab(crop, z0, z0 + 1)
    seg = (np.argmax(probs[:, 0], axis=0) + 1)[y0 - ya:y1 - ya, x0 - xa:x1 - xa]
    lo, hi = pred.model.normalization[0]
    img = normalize(np.asarray(arrays[0][z0, y0:y1, x0:x1]), lo, hi)
    path = folder / f"epoch_{epoch:03d}.png"
    preview_png(path, img, seg, [c["color"] for c in pred.model.config["classes"]])
    return path


def check_settings(images: Sequence[Volume], labels: Labels, arch: str, input: str, context: int,
                   hparams: dict | None, schedule: Schedule, augment_opts: dict | None = None,
                   init: Model | None = None) -> tuple[dict, dict]:
    """Every check :func:`train` makes before any work (images against labels, the settings, the
    augmentations, ``init``), as errors; the augmentation options and the network's hyper-parameters.
    ``train(arch="auto")`` runs them for its network first, so a bad setting is an error even where the
    forest leaves the network no room and it is never trained."""
    sc = schedule
    _check_setup(images, labels, arch, input, context, sc.epochs, sc.steps, sc.batch, sc.patch, sc.validation,
                 sc.patience)
    opts = dict(AUGMENT_DEFAULTS, **(augment_opts or {}))
    unknown = set(opts) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ParameterError(f"unknown augmentation {sorted(unknown)}; known: {', '.join(AUGMENT_DEFAULTS)}")
    hp = dict(nets.DEFAULTS[arch], **(hparams or {}))
    if init is not None:
        _check_init(init, arch, input, context if input == "2.5d" else 1, len(images), labels)
        hp = init.hparams
    multiple = 2 ** (hp["levels"] - 1) if "levels" in hp else 1
    if sc.patch % multiple:
        raise ParameterError(f"patch must be a multiple of {multiple} for a {hp['levels']}-level U-Net, "
                             f"got {sc.patch}")
    return opts, hp


def _check_setup(images, labels, arch, input, context, epochs, steps, batch, patch, validation, patience):
    check_images(images, labels)
    if arch not in nets.DEFAULTS:
        raise ParameterError(f"unknown architecture {arch!r}; choose one of {', '.join(nets.DEFAULTS)}")
    if input not in ("2d", "2.5d", "3d"):
        raise ParameterError(f"input must be '2d', '2.5d' or '3d', got {input!r}")
    if (arch == "unet3d") != (input == "3d"):
        raise ParameterError(f"arch '{arch}' needs input={'3d' if arch == 'unet3d' else '2d or 2.5d'}"
                             f" (got input='{input}'); 3-D inputs go with arch='unet3d'")
    if input == "2.5d" and (context < 3 or context % 2 == 0):
        raise ParameterError(f"2.5d context must be an odd number of slices >= 3, got {context}")
    for name, v in (("epochs", epochs), ("steps", steps), ("batch", batch), ("patience", patience)):
        if v < 1:
            raise ParameterError(f"{name} must be at least 1, got {v}")
    if patch < 8:
        raise ParameterError(f"patch must be at least 8 voxels, got {patch}")
    if not 0.0 <= validation < 1.0:
        raise ParameterError(f"validation must be a fraction in 0 .. 1, got {validation}")


def _check_init(init: Model, arch, mode, context, n_inputs, labels: Labels) -> None:
    what = []
    if init.arch != arch:
        what.append(f"arch '{init.arch}' (asked: '{arch}')")
    if init.input != mode or init.context != context:
        what.append(f"input '{init.input}' with context {init.context} (asked: '{mode}', {context})")
    if init.n_inputs != n_inputs:
        what.append(f"{init.n_inputs} input volume(s) (given: {n_inputs})")
    if init.class_names != labels.class_names:
        what.append(f"classes {init.class_names} (labels: {labels.class_names})")
    if what:
        raise ParameterError(f"cannot continue training model '{init.name}': it has " + "; ".join(what))
