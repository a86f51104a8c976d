"""Compare segmentation methods on a held-out painted slice before committing hours to one."""

from __future__ import annotations

import time

import numpy as np

from ..core import progress
from ..core.context import RunContext
from ..core.data import Labels, Table, Volume
from ..core.errors import InputError, ParameterError
from ..registry import action
from ..segmentation._model import Model
from .segmentation import _images, train


def predict_slice(*args, **kwargs):
    """:func:`~damselfly.engine.segmentation._inference.predict_slice`, imported when first called (PyTorch loads then)."""
    from ..segmentation._inference import predict_slice as predict

    return predict(*args, **kwargs)


#: The methods compared by default: the classic pixel classifier and the default network.
METHODS = ("forest", "unet")
#: Every method, cheapest first (training and prediction time): a tie goes to the first.
KNOWN = ("forest", "unet", "msd", "unet3d")
#: Held-out mean Dice within which methods count as tied (one slice cannot tell them apart more finely).
MARGIN = 0.01


def choose_holdout(painted: dict[int, set[int]], holdout: int | None = None) -> int:
    """The painted slice to hold out: ``holdout`` if given, else the one nearest the middle of the
    painted slices whose removal leaves every painted class painted elsewhere."""
    zs = sorted(painted)
    if holdout is not None and holdout not in painted:
        raise ParameterError(f"holdout slice {holdout} is not painted; painted z-slices: {zs}")
    every = set().union(*painted.values())
    middle = zs[len(zs) // 2]
    for z in ([holdout] if holdout is not None else sorted(zs, key=lambda z: (abs(z - middle), z))):
        rest = set().union(*(c for s, c in painted.items() if s != z))
        if rest >= every:
            return z
        if holdout is not None:
            raise ParameterError(f"holding out slice {holdout} leaves class value(s) {sorted(every - rest)} "
                                 f"unpainted; paint them on another slice or hold out another one")
    raise ParameterError("every painted slice holds the only paint of some class; paint each class on at "
                         "least two slices so that one can be held out")


def _train(images, labels, method, budget, seed, ctx) -> Model:
    kw = {} if method == "forest" else budget
    return train(images, labels, arch=method, input="3d" if method == "unet3d" else "2.5d", seed=seed, **kw, ctx=ctx)


def comparison(model: Model) -> Table:
    """The table :func:`compare_methods` stored in the model it returned."""
    doc = model.config.get("comparison")
    if not doc:
        raise ParameterError(f"model '{model.name}' was not made by compare_methods or train(arch=\"auto\") "
                             f"(it has no comparison)")
    return Table(doc["columns"], name="comparison", metadata={"holdout": doc["holdout"], "margin": doc.get("margin", 0.0)})


@action("compare_methods", result="model", category="Segment")
def compare_methods(image: Volume | list[Volume], labels: Labels, methods: list[str] | None = None,
                    holdout: int | None = None, refit: bool = True, epochs: int | None = None,
                    steps: int | None = None, seed: int = 0, margin: float = MARGIN, *, ctx: RunContext) -> Model:
    """Train several methods on the painted slices but one, score each on the held-out painted slice, and
    return the best model (what Dragonfly's segmentation wizard does). A method must beat a cheaper one
    by more than ``margin`` to be chosen over it.

    Every method is trained with ``train``'s defaults. The table of Dice per class, mean Dice and
    seconds is kept in the model (``comparison(model)`` gives it; the app shows it).

    Parameters
    ----------
    image : Volume or list of Volume
        The scan (several volumes of one geometry: modalities).
    labels : Labels
        Sparse labels: at least two painted z-slices (0 = unlabelled).
    methods : list of str, optional
        Among "forest", "unet", "msd", "unet3d" (default: forest and unet).
    holdout : int, optional
        The painted z-slice held out for scoring (default: the one nearest the middle of the painted
        slices whose classes are all painted on other slices too).
    refit : bool
        Retrain the best method on all painted slices (the held-out one too) before returning it; else
        return the model as trained for the comparison.
    epochs, steps : int, optional
        The networks' training budget (default: ``train``'s); the forest has none.
    seed : int
        Random seed of every training.
    margin : float
        Held-out mean Dice within which methods count as tied; the tie goes to the cheapest (the forest,
        then the U-Net, MS-D, the 3-D U-Net). One painted slice scores methods only this finely: on noisy
        nuclei the network led the forest by 0.004 mean Dice on the held-out slice and trailed it by 0.003
        on the rest of the scan.

    Examples
    --------
    >>> best = compare_methods(cal, painted, ctx=ctx)              # doctest: +SKIP
    >>> comparison(best).row("chosen", True)["method"]              # doctest: +SKIP
    'unet'
    """
    images = _images(image)
    methods = list(methods or METHODS)
    bad = [m for m in methods if m not in KNOWN]
    if bad or not methods or len(set(methods)) != len(methods):
        raise ParameterError(f"methods must be distinct names among {', '.join(KNOWN)}, got {methods}")
    if not 0 <= margin < 1:
        raise ParameterError(f"margin is a difference of mean Dice, from 0 to below 1; got {margin}")
    from ..segmentation._autotrain import painted_slices, without_slices
    from ..segmentation._training import dice_scores

    painted = painted_slices(labels)
    if len(painted) < 2:
        raise InputError(f"compare_methods needs at least two painted z-slices (one is held out to score the "
                         f"methods); painted: {sorted(painted) or 'none'}", labels.source)
    holdout = choose_holdout(painted, holdout)
    budget = {k: v for k, v in (("epochs", epochs), ("steps", steps)) if v is not None}
    rest = without_slices(labels, [holdout])
    truth = np.asarray(labels.data[holdout])
    k = len(labels.classes)
    columns: dict[str, list] = {"method": []}
    columns.update({f"dice_{c.name}": [] for c in labels.classes})
    columns.update({"mean_dice": [], "train_s": [], "predict_s": [], "chosen": []})
    models = {}
    task = progress.task("Comparing methods", total=len(methods))
    for m in methods:
        task.message = f"Comparing methods: training {m} ({len(columns['method']) + 1}/{len(methods)})"
        t0 = time.perf_counter()
        models[m] = _train(images, rest, m, budget, seed, ctx)
        t1 = time.perf_counter()
        pred = predict_slice(models[m], images, holdout, device=ctx.device)
        t2 = time.perf_counter()
        d = dice_scores(pred, truth, k)
        columns["method"].append(m)
        for c, v in zip(labels.classes, d):
            columns[f"dice_{c.name}"].append(round(v, 4))
        columns["mean_dice"].append(round(float(np.nanmean(d)), 4) if not np.all(np.isnan(d)) else float("nan"))
        columns["train_s"].append(round(t1 - t0, 1))
        columns["predict_s"].append(round(t2 - t1, 1))
        task.advance()
    task.finish()
    best = _choose(methods, columns["mean_dice"], margin)
    columns["chosen"] = [i == best for i in range(len(methods))]
    winner = methods[best]
    model = _train(images, labels, winner, budget, seed, ctx) if refit else models[winner]
    model.config["comparison"] = {"holdout": holdout, "columns": columns, "refit": refit, "margin": margin}
    return model


def _choose(methods: list[str], mean_dice: list[float], margin: float) -> int:
    """The index of the cheapest method whose score is within ``margin`` of the best (NaN: no score)."""
    scores = [-np.inf if np.isnan(v) else v for v in mean_dice]
    top = max(scores)
    tied = [i for i in range(len(methods)) if scores[i] >= top - margin]
    return min(tied, key=lambda i: KNOWN.index(methods[i]))


@action("comparison", result="table", category="Measure")
def comparison_table(model: Model) -> Table:
    """The table of a model made by ``compare_methods`` or ``train(arch="auto")``: per method, Dice per
    class on the held-out painted slices, mean Dice, training (and prediction) seconds, which was chosen.

    Parameters
    ----------
    model : Model
        A model returned by ``compare_methods`` or ``train(arch="auto")``.
    """
    return comparison(model)
