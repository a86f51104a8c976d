"""The classic pixel classifier as a Damselfly model (``train(arch="forest")``): the ilastik approach.

- **Features**: multi-scale intensity, gradient and Hessian features (:mod:`~damselfly.engine.segmentation._features`)
  of each input, 3-D (``input="3d"`` or ``"2.5d"``) or slice by slice (``input="2d"``), on the
  intensities normalised as the networks normalise them.
- **Training**: a random forest (:mod:`~damselfly.engine.segmentation._forest`) on a uniform sample of at most
  ``samples`` painted voxels per class (drawn slab by slab, so dense labels of a big scan work too);
  features are computed only for boxes that hold samples.
- **Model**: the same ``.dfmodel`` file as a network; the forest's node arrays are its tensors.
- **Prediction**: :class:`ForestPredictor` gives class probabilities slab by slab in boxes of bounded
  size, so ``infer`` streams exactly as with a network.

Examples
--------
>>> model = train([cal], painted, seed=0)                    # doctest: +SKIP
>>> model.arch
'forest'
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence

import numpy as np

from ..core import progress
from ..core._provenance import versions
from ..core.data import Labels, Volume
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import whole_chunks
from . import _features as feats
from . import _forest as forest
from ._model import Model
from ._trainset import check_images, data_hash, norm_range

#: In-plane edge of the boxes features are computed in.
TILE = 256
#: Voxels of one prediction box (its features take 4 bytes x features per voxel).
BOX_VOXELS = 2 ** 21


def feature_mode(input: str) -> str:
    """``"2d"`` features slice by slice for ``input="2d"``, else 3-D features."""
    return "2d" if input == "2d" else "3d"


def _feature_params(hp: dict) -> dict:
    return {k: hp[k] for k in feats.FEATURES}


def box_features(arrays: Sequence, box: Sequence[int], norm: Sequence[tuple[float, float]], mode: str,
                 hp: dict) -> np.ndarray:
    """The features of every input in ``box``, concatenated: ``box shape + (inputs x F,)``."""
    per_input = [feats.box_features(a, box, mode, lo, hi, **_feature_params(hp)) for a, (lo, hi) in zip(arrays, norm)]
    return per_input[0] if len(per_input) == 1 else np.concatenate(per_input, axis=-1)


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
def sample_painted(labels, k: int, n: int, rng: np.random.Generator, mask=None, slab: int = 16) -> np.ndarray:
    """A uniform sample of at most ``n`` labelled voxels per class 1..k (inside ``mask`` when given),
    reading the labels slab by slab: flat indices, sorted. A class with no voxel raises."""
    keep: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0), np.empty(0, np.int64)) for _ in range(k)]
    counts = np.zeros(k, np.int64)
    plane = int(np.prod(labels.shape[1:]))
    for z0 in range(0, labels.shape[0], slab):
        z1 = min(labels.shape[0], z0 + slab)
        lab = np.asarray(labels.data[z0:z1]).ravel()
        inside = np.asarray(mask[z0:z1], bool).ravel() if mask is not None else None
        for c in range(1, k + 1):
            hit = lab == c
            if inside is not None:
                hit &= inside
            idx = np.flatnonzero(hit) + z0 * plane
            if not len(idx):
                continue
            counts[c - 1] += len(idx)
            keys = np.concatenate([keep[c - 1][0], rng.random(len(idx))])  # the n smallest random keys
            idx = np.concatenate([keep[c - 1][1], idx])
            if len(keys) > n:
                sel = np.argpartition(keys, n)[:n]
                keys, idx = keys[sel], idx[sel]
            keep[c - 1] = (keys, idx)
        progress.check()
    missing = [labels.classes[c].name for c in range(k) if counts[c] == 0]
    if missing:
        raise InputError(f"class{'es' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                         f"ha{'ve' if len(missing) > 1 else 's'} no labelled voxel"
                         f"{' inside the mask' if mask is not None else ''}; paint every class somewhere",
                         labels.source)
    return np.sort(np.concatenate([i for _, i in keep]))


def _sample_boxes(zyx: np.ndarray, shape, depth: int = 16, tile: int = TILE):
    """Group sample coordinates (n, 3) into boxes: runs of at most ``depth`` planes x tiles of ``tile``,
    each box the tight bounds of its samples. Yields ``(box, indices into zyx)``."""
    key = (zyx[:, 0] // depth) * 10 ** 12 + (zyx[:, 1] // tile) * 10 ** 6 + zyx[:, 2] // tile
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for group in np.split(order, bounds):
        p = zyx[group]
        lo, hi = p.min(axis=0), p.max(axis=0) + 1
        yield (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]), group


def training_samples(images: Sequence[Volume], labels: Labels, norm, mode: str, hp: dict, rng,
                     mask=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, counts)``: features and classes of the sampled painted voxels, and the labelled voxels per class."""
    k = len(labels.classes)
    flat = sample_painted(labels, k, hp["samples"], rng, mask)
    zyx = np.stack(np.unravel_index(flat, labels.shape), axis=1)
    X = np.empty((len(flat), feats.n_features(2 if mode == "2d" else 3, hp["num_sigma"]) * len(images)), np.float32)
    y = np.empty(len(flat), np.int64)
    arrays = [im.data for im in images]
    boxes = list(_sample_boxes(zyx, labels.shape))
    task = progress.task("Forest: features of the painted voxels", total=len(boxes))
    for box, group in boxes:
        f = box_features(arrays, box, norm, mode, hp)
        p = zyx[group] - np.array(box[::2])
        X[group] = f[p[:, 0], p[:, 1], p[:, 2]]
        y[group] = np.asarray(labels.data[box[0]:box[1], box[2]:box[3], box[4]:box[5]])[p[:, 0], p[:, 1], p[:, 2]]
        task.advance()
    task.finish()
    counts = np.bincount(y, minlength=k + 1)[1:]
    return X, y, counts


def train(images: Sequence[Volume], labels: Labels, *, input: str = "3d", hparams: dict | None = None,
          mask=None, seed: int = 0) -> Model:
    """Train the pixel classifier on the painted voxels of ``labels`` (0 = unlabelled) and return it as a
    :class:`Model` (see the module docstring). Deterministic for a given ``seed``."""
    images = list(images)
    check_images(images, labels)
    if input not in ("2d", "2.5d", "3d"):
        raise ParameterError(f"input must be '2d', '2.5d' or '3d', got {input!r}")
    hp = forest.check_hparams(hparams or {})
    mode = feature_mode(input)
    norm = [norm_range(im) for im in images]
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    X, y, counts = training_samples(images, labels, norm, mode, hp, rng, mask)
    task = progress.task(f"Forest: fitting {hp['trees']} trees on {len(y)} voxels", total=1)
    arrays = forest.fit(X, y, n_trees=hp["trees"], max_depth=hp["max_depth"], seed=seed)
    task.finish()
    seconds = round(time.perf_counter() - t0, 3)
    import torch

    config = {
        "arch": "forest", "hparams": hp, "input": mode, "context": 1, "axis": "z",
        "inputs": [{"name": im.name, "low": lo, "high": hi, "calibration": im.metadata.get("calibration"),
                    "spacing": list(im.spacing), "unit": im.unit} for im, (lo, hi) in zip(images, norm)],
        "classes": [{"index": c.index, "name": c.name, "color": list(c.color)} for c in labels.classes],
        "history": {"epoch": [1], "samples": [int(len(y))], "seconds": [seconds]},
        "training": {"seed": seed, "seconds": seconds, "stopped": "completed", "best_epoch": 1, "epochs_run": 1,
                     "labelled_voxels": dict(zip(labels.class_names, map(int, counts))),
                     "data_sha256": data_hash(images, labels)},
        "versions": versions("sklearn", "numpy"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return Model(config, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, name="model")


# ------------------------------------------------------------------------------------------------
# the model file and prediction
# ------------------------------------------------------------------------------------------------
class ForestPredictor:
    """Class probabilities of a forest model slab by slab, like :class:`~damselfly.engine.segmentation._inference.Predictor`.

    Parameters
    ----------
    model : Model
        A model with ``arch == "forest"``.
    tile : int
        In-plane edge of the boxes (their features are held in memory).
    """

    def __init__(self, model: Model, tile: int = TILE, **_ignored):
        self.model = model
        self.forest = {k: v.numpy() for k, v in model.state.items()}
        self.hp = model.hparams
        self.mode = model.input
        self.tile = max(16, int(tile))
        self.k = len(model.config["classes"])

    def slab_depth(self, shape: Sequence[int]) -> int:
        """Slices per slab: a box of ``tile`` x ``tile`` of that depth holds about :data:`BOX_VOXELS`, in
        whole output chunks (:func:`~damselfly.engine.core.volume_ops.whole_chunks`)."""
        plane = min(self.tile, shape[1]) * min(self.tile, shape[2])
        return int(min(shape[0], whole_chunks(max(1, BOX_VOXELS // plane))))

    def predict_slab(self, arrays: Sequence, z0: int, z1: int, mask=None) -> np.ndarray:
        """Probabilities (K, z1 - z0, y, x); boxes wholly outside ``mask`` are left at zero."""
        _, Y, X = arrays[0].shape
        out = np.zeros((self.k, z1 - z0, Y, X), np.float32)
        m = np.asarray(mask[z0:z1], bool) if mask is not None else None
        cols = self.forest["classes"] - 1
        for y0 in range(0, Y, self.tile):
            for x0 in range(0, X, self.tile):
                y1, x1 = min(Y, y0 + self.tile), min(X, x0 + self.tile)
                if m is not None and not m[:, y0:y1, x0:x1].any():
                    continue
                f = box_features(arrays, (z0, z1, y0, y1, x0, x1), self.model.normalization, self.mode, self.hp)
                p = forest.predict_proba(self.forest, f.reshape(-1, f.shape[-1]))
                out[cols, :, y0:y1, x0:x1] = p.T.reshape(len(cols), z1 - z0, y1 - y0, x1 - x0)
                progress.check()
        return out
