"""A classic pixel classifier (the ilastik approach): multi-scale image features and a random forest,
trained on the painted voxels.

The forest is trained by scikit-learn and then kept as plain arrays (one set of node arrays for all its
trees), so a model file holds numbers only: nothing is unpickled, and :func:`check_forest` validates every
index before a compiled loop (:func:`predict_proba`) walks the trees.

Features (``skimage.feature.multiscale_basic_features``): at ``num_sigma`` scales from ``sigma_min`` to
``sigma_max`` voxels, the Gaussian-smoothed intensity, its gradient magnitude and the eigenvalues of its
Hessian. They need ``feature_halo`` voxels of context, so a volume can be processed slab by slab
(:func:`slab_features`) with the same values as at once.

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

from .errors import InputError

#: Feature scales (voxels) by default.
FEATURES = {"sigma_min": 0.7, "sigma_max": 8.0, "num_sigma": 5}


def feature_halo(sigma_max: float = FEATURES["sigma_max"]) -> int:
    """Voxels of context the features need on each side: the Gaussian's reach (4 sigma) and the finite
    differences of the gradient and the Hessian."""
    return int(4.0 * sigma_max + 0.5) + 3


def features(block: np.ndarray, sigma_min: float = FEATURES["sigma_min"], sigma_max: float = FEATURES["sigma_max"],
             num_sigma: int = FEATURES["num_sigma"]) -> np.ndarray:
    """The features of every voxel of a 2-D or 3-D block: float32, shape ``block.shape + (F,)``. Grey
    values are used as they are (no rescaling), so a slab's features equal the whole volume's."""
    from skimage.feature import multiscale_basic_features

    return multiscale_basic_features(np.asarray(block, np.float32), intensity=True, edges=True, texture=True,
                                     sigma_min=sigma_min, sigma_max=sigma_max, num_sigma=num_sigma).astype(np.float32)


def slab_features(data, z0: int, z1: int, **params) -> np.ndarray:
    """:func:`features` of the slices ``z0:z1`` of a (lazy) 3-D volume, read with the halo they need; equal
    to those of the whole volume."""
    h = feature_halo(params.get("sigma_max", FEATURES["sigma_max"]))
    a, b = max(0, z0 - h), min(data.shape[0], z1 + h)
    return features(np.asarray(data[a:b]), **params)[z0 - a:z1 - a]


def fit(X: np.ndarray, y: np.ndarray, n_trees: int = 100, max_depth: int | None = None,
        min_samples_leaf: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """A random forest on samples ``X`` (n, F) with class values ``y`` (n,), as arrays: ``classes`` (the
    values), ``roots`` (each tree's first node), ``left``/``right`` (children, -1 at leaves), ``feature``,
    ``threshold`` (float64: a sample goes left when its feature is at most this), ``value`` (class
    probabilities at each node)."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=n_trees, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                                random_state=seed, n_jobs=1).fit(np.asarray(X, np.float32), y)
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


@njit(parallel=True, cache=True)
def _walk(X, roots, left, right, feature, threshold, value, out):
    for i in prange(X.shape[0]):
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] >= 0:
                node = left[node] if X[i, feature[node]] <= threshold[node] else right[node]
            for k in range(value.shape[1]):
                out[i, k] += value[node, k]
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
