"""The method a segmentation is trained with, chosen from the painted slices (``train(arch="auto")``).

The painted z-slices are dealt in turn into up to ``FOLDS`` folds. Each method is trained on the slices
outside a fold and scored on the fold's painted voxels, fold by fold, so every painted slice is held out
once; the Dice per class is pooled over all held-out slices. This is a validation that can fail: a model
is never scored on a slice it was trained on (a random share of painted dots scored 1.0 from the first
epoch on a real scan whose thin air gaps the network still got wrong).

The forest goes first (seconds); then the network, within a time budget scaled to the painted voxels on
a CPU (:func:`network_budget`; on a GPU it trains with its full schedule). The model kept is the better
by mean held-out Dice; within ``MARGIN`` the forest, which is cheaper to train and to apply, is kept.
The network's folds stop as soon as it could no longer be kept, even scoring perfectly on the folds left
(a forest at 0.99 or above leaves it no room at all): the same choice, without its training time.
The kept method is then fitted on every painted slice. Stop during the network keeps the forest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..core import progress
from ..core.data import Labels, Volume
from ..core.errors import Cancelled
from ..core.volume_ops import SLAB, output_like
from ._model import Model
from ._training import dice_scores

#: Painted slices are dealt into at most this many folds.
FOLDS = 3
#: Mean held-out Dice within which the network must beat the forest to be kept instead.
MARGIN = 0.01
#: The network's time budget on a CPU: ``CPU_BASE`` seconds plus ``CPU_PER_VOXEL`` a painted voxel, at
#: most ``CPU_MAX`` seconds, shared by its training per fold and its final fit.
CPU_BASE, CPU_PER_VOXEL, CPU_MAX = 20.0, 0.02, 900.0
#: The methods in the order they are tried (the cheaper first; a tie goes to it).
METHODS = ("forest", "unet")


def painted_slices(labels: Labels) -> dict[int, set[int]]:
    """The z-slices holding labelled voxels, each with the classes painted on it (read slab by slab)."""
    out = {}
    for z0 in range(0, labels.shape[0], SLAB):
        slab = np.asarray(labels.data[z0:z0 + SLAB])
        for i in np.flatnonzero(slab.reshape(len(slab), -1).any(axis=1)):
            out[z0 + int(i)] = set(np.unique(slab[i]).tolist()) - {0}
    return out


def without_slices(labels: Labels, zs: Sequence[int]) -> Labels:
    """``labels`` with the z-slices ``zs`` unlabelled (a copy, on disk where the labels are big)."""
    data = output_like([labels], labels.shape, labels.data.dtype)
    for z0 in range(0, labels.shape[0], SLAB):
        data[z0:z0 + SLAB] = np.asarray(labels.data[z0:z0 + SLAB])
    for z in zs:
        data[z] = 0
    return labels.with_data(data, name=f"{labels.name}_train")


def folds(painted: dict[int, set[int]], n: int = FOLDS) -> list[list[int]]:
    """The painted slices (in z order) dealt in turn into at most ``n`` folds, keeping only the folds
    whose other slices still paint every class (a model cannot be trained without one).

    Examples
    --------
    >>> folds({2: {1, 2}, 5: {1, 2}, 9: {1, 2}, 12: {1, 2}})
    [[2, 12], [5], [9]]
    >>> folds({2: {1}, 5: {2}})    # each class on one slice only: nothing can be held out
    []
    """
    zs = sorted(painted)
    every = set().union(*painted.values()) if painted else set()
    out = []
    for f in range(min(n, len(zs))):
        held = zs[f::min(n, len(zs))]
        rest = set().union(*(c for z, c in painted.items() if z not in held))
        if rest >= every:
            out.append(held)
    return out


def network_budget(painted_voxels: int, device: str) -> float | None:
    """Seconds the network may train in all (None: no limit, on a GPU).

    Examples
    --------
    >>> network_budget(1000, "cpu")
    40.0
    >>> network_budget(1000, "cuda") is None
    True
    """
    if device == "cuda":
        return None
    return float(min(CPU_MAX, CPU_BASE + CPU_PER_VOXEL * painted_voxels))


Fit = Callable[[str, Labels, float | None], Model]
Predict = Callable[[Model, int], np.ndarray]


def held_out_dice(fit: Fit, predict: Predict, method: str, labels: Labels, parts: list[list[int]],
                  seconds: float | None = None, beat: float | None = None) -> tuple[list[float] | None, int]:
    """Dice per class of ``method`` over every held-out fold (``fit`` on the rest, ``predict`` the fold's
    slices), and the number of folds scored; None when Stop ended a training (its model saw only part of
    its schedule).

    With ``beat`` (the mean Dice the method must exceed by more than ``MARGIN`` to be kept), the folds
    left are not trained once even perfect predictions of them could not give enough (:func:`at_best`):
    the method cannot be kept, whatever it would score, so the outcome is the same in less time. The Dice
    is then that of the folds scored (NaN before any).
    """
    preds, truths = [], []  # the painted voxels of the held-out slices, pooled
    k = len(labels.classes)
    slices = [[np.asarray(labels.data[z]) for z in held] for held in parts]  # each painted slice read once
    painted = [[t[t > 0] for t in fold] for fold in slices]
    for i, held in enumerate(parts):
        left = [p for fold in painted[i:] for p in fold]
        if beat is not None and beat >= round(at_best(preds, truths, left, k), 4) - MARGIN:
            return (dice_scores(np.concatenate(preds), np.concatenate(truths), k) if preds else [float("nan")] * k), i
        model = fit(method, without_slices(labels, held), seconds)
        if model.config.get("training", {}).get("stopped") == "cancelled":
            return None, i
        for z, truth, voxels in zip(held, slices[i], painted[i]):
            preds.append(predict(model, z)[truth > 0])
            truths.append(voxels)
    return dice_scores(np.concatenate(preds), np.concatenate(truths), k), len(parts)


def at_best(preds: list[np.ndarray], truths: list[np.ndarray], left: list[np.ndarray], k: int) -> float:
    """The highest pooled mean Dice over ``k`` classes reachable from the held-out predictions so far:
    every painted voxel still held out (``left``: their classes) predicted right (that adds true positives
    and nothing else, so no other prediction of them scores higher for any class).

    Examples
    --------
    >>> at_best([np.array([2, 2])], [np.array([1, 2])], [np.array([1, 2])], 2)   # 1 of 2 right, then 2 more
    0.7333333333333334
    """
    dice = dice_scores(np.concatenate(preds + left), np.concatenate(truths + left), k)
    return float(np.nanmean(dice)) if not np.all(np.isnan(dice)) else float("nan")


def select(images: Sequence[Volume], labels: Labels, fit: Fit, predict: Predict, device: str) -> Model:
    """Train the forest and the network on the painted slices, score each on the slices held out in
    turn, and return the better, fitted on every painted slice (see the module docstring). ``fit(method,
    labels, seconds)`` trains one method (``seconds``: a time budget or None); ``predict(model, z)`` is
    its class map of slice ``z``. The table of scores is in ``model.config["comparison"]``."""
    painted = painted_slices(labels)
    parts = folds(painted)
    nvox = sum(int(np.count_nonzero(np.asarray(labels.data[z]))) for z in painted)
    budget = network_budget(nvox, device)
    per = None if budget is None else budget / (len(parts) + 1)  # a share per fold and for the final fit
    columns: dict[str, list] = {"method": []}
    columns.update({f"dice_{c.name}": [] for c in labels.classes})
    columns.update({"mean_dice": [], "train_s": [], "chosen": []})
    note = ""
    if not parts:
        note = (f"not scored: every class must be painted on at least two z-slices to hold one out (painted: "
                f"{sorted(painted)}); the forest was kept")
    scored_folds: list[int] = []  # per method in the table: the folds it was scored on (fewer: stopped early)
    kept = {}  # (no task of its own: its trainings report progress, and Stop must not end it between them)
    for method in METHODS if parts else ():
        t0 = time.perf_counter()
        beat = columns["mean_dice"][0] if columns["mean_dice"] and not np.isnan(columns["mean_dice"][0]) else None
        try:
            dice, scored = held_out_dice(fit, predict, method, labels, parts, None if method == "forest" else per,
                                         None if method == "forest" else beat)
            if dice is not None and method == "forest":
                kept["forest"] = fit("forest", labels, None)  # the forest on every painted slice, at once
        except Cancelled:
            if method == "forest":
                raise
            dice = None
        if dice is None:
            note = f"Stop during the {method}: it was not scored; the forest was kept"
            break
        if scored == 0:
            note = (f"the {method} was not trained: the forest's held-out mean Dice {beat:.3f} leaves no room to beat "
                    f"it by more than {MARGIN}; the forest was kept")
        elif scored < len(parts):
            note = (f"the {method} was scored on {scored} of {len(parts)} folds: even right on every painted voxel "
                    f"of the others it could not beat the forest's held-out mean Dice {beat:.3f} by more than "
                    f"{MARGIN}, so it was not trained on them; the forest was kept")
        _row(columns, method, dice, labels, time.perf_counter() - t0)
        scored_folds.append(scored)
        progress.event("scored", method=method, dice=dict(zip(labels.class_names, dice)),
                       mean_dice=columns["mean_dice"][-1], seconds=columns["train_s"][-1], folds=parts[:scored],
                       of=len(parts), beat=beat, margin=MARGIN)
    best = _choose(columns["method"], columns["mean_dice"])
    winner = columns["method"][best] if columns["method"] else "forest"
    if winner not in kept:
        try:
            model = fit(winner, labels, None if winner == "forest" else per)
        except Cancelled:
            if "forest" not in kept:
                raise
            winner, note = "forest", f"Stop while fitting the {winner} on every painted slice: the forest was kept"
    model = kept[winner] if winner in kept else model
    columns["chosen"] = [m == winner for m in columns["method"]]
    model.config["comparison"] = {"holdout": parts, "columns": columns, "margin": MARGIN, "refit": True,
                                  "auto": True, "budget_s": budget, "note": note,
                                  "folds_scored": scored_folds}
    return model


def _row(columns: dict, method: str, dice: list[float], labels: Labels, seconds: float) -> None:
    columns["method"].append(method)
    for c, v in zip(labels.classes, dice):
        columns[f"dice_{c.name}"].append(round(v, 4))
    columns["mean_dice"].append(round(float(np.nanmean(dice)), 4) if not np.all(np.isnan(dice)) else float("nan"))
    columns["train_s"].append(round(seconds, 1))


def _choose(methods: list[str], mean_dice: list[float]) -> int:
    """The first method (the cheapest) within ``MARGIN`` of the best score (NaN: no score)."""
    if not methods:
        return 0
    scores = [-np.inf if np.isnan(v) else v for v in mean_dice]
    top = max(scores)
    return next(i for i, s in enumerate(scores) if s >= top - MARGIN)

