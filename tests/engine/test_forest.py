"""The pixel classifier's trees: a scikit-learn forest kept as validated arrays."""

import numpy as np
import pytest

from damselfly.engine import InputError
from damselfly.engine.segmentation import _forest as F


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
