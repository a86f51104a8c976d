"""Multi-scale features box by box: scikit-image's feature set, the same values as on the whole volume."""

import numpy as np
import pytest
from skimage.feature import hessian_matrix_eigvals, multiscale_basic_features

from damselfly.engine import ParameterError
from damselfly.engine.segmentation import _features as F

PARAMS = {"sigma_min": 0.7, "sigma_max": 3.0, "num_sigma": 3}


@pytest.fixture(scope="module")
def vol():
    return np.random.default_rng(0).random((26, 30, 34)).astype(np.float32) * 3


def test_box_features_are_scikit_images_features_of_the_whole_volume(vol):
    whole = multiscale_basic_features(vol, **PARAMS).astype(np.float32)
    assert whole.shape[-1] == F.n_features(3, 3)
    # boxes inside, at every border, and one slice (the z pass is computed for its planes only)
    for box in ((0, 26, 0, 30, 0, 34), (12, 13, 0, 30, 0, 34), (8, 19, 7, 23, 1, 33), (0, 3, 25, 30, 30, 34),
                (23, 26, 0, 4, 0, 5)):
        z0, z1, y0, y1, x0, x1 = box
        got = F.box_features(vol, box, **PARAMS)
        assert got.dtype == np.float32 and got.shape == (z1 - z0, y1 - y0, x1 - x0, 15)
        np.testing.assert_allclose(got, whole[z0:z1, y0:y1, x0:x1], rtol=1e-5, atol=1e-5)


def test_2d_features_are_each_slices_own(vol):
    per_slice = np.stack([multiscale_basic_features(s, **PARAMS) for s in vol]).astype(np.float32)
    got = F.box_features(vol, (4, 9, 3, 27, 0, 34), mode="2d", **PARAMS)
    assert got.shape[-1] == F.n_features(2, 3) == 12
    np.testing.assert_allclose(got, per_slice[4:9, 3:27], rtol=1e-5, atol=1e-5)


def test_normalisation_is_applied_before_the_features(vol):
    a = F.box_features(vol * 10 + 100, (5, 8, 0, 30, 0, 34), low=100, high=110, **PARAMS)
    np.testing.assert_allclose(a, F.box_features(vol, (5, 8, 0, 30, 0, 34), **PARAMS), rtol=1e-4, atol=1e-4)


def test_closed_form_eigenvalues_equal_lapacks():
    rng = np.random.default_rng(3)
    h = [rng.normal(size=(5000,)).astype(np.float32) for _ in range(6)]
    h[1][:10] = h[2][:10] = h[4][:10] = 0  # diagonal matrices
    h[0][10:20] = h[3][10:20] = h[5][10:20] = 1.5  # (nearly) repeated eigenvalues
    h[1][10:20] = h[2][10:20] = h[4][10:20] = 0
    h = [a.reshape(50, 10, 10) for a in h]  # scikit-image takes the dimension from the elements' shape
    for got, want in zip(F.hessian_eigenvalues(h), hessian_matrix_eigvals(h)):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
    h2 = [a.reshape(500, 10) for a in h[:3]]
    for got, want in zip(F.hessian_eigenvalues(h2), hessian_matrix_eigvals(h2)):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_bad_scales_and_modes_are_refused(vol):
    with pytest.raises(ParameterError, match="sigma_min <= sigma_max"):
        F.box_features(vol, (0, 1, 0, 5, 0, 5), sigma_min=4, sigma_max=2)
    with pytest.raises(ParameterError, match="mode"):
        F.box_features(vol, (0, 1, 0, 5, 0, 5), mode="2.5d")
