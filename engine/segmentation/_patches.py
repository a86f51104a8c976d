"""Training data for networks: patches drawn around labelled voxels, on-the-fly augmentation, and the
per-epoch preview picture.

Batches are made on the training device (issue 34): :meth:`PatchSource.to` keeps the labelled region
there (the painted slices and their context: small), :meth:`PatchSource.draw` picks patches with the
trainer's NumPy generator on the host (a few numbers each) and :meth:`PatchSource.batch` gathers them in
one indexing operation; :func:`augment` turns and flips the whole batch at once. On the CPU the batches
are bit for bit those of the per-patch code this replaced, and so are the trained weights.

Examples
--------
>>> import numpy as np, torch
>>> x, y = torch.zeros(2, 1, 16, 16), torch.zeros(2, 16, 16, dtype=torch.int64)
>>> xa, ya = augment(x, y, AUGMENT_DEFAULTS, torch.Generator().manual_seed(0))
>>> tuple(xa.shape), tuple(ya.shape)
((2, 1, 16, 16), (2, 16, 16))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core import progress
from ..core._device import holding_device, to_device
from ..core.errors import InputError
from ._tiling import read_slices, reflect_index

#: Augmentation switches and their default strengths (0 or False = off).
AUGMENT_DEFAULTS = {"flip": True, "rotate": True, "contrast": 0.1, "noise": 0.1, "poisson": 0.0, "blur": 0.0,
                    "scale": 0.0}

MAX_CANDIDATES = 200_000  # per class and split: centres to draw patches around


# ------------------------------------------------------------------------------------------------
# augmentation
# ------------------------------------------------------------------------------------------------
def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable in-plane Gaussian blur of (B, C, *spatial) with one sigma per sample."""
    r = int(math.ceil(3 * float(sigma.max()))) or 1
    i = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (i[None] / sigma[:, None].clamp(min=1e-3)) ** 2)
    k = to_device(k / k.sum(1, keepdim=True), x.device)       # (B, 2r+1)
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


def _zoom(x: torch.Tensor, y: torch.Tensor, amount: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """In-plane zoom about the patch centre by a factor per sample, log-uniform in ``1/(1+amount) ..
    1+amount``: inputs bilinear (mirrored beyond the edge), labels nearest (unlabelled beyond it)."""
    b = x.shape[0]
    f = torch.exp((torch.rand(b, generator=gen) * 2 - 1) * math.log1p(amount))
    three_d = x.ndim == 5
    theta = torch.zeros(b, 3 if three_d else 2, 4 if three_d else 3, dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / f  # output (x, y) -> input (x, y) / f: f > 1 magnifies
    if three_d:
        theta[:, 2, 2] = 1.0
    grid = F.affine_grid(to_device(theta.to(x.dtype), x.device), list(x.shape), align_corners=False)
    xz = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    yz = F.grid_sample(y[:, None].to(x.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return xz, yz[:, 0].round().to(y.dtype)


def flipped(x: torch.Tensor, chosen, axis: int) -> torch.Tensor:
    """``x`` (B, ...) with the samples where ``chosen`` (B booleans) is true flipped along ``axis``."""
    chosen = np.asarray(chosen, dtype=bool)
    if not chosen.any():
        return x
    sel = to_device(chosen, x.device).view((-1,) + (1,) * (x.ndim - 1))
    return torch.where(sel, x.flip(axis), x)


def turned(x: torch.Tensor, turns) -> torch.Tensor:
    """``x`` (B, ...) with each sample turned in-plane by its number of quarter turns (``turns``: B
    integers 0..3, or none), a few kernels for the batch."""
    turns = np.asarray(turns, dtype=np.int64)
    if not turns.any():
        return x
    x = x.clone()
    for k in (1, 2, 3):
        sel = to_device(np.nonzero(turns == k)[0], x.device)
        if len(sel):
            x[sel] = torch.rot90(x[sel], k, (-2, -1))
    return x


def augment(x: torch.Tensor, y: torch.Tensor, opts: dict, gen: torch.Generator,
            noise: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random augmentation of a batch (inputs (B, C, *spatial), labels (B, *spatial)); in-plane only.

    Runs on the batch's device, the whole batch at once (a few kernels per switch, not per sample).
    ``gen`` (a CPU generator) draws the per-sample choices (flips, quarter turns, zoom, blur, contrast),
    ``noise`` (a generator on the batch's device; ``gen`` by default) the noise fields.
    """
    noise = gen if noise is None else noise
    b, dev = x.shape[0], x.device
    flip_x, flip_y, turns = [], [], []
    for _ in range(b):  # the same draws, in the same order, as one sample at a time
        if opts.get("flip"):
            f = torch.rand(2, generator=gen)
            flip_x.append(bool(f[0] < 0.5))
            flip_y.append(bool(f[1] < 0.5))
        if opts.get("rotate") and x.shape[-1] == x.shape[-2]:
            turns.append(int(torch.randint(0, 4, (1,), generator=gen)))
    for chosen, axis in ((flip_x, -1), (flip_y, -2)):
        x, y = flipped(x, chosen, axis), flipped(y, chosen, axis)
    x, y = turned(x, turns), turned(y, turns)
    shape = (b,) + (1,) * (x.ndim - 1)
    if opts.get("scale"):
        x, y = _zoom(x, y, float(opts["scale"]), gen)
    if opts.get("blur"):
        sigma = torch.rand(b, generator=gen) * float(opts["blur"])
        x = _blur(x, sigma)
    if opts.get("contrast"):
        s = float(opts["contrast"])
        gain = to_device(1 + (torch.rand(shape, generator=gen) * 2 - 1) * s, dev)
        x = x * gain + to_device((torch.rand(shape, generator=gen) * 2 - 1) * s, dev)
    if opts.get("poisson"):
        # shot noise: variance proportional to the (normalised, non-negative) signal
        x = x + float(opts["poisson"]) * x.clamp(min=0).sqrt() * torch.randn(x.shape, generator=noise, device=dev)
    if opts.get("noise"):
        x = x + float(opts["noise"]) * torch.randn(x.shape, generator=noise, device=dev)
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

    def to(self, device: torch.device) -> PatchSource:
        """Make batches for ``device``: the inputs and labels are kept there (the labelled region: the
        labelled slices and their context) when they fit (:func:`~damselfly.engine.core._device.holding_device`),
        so that :meth:`batch` gathers there; else on the host, and each batch travels."""
        self.device = torch.device(device)
        self._tensors = None
        return self

    def _on_device(self):
        if getattr(self, "_tensors", None) is None:
            need = self.inputs.size * 4 + 2 * sum(lb.nbytes for lb in self.labels)
            dev = holding_device(getattr(self, "device", torch.device("cpu")), need)  # the host if too big
            labels = [torch.from_numpy(np.stack(labs)).to(dev) for labs in (self.labels, self.labels_val)]
            index = None if self.channel_index is None else torch.from_numpy(np.stack(self.channel_index)).to(dev)
            self._tensors = torch.from_numpy(self.inputs.astype(np.float32, copy=False)).to(dev), labels, index
        return self._tensors

    def draw(self, centres: dict[int, np.ndarray], n: int, rng: np.random.Generator,
             jitter: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The item and the origin (corner) of ``n`` patches: a class at random, a labelled voxel of it at
        random, moved by up to a quarter patch (``jitter``), the patch kept inside the item."""
        classes = sorted(centres)
        items, origins = np.zeros(n, np.int64), []
        size = np.array(self.patch[-(next(iter(centres.values())).shape[1] - 1):])
        extent = np.array(self.labels[0].shape)
        for j in range(n):
            c = classes[int(rng.integers(len(classes)))]
            row = centres[c][int(rng.integers(len(centres[c])))]
            pos = row[1:].copy()
            if jitter:
                pos = pos + rng.integers(-size // 4, size // 4 + 1)
            items[j] = row[0]
            origins.append(np.clip(pos - size // 2, 0, extent - size))
        return items, np.array(origins, np.int64)

    def batch(self, centres: dict[int, np.ndarray], n: int, rng: np.random.Generator, val: bool = False,
              jitter: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` patches (:meth:`draw`) as inputs (n, C, *patch) float32 and labels (n, *patch) int64,
        gathered in one indexing operation on the device the source is kept on (:meth:`to`)."""
        inputs, labels, index = self._on_device()
        dev = inputs.device
        items, origins = self.draw(centres, n, rng, jitter)
        it = to_device(items, dev)
        at = [to_device(origins[:, a], dev) for a in range(origins.shape[1])]
        lab = windows(labels[int(val)], self.patch[-len(at):])  # (items, *origins, *patch): views, no copy
        if self.mode == "3d":
            x = windows(inputs, self.patch)[(slice(None), *at)].transpose(0, 1)  # (n, C, pz, py, px)
        else:
            planes = index[it]  # (n, context): each patch's slice and its neighbours
            x = windows(inputs, self.patch)[:, planes, at[0][:, None], at[1][:, None]]  # (inputs, n, k, py, px)
            x = x.transpose(0, 1).reshape(n, -1, *self.patch[-2:])
        to = getattr(self, "device", dev)
        return to_device(x.contiguous(), to), to_device(lab[(it, *at)].long(), to)


def windows(a: torch.Tensor, patch) -> torch.Tensor:
    """Every patch of ``a``'s last ``len(patch)`` axes as a view: shape ``(*lead, *origins, *patch)``,
    so that indexing the origins gathers whole patches in one operation."""
    first = a.ndim - len(patch)
    for k, p in enumerate(patch):
        a = a.unfold(first + k, p, 1)  # the axis becomes the origins; the patch axis goes last
    return a


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
