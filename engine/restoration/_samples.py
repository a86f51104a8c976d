"""Training samples of the enhancement trainers: patches of the normalised volumes, drawn on the host,
gathered, turned and blind-spot masked on the device (issue 34).

The random choices (which slice, where, which quarter turn and mirror, which pixels the blind spot
replaces by which neighbour) are a few numbers per patch, drawn from the trainer's NumPy generator on the
host in a fixed order; the voxels never pass through Python: the volumes are kept on the training
device where they fit (:meth:`Pairs.tensors`) and one indexing operation per volume gathers a batch.
On the CPU the volumes are used where they lie (no copy), and the batches equal, bit for bit, those of the
per-patch NumPy code this replaced.

Examples
--------
>>> import numpy as np, torch
>>> x = torch.rand(2, 3, 16, 16)
>>> xm, m = blind_spot(x, np.random.default_rng(0), channel=1)
>>> int(m.sum()), bool(torch.equal(xm[:, 0], x[:, 0]))   # one pixel per 8 x 8 cell of each of 2 patches
(8, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core import progress
from ..core._device import holding_device, to_device
from ..core.errors import InputError
from ..segmentation._patches import flipped, turned
from ..segmentation._tiling import normalize, reflect_index
from ._resample import upsample

#: Blind-spot pixels: one per ``BLIND_CELL`` x ``BLIND_CELL`` cell, replaced by a neighbour within ``BLIND_RADIUS``.
BLIND_CELL, BLIND_RADIUS = 8, 2
#: At most this many mask positions are kept per slice to centre patches on.
MAX_CENTRES = 20000


@dataclass
class Pairs:
    """Normalised inputs (on the target grid) and targets in memory; training and validation slices;
    with a mask, per slice the (y, x) positions patches are centred on."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    train: list[tuple[int, int]]
    val: list[tuple[int, int]]
    centres: dict | None = None

    def tensors(self, device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The inputs and targets as tensors: on ``device`` if it is a GPU with room for them
        (:func:`~damselfly.engine.core._device.holding_device`), else on the host (sharing NumPy's memory;
        batches move to the device)."""
        cache = getattr(self, "_tensors", None)
        if cache is not None and cache[0] == device:
            return cache[1]
        need = sum(a.nbytes for a in self.inputs) + sum(t.nbytes for t, a in zip(self.targets, self.inputs) if t is not a)
        where = holding_device(device, need)
        ins = [torch.from_numpy(a).to(where) for a in self.inputs]
        outs = [ins[i] if t is a else torch.from_numpy(t).to(where)
                for i, (t, a) in enumerate(zip(self.targets, self.inputs))]
        self._tensors = (device, (ins, outs))
        return ins, outs


def pairs(sources, targets, scale, norm_in, norm_out, validation: float, rng, mask=None) -> Pairs:
    """Read and normalise the training volumes (sources up-sampled to the targets' grid) and split their
    slices into training and validation (with a mask: only slices holding mask voxels)."""
    ins, outs, items = [], [], []
    task = progress.task("Reading the training volumes", total=len(sources))
    for i, (s, t) in enumerate(zip(sources, targets)):
        ins.append(normalize(upsample(s.data, scale) if any(f > 1 for f in scale) else np.asarray(s.data),
                             *norm_in))
        outs.append(ins[-1] if t is s else normalize(np.asarray(t.data), *norm_out))
        items += [(i, z) for z in range(t.shape[0])]
        task.advance()
    task.finish()
    centres = None
    if mask is not None:
        centres = {}
        for z in range(targets[0].shape[0]):
            pos = np.argwhere(np.asarray(mask[z], bool))
            if len(pos):
                centres[(0, z)] = pos if len(pos) <= MAX_CENTRES else pos[rng.choice(len(pos), MAX_CENTRES,
                                                                                   replace=False)]
        if not centres:
            raise InputError("the mask holds no voxel: nothing to train on")
        items = sorted(centres)
    n_val = int(round(validation * len(items))) if len(items) >= 2 else 0
    order = rng.permutation(len(items))
    val = sorted(items[j] for j in order[:n_val])
    return Pairs(ins, outs, [items[j] for j in sorted(order[n_val:])], val, centres)


def draw(data: Pairs, items, n: int, context: int, patch: int, rng, flip: bool) -> np.ndarray:
    """Where ``n`` patches come from, one row each: volume, slice (or first slice of a 3-D block), y, x,
    quarter turns, mirror. A random slice of ``items``; a random place (around a random mask position
    if there is a mask); with ``flip`` a random quarter turn (half turns for oblong patches) and mirror."""
    rows = np.zeros((n, 6), np.int64)
    for j in range(n):
        i, z = items[int(rng.integers(len(items)))]
        shape = data.inputs[i].shape
        py, px = min(patch, shape[1]), min(patch, shape[2])
        if data.centres is not None:  # a patch around a random position inside the mask
            cy, cx = data.centres[(i, z)][int(rng.integers(len(data.centres[(i, z)])))]
            y0 = int(np.clip(cy - py // 2, 0, shape[1] - py))
            x0 = int(np.clip(cx - px // 2, 0, shape[2] - px))
        else:
            y0 = int(rng.integers(0, shape[1] - py + 1))
            x0 = int(rng.integers(0, shape[2] - px + 1))
        if context == 0:  # 3-D: a block of ``patch`` slices around z
            pz = min(patch, shape[0])
            z = int(np.clip(z - pz // 2, 0, shape[0] - pz))
        turns = mirror = 0
        if flip:
            turns = int(rng.integers(4)) if px == py else 2 * int(rng.integers(2))
            mirror = int(rng.random() < 0.5)
        rows[j] = (i, z, y0, x0, turns, mirror)
    return rows


def batch(data: Pairs, rows: np.ndarray, context: int, patch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The patches ``rows`` (:func:`draw`) as inputs (n, C, ...) and targets (n, 1, ...) float32 on
    ``device``: 2-D patches of ``context`` slices around their slice (mirrored at the ends; 1 for 2-D) and
    the slice's target, or 3-D blocks (``context`` 0) of one channel."""
    ins, outs = data.tensors(device)
    xs, ys = [None] * len(rows), [None] * len(rows)
    for i in np.unique(rows[:, 0]):  # one gather per volume
        sel = np.nonzero(rows[:, 0] == i)[0]
        vol, tgt = ins[i], outs[i]
        shape = vol.shape
        py, px = min(patch, shape[1]), min(patch, shape[2])
        r = to_device(rows[sel], vol.device)
        yy = r[:, 2, None] + torch.arange(py, device=vol.device)
        xx = r[:, 3, None] + torch.arange(px, device=vol.device)
        if context == 0:
            zz = r[:, 1, None] + torch.arange(min(patch, shape[0]), device=vol.device)
            at = (zz[:, :, None, None], yy[:, None, :, None], xx[:, None, None, :])
            x, y = vol[at][:, None], tgt[at][:, None]
        else:
            h = max(context, 1) // 2
            planes = reflect_index(rows[sel, 1, None] + np.arange(-h, h + 1), shape[0])
            x = vol[to_device(planes, vol.device)[:, :, None, None], yy[:, None, :, None], xx[:, None, None, :]]
            y = tgt[r[:, 1, None, None], yy[:, :, None], xx[:, None, :]][:, None]
        for j, xi, yi in zip(sel, x, y):
            xs[j], ys[j] = xi, yi
    x, y = to_device(torch.stack(xs), device), to_device(torch.stack(ys), device)
    return _turned(x, rows), _turned(y, rows)


def _turned(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """Each patch turned by its quarter turns in-plane, then mirrored left-right where its row says."""
    return flipped(turned(x, rows[:, 4]), rows[:, 5], -1).contiguous()


def blind_spot(x: torch.Tensor, rng: np.random.Generator, channel: int, cell: int = BLIND_CELL,
               radius: int = BLIND_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise2Void masking of ``x`` (b, C, y, x): in channel ``channel``, one random pixel per ``cell`` x
    ``cell`` cell takes the value of a random other pixel within ``radius``. Returns the masked copy and
    the boolean mask (b, y, x) of the replaced pixels, on ``x``'s device (the choices are drawn on the
    host, a few numbers per cell)."""
    b, _, ny, nx = x.shape
    gy, gx = np.meshgrid(np.arange(0, ny, cell), np.arange(0, nx, cell), indexing="ij")
    gy, gx = gy.ravel(), gx.ravel()
    at = np.zeros((4, b, len(gy)), np.int64)  # py, px, sy, sx per patch and cell
    for i in range(b):
        py = np.minimum(gy + rng.integers(0, cell, len(gy)), ny - 1)
        px = np.minimum(gx + rng.integers(0, cell, len(gx)), nx - 1)
        dy = rng.integers(-radius, radius + 1, len(py))
        dx = rng.integers(-radius, radius + 1, len(px))
        same = (dy == 0) & (dx == 0)
        dx[same] = rng.choice([-1, 1], int(same.sum()))  # never the pixel itself
        at[:, i] = py, px, np.clip(py + dy, 0, ny - 1), np.clip(px + dx, 0, nx - 1)
    py, px, sy, sx = to_device(at, x.device)
    bi = torch.arange(b, device=x.device)[:, None]
    out = x.clone()
    out[bi, channel, py, px] = x[bi, channel, sy, sx]
    mask = torch.zeros((b, ny, nx), dtype=torch.bool, device=x.device)
    mask[bi, py, px] = True
    return out, mask
