"""The random forest of the pixel classifier (:mod:`~damselfly.engine.segmentation._classifier`), kept as arrays.

The forest is trained by scikit-learn and then kept as plain arrays (one set of node arrays for all its
trees), so a model file holds numbers only: nothing is unpickled, and :func:`check_forest` validates every
index before a compiled loop (:func:`predict_proba`) walks the trees.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.random((300, 4)).astype(np.float32); y = np.where(X[:, 0] > 0.5, 2, 1)
>>> forest = fit(X, y, n_trees=10, seed=0)
>>> proba = predict_proba(forest, np.array([[0.9, 0.5, 0.5, 0.5], [0.1, 0.5, 0.5, 0.5]], np.float32))
>>> forest["classes"][proba.argmax(axis=1)].tolist()
[2, 1]
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..core.errors import InputError, ParameterError
from . import _features as feats

#: Default hyper-parameters: trees, their depth (None = grown fully), painted voxels sampled per class,
#: and the feature scales.
DEFAULTS = {"trees": 100, "max_depth": None, "samples": 20000, **feats.FEATURES}
#: The arrays of a forest model file.
FOREST_ARRAYS = ("classes", "roots", "left", "right", "feature", "threshold", "value", "n_features")


def fit(X: np.ndarray, y: np.ndarray, n_trees: int = 100, max_depth: int | None = None,
        min_samples_leaf: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """A random forest on samples ``X`` (n, F) with class values ``y`` (n,), as arrays: ``classes`` (the
    values), ``roots`` (each tree's first node), ``left``/``right`` (children, -1 at leaves), ``feature``,
    ``threshold`` (float64: a sample goes left when its feature is at most this), ``value`` (class
    probabilities at each node)."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=n_trees, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                                random_state=seed, n_jobs=-1).fit(np.asarray(X, np.float32), y)
    trees = [e.tree_ for e in rf.estimators_]
    sizes = np.array([t.node_count for t in trees])
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def children(side):
        return np.concatenate([np.where(getattr(t, side) < 0, -1, getattr(t, side) + r)
                               for t, r in zip(trees, roots)]).astype(np.int64)

    value = np.concatenate([t.value[:, 0, :] for t in trees]).astype(np.float64)
    value /= np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
    return {"classes": np.asarray(rf.classes_, np.int64), "roots": roots, "left": children("children_left"),
            "right": children("children_right"),
            "feature": np.concatenate([t.feature for t in trees]).astype(np.int64),
            "threshold": np.concatenate([t.threshold for t in trees]).astype(np.float64), "value": value,
            "n_features": np.array([X.shape[1]], np.int64)}


def check_forest(forest: dict, where=None) -> None:
    """Raise :class:`InputError` unless the arrays make a valid forest: every child index inside the node
    arrays and after its parent (so every walk ends at a leaf), every feature index below ``n_features``."""
    keys = ("classes", "roots", "left", "right", "feature", "threshold", "value", "n_features")
    missing = [k for k in keys if k not in forest]
    if missing:
        raise InputError(f"forest arrays missing: {missing}", where)
    left, right, feat = (np.asarray(forest[k]) for k in ("left", "right", "feature"))
    n, f = len(left), int(np.asarray(forest["n_features"])[0])
    value = np.asarray(forest["value"])
    if not (len(right) == len(feat) == len(forest["threshold"]) == n and value.shape == (n, len(forest["classes"]))):
        raise InputError("forest node arrays differ in length", where)
    inner = left >= 0
    node = np.arange(n)
    ok = (np.all((left < 0) == (right < 0)) and np.all(left[inner] > node[inner]) and np.all(right[inner] > node[inner])
          and np.all(left < n) and np.all(right < n) and np.all((feat[inner] >= 0) & (feat[inner] < f))
          and np.all((np.asarray(forest["roots"]) >= 0) & (np.asarray(forest["roots"]) < n)))
    if not ok:
        raise InputError("forest arrays are inconsistent (a child or feature index out of range)", where)


#: Samples walked through one tree before the next tree (so that tree stays in the cache).
WALK_BLOCK = 2048


@njit(parallel=True, cache=True)
def _walk(X, roots, left, right, feature, threshold, value, out):
    n = X.shape[0]
    for b in prange((n + WALK_BLOCK - 1) // WALK_BLOCK):
        s0, s1 = b * WALK_BLOCK, min(n, (b + 1) * WALK_BLOCK)
        for t in range(roots.shape[0]):
            for i in range(s0, s1):
                node = roots[t]
                while left[node] >= 0:
                    node = left[node] if X[i, feature[node]] <= threshold[node] else right[node]
                for k in range(value.shape[1]):
                    out[i, k] += value[node, k]
        for i in range(s0, s1):
            for k in range(value.shape[1]):
                out[i, k] /= roots.shape[0]


def predict_proba(forest: dict, X: np.ndarray) -> np.ndarray:
    """Class probabilities (n, K) of samples ``X`` (n, F): the mean over the trees of their leaves'
    probabilities (as scikit-learn computes them), in the order of ``forest["classes"]``."""
    X = np.ascontiguousarray(X, np.float32)
    if X.ndim != 2 or X.shape[1] != int(forest["n_features"][0]):
        raise InputError(f"the forest takes {int(forest['n_features'][0])} features, got shape {X.shape}")
    out = np.zeros((X.shape[0], forest["value"].shape[1]))
    _walk(X, forest["roots"], forest["left"], forest["right"], forest["feature"], forest["threshold"],
          forest["value"], out)
    return out


def check_hparams(hp: dict) -> dict:
    """The forest's hyper-parameters with defaults filled in; unknown names or bad values raise."""
    unknown = set(hp) - set(DEFAULTS)
    if unknown:
        raise ParameterError(f"unknown forest setting(s) {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    out = dict(DEFAULTS, **hp)

    def whole(name, lo, hi, none=False):
        v = out[name]
        if not (none and v is None) and (not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi):
            raise ParameterError(f"forest setting '{name}' must be a whole number {lo}..{hi}, got {v!r}")

    whole("trees", 1, 1000)
    whole("max_depth", 1, 100, none=True)
    whole("samples", 10, 10_000_000)
    whole("num_sigma", 1, 16)
    for name in ("sigma_min", "sigma_max"):
        if not isinstance(out[name], int | float) or isinstance(out[name], bool) or not np.isfinite(out[name]):
            raise ParameterError(f"forest setting '{name}' must be a number, got {out[name]!r}")
    feats.sigmas(out["sigma_min"], out["sigma_max"], out["num_sigma"])  # checks the range
    return out


def check_model_arrays(doc: dict, state: dict, path) -> None:
    """A forest model file's tensors: the forest's arrays, of integer/float dtypes, consistent, taking
    the features its document describes and giving its classes."""
    kinds = {k: np.float64 if k in ("threshold", "value") else np.int64 for k in FOREST_ARRAYS}
    if set(state) != set(kinds):
        raise InputError(f"a forest model holds the arrays {sorted(kinds)}, this one {sorted(state)}", path)
    arrays = {k: v.numpy() for k, v in state.items()}
    for k, dtype in kinds.items():
        if arrays[k].dtype != dtype or arrays[k].ndim != (2 if k == "value" else 1):
            raise InputError(f"forest array '{k}' has dtype {arrays[k].dtype} and {arrays[k].ndim} dimension(s); "
                             f"it must be {np.dtype(dtype)}, {2 if k == 'value' else 1}-D", path)
    check_forest(arrays, path)
    want = feats.n_features(2 if doc["input"] == "2d" else 3, doc["hparams"]["num_sigma"]) * len(doc["inputs"])
    if int(arrays["n_features"][0]) != want:
        raise InputError(f"the forest takes {int(arrays['n_features'][0])} features; its document describes {want}",
                         path)
    if not set(arrays["classes"].tolist()) <= set(range(1, len(doc["classes"]) + 1)):
        raise InputError("the forest predicts classes its document does not list", path)
    if not np.all(np.isfinite(arrays["value"])) or not np.all(np.isfinite(arrays["threshold"])):
        raise InputError("the forest holds NaN or infinite values", path)
