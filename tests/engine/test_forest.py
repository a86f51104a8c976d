"""The pixel classifier's core: features slab by slab, a forest kept as validated arrays."""

import numpy as np
import pytest

from damselfly.engine import InputError
from damselfly.engine import forest as F


def test_predictions_equal_scikit_learns_and_the_arrays_are_plain_numbers():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(1)
    X = rng.random((500, 6)).astype(np.float32)
    y = 1 + (X[:, 0] > 0.4).astype(int) + (X[:, 1] > 0.7).astype(int)  # classes 1, 2, 3
    forest = F.fit(X, y, n_trees=12, seed=3)
    ref = RandomForestClassifier(n_estimators=12, random_state=3, n_jobs=1).fit(X, y)
    Xt = rng.random((400, 6)).astype(np.float32)
    np.testing.assert_allclose(F.predict_proba(forest, Xt), ref.predict_proba(Xt), rtol=0, atol=1e-12)
    assert forest["classes"].tolist() == [1, 2, 3]
    assert all(isinstance(v, np.ndarray) and v.dtype.kind in "if" for v in forest.values())  # nothing to unpickle
    F.check_forest(forest)


def test_corrupt_forest_arrays_are_refused_before_any_walk():
    rng = np.random.default_rng(2)
    X = rng.random((100, 3)).astype(np.float32)
    forest = F.fit(X, 1 + (X[:, 0] > 0.5), n_trees=2, seed=0)
    for key, change in (("left", lambda a: a.__setitem__(0, len(a) + 5)),  # a child outside the nodes
                        ("right", lambda a: a.__setitem__(0, 0)),  # a cycle: a child before its parent
                        ("feature", lambda a: a.__setitem__(0, 99))):  # a feature the forest does not take
        bad = {k: v.copy() for k, v in forest.items()}
        change(bad[key])
        with pytest.raises(InputError, match="inconsistent"):
            F.check_forest(bad, "m.dfmodel")
    with pytest.raises(InputError, match="missing"):
        F.check_forest({k: v for k, v in forest.items() if k != "value"})
    with pytest.raises(InputError, match="takes 3 features"):
        F.predict_proba(forest, X[:, :2])


def test_slab_features_equal_the_whole_volumes():
    vol = np.random.default_rng(0).random((30, 24, 26)).astype(np.float32) * 1000
    params = {"sigma_min": 0.7, "sigma_max": 2.0, "num_sigma": 3}
    whole = F.features(vol, **params)
    assert whole.dtype == np.float32 and whole.shape[:3] == vol.shape
    for z0, z1 in ((0, 7), (7, 19), (19, 30)):
        np.testing.assert_allclose(F.slab_features(vol, z0, z1, **params), whole[z0:z1], rtol=1e-5, atol=1e-3)


def test_a_forest_from_three_painted_slices_segments_the_rest_of_a_phantom():
    from damselfly.engine import phantoms

    vol, truth = phantoms.casting((32, 48, 48), seed=2)
    grey, t = np.asarray(vol.data, np.float32), np.asarray(truth.data)
    feats = F.features(grey, sigma_max=4.0)
    painted = [5, 16, 27]
    X, y = feats[painted].reshape(-1, feats.shape[-1]), t[painted].ravel()
    forest = F.fit(X, y, n_trees=30, seed=0)
    rest = [z for z in range(32) if z not in painted]
    pred = forest["classes"][F.predict_proba(forest, feats[rest].reshape(-1, feats.shape[-1])).argmax(1)]
    truth_rest = t[rest].ravel()
    for k in (truth.class_index("air"), truth.class_index("metal")):
        a, b = pred == k, truth_rest == k
        assert 2 * np.sum(a & b) / (a.sum() + b.sum()) > 0.95
