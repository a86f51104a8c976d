"""morphology (issue 32): equal to scipy.ndimage on the whole scan, slab by slab with a halo, with
anisotropic balls in physical units; added voxels take the class, removed ones ``into``."""

import numpy as np
import pytest
from scipy import ndimage

from damselfly.engine import make_classes
from damselfly.engine.actions.cleanup import ball, morphology
from damselfly.engine.core.data import Labels


@pytest.fixture()
def seg():
    rng = np.random.default_rng(3)
    f = ndimage.gaussian_filter(rng.standard_normal((45, 40, 38)), 2)
    data = np.where(f > 0.05, 2, 1).astype(np.uint8)  # metal (2) with pores (1), touching every face
    data[rng.random(data.shape) < 0.01] = 3  # specks of a third class
    return Labels(data, spacing=(1.0, 0.5, 0.5), unit="mm", classes=make_classes(["pore", "metal", "speck"]),
                  name="seg")


@pytest.mark.parametrize("operation", ["erode", "dilate", "open", "close"])
@pytest.mark.parametrize("radius", [1.0, 2.0])
def test_slab_by_slab_equals_scipy_on_the_whole_scan(seg, operation, radius):
    d = np.asarray(seg.data)
    m = d == 1
    op = {"erode": ndimage.binary_erosion, "dilate": ndimage.binary_dilation,
          "open": ndimage.binary_opening, "close": ndimage.binary_closing}[operation]
    want = op(m, structure=ball(radius, seg.spacing))
    got = np.asarray(morphology(seg, operation, class_="pore", radius=radius, into="metal").data)
    assert np.array_equal(got == 1, want)
    added, removed = want & ~m, m & ~want
    assert (got[removed] == 2).all() and np.array_equal(got[~added & ~removed], d[~added & ~removed])


def test_fill_holes_and_remove_small(seg):
    d = np.asarray(seg.data)
    filled = np.asarray(morphology(seg, "fill_holes", class_="metal").data)
    assert np.array_equal(filled == 2, ndimage.binary_fill_holes(d == 2))
    small = np.asarray(morphology(seg, "remove_small", class_="speck", min_voxels=2).data)
    ids, n = ndimage.label(d == 3, ndimage.generate_binary_structure(3, 3))
    sizes = np.bincount(ids.ravel())
    assert np.array_equal(small == 3, (d == 3) & (sizes[ids] >= 2)) and (small[(d == 3) & (small != 3)] == 0).all()


def test_the_ball_is_anisotropic_in_physical_units():
    fp = ball(1.0, (1.0, 0.5, 0.5))
    assert fp.shape == (3, 5, 5) and fp[1, 2, 4] and not fp[0, 2, 4] and fp[0, 2, 2]
