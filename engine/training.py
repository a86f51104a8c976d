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
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import nets, progress
from .data import Labels, Volume
from .errors import Cancelled, InputError, ParameterError
from .inference import Predictor, resolve_device
from .model import Model
from .provenance import versions
from .tiling import normalize, read_slices, reflect_index

#: Augmentation switches and their default strengths (0 or False = off).
AUGMENT_DEFAULTS = {"flip": True, "rotate": True, "contrast": 0.1, "noise": 0.03, "poisson": 0.0, "blur": 0.0}

MAX_CANDIDATES = 200_000  # per class and split: centres to draw patches around


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
    present = size > 0
    dice_loss = (1 - dice[present]).mean() if bool(present.any()) else ce * 0
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
# augmentation
# ------------------------------------------------------------------------------------------------
def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable in-plane Gaussian blur of (B, C, *spatial) with one sigma per sample."""
    r = int(math.ceil(3 * float(sigma.max()))) or 1
    i = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (i[None] / sigma[:, None].clamp(min=1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)                            # (B, 2r+1)
    b, c = x.shape[:2]
    out = x
    for axis in (-1, -2):
        moved = out.movedim(axis, -1)
        shp = moved.shape
        flat = F.pad(moved.reshape(1, b * c * int(np.prod(shp[2:-1])), shp[-1]), (r, r), mode="reflect")
        w = k.repeat_interleave(c * int(np.prod(shp[2:-1])), 0)[:, None]
        flat = F.conv1d(flat, w, groups=w.shape[0])
        out = flat.reshape(shp).movedim(-1, axis)
    return out


def augment(x: torch.Tensor, y: torch.Tensor, opts: dict, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random augmentation of a batch (inputs (B, C, *spatial), labels (B, *spatial)); in-plane only."""
    b = x.shape[0]
    xs, ys = [], []
    for i in range(b):
        xi, yi = x[i], y[i]
        if opts.get("flip"):
            f = torch.rand(2, generator=gen)
            if f[0] < 0.5:
                xi, yi = xi.flip(-1), yi.flip(-1)
            if f[1] < 0.5:
                xi, yi = xi.flip(-2), yi.flip(-2)
        if opts.get("rotate") and xi.shape[-1] == xi.shape[-2]:
            r = int(torch.randint(0, 4, (1,), generator=gen))
            xi, yi = torch.rot90(xi, r, (-2, -1)), torch.rot90(yi, r, (-2, -1))
        xs.append(xi)
        ys.append(yi)
    x, y = torch.stack(xs), torch.stack(ys)
    shape = (b,) + (1,) * (x.ndim - 1)
    if opts.get("blur"):
        sigma = torch.rand(b, generator=gen) * float(opts["blur"])
        x = _blur(x, sigma)
    if opts.get("contrast"):
        s = float(opts["contrast"])
        x = x * (1 + (torch.rand(shape, generator=gen) * 2 - 1) * s) + (torch.rand(shape, generator=gen) * 2 - 1) * s
    if opts.get("poisson"):
        # shot noise: variance proportional to the (normalised, non-negative) signal
        x = x + float(opts["poisson"]) * x.clamp(min=0).sqrt() * torch.randn(x.shape, generator=gen)
    if opts.get("noise"):
        x = x + float(opts["noise"]) * torch.randn(x.shape, generator=gen)
    return x.contiguous(), y.contiguous()


# ------------------------------------------------------------------------------------------------
# patches around labelled voxels
# ------------------------------------------------------------------------------------------------
class PatchSource:
    """Inputs and sparse labels of the labelled region, padded, with patch centres per class.

    2d / 2.5d: one *item* per labelled slice (its inputs are the slice and, for 2.5d, its neighbours);
    3d: one item, the z-range holding labels. ``split`` holds a fraction of the labelled blocks out
    for validation (``labels_val``).
    """

    def __init__(self, arrays: Sequence[np.ndarray], labels: np.ndarray, norm, mode: str, context: int,
                 patch: Sequence[int], k: int, rng: np.random.Generator, mask: np.ndarray | None = None,
                 split: float = 0.0, source: str | None = None):
        self.mode, self.patch, self.k, self.source = mode, tuple(patch), k, source
        self.pad = [p // 2 + p // 4 + 1 for p in self.patch]
        shape = labels.shape
        task = progress.task("Reading labelled slices", total=shape[0])
        zs = []
        for z in range(shape[0]):
            sl = np.asarray(labels[z])
            if mask is not None:
                sl = sl * np.asarray(mask[z], dtype=bool)
            if sl.any():
                zs.append(z)
            task.advance()
        task.finish()
        if not zs:
            raise InputError("the labels hold no labelled voxel (everything is 0 = unlabelled"
                             + (", or outside the mask)" if mask is not None else ")"), source)
        h = context // 2 if mode == "2.5d" else 0
        if mode == "3d":
            z = np.arange(zs[0] - self.pad[0], zs[-1] + self.pad[0] + 1)
            block = read_slices(arrays, z, norm)                         # (inputs, nz, y, x)
            lab = np.asarray(labels[reflect_index(z, shape[0])]).astype(np.uint8)
            valid = (z >= 0) & (z < shape[0])
            lab[~valid] = 0
            if mask is not None:
                lab *= np.asarray(mask[reflect_index(z, shape[0])], dtype=bool)
            py, px = self.pad[1], self.pad[2]
            self.inputs = np.pad(block, [(0, 0), (0, 0), (py, py), (px, px)], mode="reflect")
            self.labels = [np.pad(lab, [(0, 0), (py, py), (px, px)])]
            self.channel_index = None
            self.z = [zs[0]]
        else:
            need = sorted({int(j) for z in zs for j in reflect_index(np.arange(z - h, z + h + 1), shape[0])})
            pos = {z: i for i, z in enumerate(need)}
            block = read_slices(arrays, np.array(need), norm)
            py, px = self.pad
            self.inputs = np.pad(block, [(0, 0), (0, 0), (py, py), (px, px)], mode="reflect")
            self.channel_index = [np.array([pos[int(j)] for j in reflect_index(np.arange(z - h, z + h + 1),
                                                                               shape[0])]) for z in zs]
            self.labels = []
            for z in zs:
                sl = np.asarray(labels[z]).astype(np.uint8)
                if mask is not None:
                    sl *= np.asarray(mask[z], dtype=bool)
                self.labels.append(np.pad(sl, [(py, py), (px, px)]))
            self.z = zs
        if int(max(lb.max() for lb in self.labels)) > k:
            raise InputError(f"labels hold values above the {k} classes named", source)
        self.labels_val = [np.zeros_like(lb) for lb in self.labels]
        if split > 0:
            self._split(split, rng)

    def _blocks(self, item: int):
        lab = self.labels[item]
        inner = tuple(slice(p, s - p) for p, s in zip(self.pad[-lab.ndim:], lab.shape))
        if lab.ndim == 3:  # 3d: z is padded with real data or mirror, its labels are genuine
            inner = (slice(0, lab.shape[0]),) + inner[1:]
        size = self.patch[-lab.ndim:]
        starts = [range(sl.start, sl.stop, b) for sl, b in zip(inner, size)]
        for origin in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, lab.ndim):
            yield tuple(slice(int(o), min(int(o) + b, sl.stop)) for o, b, sl in zip(origin, size, inner))

    def _split(self, fraction: float, rng: np.random.Generator) -> None:
        """Move a random ``fraction`` of labelled blocks to validation; keep every class in training."""
        blocks = [(i, b) for i in range(len(self.labels)) for b in self._blocks(i) if self.labels[i][b].any()]
        if len(blocks) < 2:
            return
        n_val = max(1, int(round(fraction * len(blocks))))
        chosen = rng.permutation(len(blocks))[:n_val]
        for j in chosen:
            i, b = blocks[j]
            self.labels_val[i][b] = self.labels[i][b]
            self.labels[i][b] = 0
        for c in range(1, self.k + 1):  # a class held out entirely goes back to training
            if not any((lb == c).any() for lb in self.labels):
                for i in range(len(self.labels)):
                    back = self.labels_val[i] == c
                    self.labels[i][back] = c
                    self.labels_val[i][back] = 0

    def counts(self, val: bool = False) -> list[int]:
        labs = self.labels_val if val else self.labels
        tot = np.zeros(self.k + 1, dtype=np.int64)
        for lb in labs:
            tot += np.bincount(lb.ravel(), minlength=self.k + 1)[: self.k + 1]
        return [int(v) for v in tot[1:]]

    def centres(self, val: bool, rng: np.random.Generator) -> dict[int, np.ndarray]:
        """Per class, an array of (item, *position) rows of labelled voxels (subsampled if many)."""
        labs = self.labels_val if val else self.labels
        out = {}
        for c in range(1, self.k + 1):
            rows = []
            for i, lb in enumerate(labs):
                idx = np.argwhere(lb == c)
                if len(idx):
                    rows.append(np.column_stack([np.full(len(idx), i), idx]))
            if rows:
                a = np.concatenate(rows)
                if len(a) > MAX_CANDIDATES:
                    a = a[rng.choice(len(a), MAX_CANDIDATES, replace=False)]
                out[c] = a
        return out

    def patch_at(self, item: int, centre: Sequence[int], val: bool = False) -> tuple[np.ndarray, np.ndarray]:
        labs = self.labels_val if val else self.labels
        lab = labs[item]
        sl = []
        for c, p, s in zip(centre, self.patch[-lab.ndim:], lab.shape):
            o = int(np.clip(c - p // 2, 0, s - p))
            sl.append(slice(o, o + p))
        if self.mode == "3d":
            x = self.inputs[(slice(None),) + tuple(sl)]
        else:
            x = self.inputs[:, self.channel_index[item], sl[0], sl[1]]
            x = x.reshape(-1, *x.shape[2:])
        return x, lab[tuple(sl)]

    def batch(self, centres: dict[int, np.ndarray], n: int, rng: np.random.Generator, val: bool = False,
              jitter: bool = True) -> tuple[np.ndarray, np.ndarray]:
        classes = sorted(centres)
        xs, ys = [], []
        for _ in range(n):
            c = classes[int(rng.integers(len(classes)))]
            row = centres[c][int(rng.integers(len(centres[c])))]
            pos = row[1:].copy()
            if jitter:
                pos = pos + rng.integers(-np.array(self.patch[-len(pos):]) // 4,
                                         np.array(self.patch[-len(pos):]) // 4 + 1)
            x, y = self.patch_at(int(row[0]), pos, val)
            xs.append(x)
            ys.append(y)
        return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# preview
# ------------------------------------------------------------------------------------------------
def preview_png(path: Path, image: np.ndarray, seg: np.ndarray, colors: Sequence[Sequence[int]]) -> None:
    """Save the preview: the image (grey) beside the prediction overlaid in class colours."""
    import imageio.v3 as iio

    g = np.clip(image, 0, 1)
    grey = np.repeat((g * 255).astype(np.uint8)[..., None], 3, -1)
    lut = np.array([[0, 0, 0]] + [list(c)[:3] for c in colors], dtype=np.float32)
    over = (0.5 * grey + 0.5 * lut[seg]).astype(np.uint8)
    gap = np.full((grey.shape[0], 4, 3), 255, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.concatenate([grey, gap, over], axis=1))


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
def _percentiles(vol: Volume) -> tuple[float, float]:
    from .volume_ops import sample

    s = sample(vol)
    s = s[np.isfinite(s)]
    lo, hi = (float(v) for v in np.percentile(s, [0.5, 99.5])) if s.size else (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def data_hash(images: Sequence[Volume], labels: Labels) -> str:
    h = hashlib.sha256()
    for v in [*images, labels]:
        h.update(v.hash().encode())
    return h.hexdigest()


@contextlib.contextmanager
def _deterministic(seed: int):
    old = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old)


def _mask_array(mask, shape):
    """A mask is anything with a ``shape`` that gives boolean slabs when indexed along z."""
    if mask is not None and tuple(mask.shape) != tuple(shape):
        raise InputError(f"the mask has shape {tuple(mask.shape)}, the image has {tuple(shape)}")
    return mask


def train(images: Sequence[Volume], labels: Labels, *, arch: str = "unet", input: str = "2.5d",
          context: int = 5, hparams: dict | None = None, epochs: int = 30, steps: int = 50, batch: int = 8,
          patch: int = 128, lr: float = 1e-3, validation: float = 0.2,
          val_images: Sequence[Volume] | None = None, val_labels: Labels | None = None, patience: int = 5,
          seed: int = 0, init: Model | None = None, mask: np.ndarray | None = None,
          augment_opts: dict | None = None, preview: Sequence[int] | None = None,
          preview_dir: str | Path | None = None, device: str = "auto",
          on_epoch: Callable[[dict], None] | None = None) -> Model:
    """Train a network on sparse labels and return the best :class:`Model` (see the module docstring).

    ``images`` are one or more volumes of the labels' geometry (several = extra input channels);
    ``mask`` (boolean, same shape) limits where patches are drawn. ``preview`` is a box
    ``[z0, y0, x0, z1, y1, x1]`` whose prediction is saved as ``epoch_NNN.png`` in ``preview_dir``
    after every epoch. ``on_epoch`` gets each epoch's history row.
    """
    images = list(images)
    _check_setup(images, labels, arch, input, context, epochs, steps, batch, patch, validation, patience)
    k = len(labels.classes)
    mode = input
    context = context if mode == "2.5d" else 1
    opts = dict(AUGMENT_DEFAULTS, **(augment_opts or {}))
    unknown = set(opts) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ParameterError(f"unknown augmentation {sorted(unknown)}; known: {', '.join(AUGMENT_DEFAULTS)}")
    hp = dict(nets.DEFAULTS[arch], **(hparams or {}))
    if init is not None:
        _check_init(init, arch, mode, context, len(images), labels)
        hp = init.hparams
        norm = init.normalization
    else:
        norm = [_percentiles(im) for im in images]
    dev = resolve_device(device)
    rng = np.random.default_rng(seed)
    patch_shape = (patch, patch, patch) if mode == "3d" else (patch, patch)
    multiple = 2 ** (hp["levels"] - 1) if "levels" in hp else 1
    if patch % multiple:
        raise ParameterError(f"patch must be a multiple of {multiple} for a {hp['levels']}-level U-Net, got {patch}")
    m = _mask_array(mask, labels.shape)
    arrays = [im.data for im in images]
    src = PatchSource(arrays, labels.data, norm, mode, context, patch_shape, k, rng, m,
                      split=validation if val_labels is None else 0.0, source=labels.source)
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
    n_val = min(64, max(2 * batch, 16)) if val_centres else 0
    val_set = vsrc.batch(val_centres, n_val, np.random.default_rng(seed + 1), val=True, jitter=False) if n_val else None

    config = {
        "arch": arch, "hparams": hp, "input": mode, "context": context, "axis": "z",
        "inputs": [{"name": im.name, "low": lo, "high": hi, "calibration": im.metadata.get("calibration"),
                    "spacing": list(im.spacing), "unit": im.unit} for im, (lo, hi) in zip(images, norm)],
        "classes": [{"index": c.index, "name": c.name, "color": list(c.color)} for c in labels.classes],
        "patch": list(patch_shape),
    }
    t_start = time.perf_counter()
    with _deterministic(seed):
        net = nets.build(arch, len(images) * context, k, hp)
        if init is not None:
            net.load_state_dict(init.state)
        net = net.to(dev)
        fmt = torch.channels_last if mode != "3d" else torch.channels_last_3d
        net = net.to(memory_format=fmt)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1), eta_min=lr * 0.02)
        gen = torch.Generator().manual_seed(seed)
        amp = dev.type == "cuda"
        hist: dict[str, list] = {"epoch": [], "loss": [], "val_loss": []}
        for c in labels.classes:
            hist[f"dice_{c.name}"] = []
        hist.update({"lr": [], "seconds": []})
        best = {"loss": math.inf, "state": None, "epoch": 0}
        stopped, wait = "completed", 0
        task = progress.task("Training", total=epochs * steps)
        try:
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                net.train()
                losses = []
                for _ in range(steps):
                    x, y = src.batch(train_centres, batch, rng)
                    x, y = augment(torch.from_numpy(x), torch.from_numpy(y), opts, gen)
                    x = x.to(dev).contiguous(memory_format=fmt)
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                        out = net(x)
                    loss = masked_loss(out, y.to(dev))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                    task.advance()
                row = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"]}
                sched.step()
                val_loss, dice = _validate(net, val_set, k, dev, fmt, amp)
                row["val_loss"] = val_loss
                for c, d in zip(labels.classes, dice):
                    row[f"dice_{c.name}"] = d
                score = val_loss if val_set is not None else row["loss"]
                if score < best["loss"]:
                    best = {"loss": score, "state": copy.deepcopy(net.state_dict()), "epoch": epoch}
                    wait = 0
                else:
                    wait += 1
                if preview is not None:
                    net.eval()
                    row["preview"] = str(_save_preview(net, config, arrays, preview,
                                                       Path(preview_dir or "preview"), epoch, dev))
                row["seconds"] = round(time.perf_counter() - t0, 3)
                for key in hist:
                    hist[key].append(row.get(key, float("nan")))
                task.message = (f"Training: epoch {epoch}/{epochs} done, loss {row['loss']:.3f}"
                                + (f", val_loss {val_loss:.3f}" if val_set is not None else ""))
                if on_epoch is not None:
                    on_epoch(row)
                progress.event("epoch", **row)
                if val_set is not None and wait >= patience:
                    stopped = "early"
                    break
        except Cancelled:
            if best["state"] is None:
                raise
            stopped = "cancelled"
        task.finish()
    state = {k_: v.detach().cpu() for k_, v in best["state"].items()}
    config["history"] = hist
    config["training"] = {
        "epochs": epochs, "steps": steps, "batch": batch, "patch": patch, "lr": lr, "validation": validation,
        "patience": patience, "seed": seed, "augment": opts, "device": str(dev), "best_epoch": best["epoch"],
        "epochs_run": len(hist["epoch"]), "stopped": stopped, "seconds": round(time.perf_counter() - t_start, 3),
        "labelled_voxels": dict(zip(labels.class_names, counts)),
        "validation_voxels": dict(zip(labels.class_names, vsrc.counts(val=True))),
        "init": init.hash if init is not None else None,
        "data_sha256": data_hash(images, labels),
    }
    config["versions"] = versions("torch", "numpy")
    config["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Model(config, state, name="model")


def _validate(net, val_set, k, dev, fmt, amp) -> tuple[float, list[float]]:
    if val_set is None:
        return float("nan"), [float("nan")] * k
    net.eval()
    x, y = val_set
    losses, preds = [], []
    with torch.no_grad():
        for i in range(0, len(x), 8):
            xb = torch.from_numpy(x[i:i + 8]).to(dev).contiguous(memory_format=fmt)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                out = net(xb)
            yb = torch.from_numpy(y[i:i + 8]).to(dev)
            losses.append(float(masked_loss(out, yb)) * len(xb))
            preds.append((out.argmax(1) + 1).cpu().numpy())
    return float(np.sum(losses) / len(x)), dice_scores(np.concatenate(preds), y, k)


def _save_preview(net, config, arrays, box, folder: Path, epoch: int, dev) -> Path:
    z0, y0, x0, z1, y1, x1 = (int(v) for v in box)
    margin = 32
    ya, xa = max(0, y0 - margin), max(0, x0 - margin)
    yb, xb = min(arrays[0].shape[1], y1 + margin), min(arrays[0].shape[2], x1 + margin)
    crop = [a[:, ya:yb, xa:xb] for a in arrays]
    model = Model(config, {}, name="preview")
    pred = Predictor(model, dev, tile=256, network=net)
    probs = pred.predict_slab(crop, z0, z0 + 1)
    seg = (np.argmax(probs[:, 0], axis=0) + 1)[y0 - ya:y1 - ya, x0 - xa:x1 - xa]
    lo, hi = model.normalization[0]
    img = normalize(np.asarray(arrays[0][z0, y0:y1, x0:x1]), lo, hi)
    path = folder / f"epoch_{epoch:03d}.png"
    preview_png(path, img, seg, [c["color"] for c in config["classes"]])
    return path


def _check_setup(images, labels, arch, input, context, epochs, steps, batch, patch, validation, patience):
    if not images:
        raise ParameterError("train needs at least one input volume")
    for im in images:
        if im.data.ndim != 3:
            raise InputError(f"expected a 3-D scalar volume, got shape {im.data.shape}", im.source)
        im.check_same_geometry(labels)
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
    if not labels.classes:
        raise InputError("the labels have no classes", labels.source)


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
