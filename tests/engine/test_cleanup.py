"""merge_classes (instance ids of another tool into one class), and morphology (issue 32): equal to scipy.ndimage on the whole scan, slab by slab with a halo, with
anisotropic balls in physical units; added voxels take the class, removed ones ``into``."""

import numpy as np
import pytest
from scipy import ndimage

from damselfly.engine import make_classes
from damselfly.engine.actions.cleanup import ball, merge_classes, morphology
from damselfly.engine.core.data import Labels
from damselfly.engine.core.errors import InputError, ParameterError


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


def instance_ids(shape=(20, 24, 22), n=5, seed=1):
    """Labels as another tool writes them: 0 background, 1..n one id per object (class1..classn)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, n + 1, shape).astype(np.uint8)
    return Labels(data, spacing=(2.0, 1.0, 1.0), unit="um", classes=make_classes([f"class{i}" for i in range(1, n + 1)]),
                  name="ids")


def test_merging_instance_ids_gives_a_foreground_background_truth():
    ids = instance_ids()
    truth = merge_classes(ids, into="nucleus", unlabelled="background")
    d = np.asarray(ids.data)
    assert truth.class_names == ["background", "nucleus"]
    assert np.array_equal(np.asarray(truth.data), np.where(d > 0, 2, 1))
    assert truth.spacing == ids.spacing and truth.unit == "um"
    fg = merge_classes(ids, into="nucleus")  # unlabelled stays unlabelled (what training ignores)
    assert fg.class_names == ["nucleus"] and np.array_equal(np.asarray(fg.data), (d > 0).astype(np.uint8))


def test_merging_some_classes_keeps_the_others_names_colours_and_voxels(seg):
    d = np.asarray(seg.data)
    got = merge_classes(seg, into="pore", classes=["speck"])  # specks join an existing class
    assert got.class_names == ["pore", "metal"] and np.array_equal(np.asarray(got.data), np.where(d == 3, 1, d))
    assert [c.color for c in got.classes] == [c.color for c in seg.classes[:2]]
    new = merge_classes(seg, into="solid", classes=["metal", "speck"])  # a new name at the first merged place
    assert new.class_names == ["pore", "solid"] and np.array_equal(np.asarray(new.data), np.where(d == 1, 1, 2))


def test_merging_streams_a_scan_on_disk_slab_by_slab(tmp_path):
    ids = instance_ids(shape=(70, 16, 18))
    disk = np.lib.format.open_memmap(tmp_path / "ids.npy", mode="w+", dtype=np.uint8, shape=ids.shape)
    disk[:] = ids.data
    on_disk = ids.with_data(np.load(tmp_path / "ids.npy", mmap_mode="r"))
    got = merge_classes(on_disk, into="nucleus", unlabelled="background")
    assert not isinstance(got.data, np.ndarray)  # chunked scratch on disk, like its input, not memory
    assert np.array_equal(np.asarray(got.data[:]), np.where(np.asarray(ids.data) > 0, 2, 1))


def test_merging_names_its_errors(seg):
    with pytest.raises(InputError, match="unknown class 'spek'.*speck"):
        merge_classes(seg, into="x", classes=["spek"])
    with pytest.raises(ParameterError, match="unlabelled='metal' names a class that is merged"):
        merge_classes(seg, into="solid", classes=["metal", "speck"], unlabelled="metal")
    with pytest.raises(ParameterError, match="empty"):
        merge_classes(seg, into=" ")
    bad = seg.with_data(np.where(np.asarray(seg.data) == 3, 7, seg.data).astype(np.uint8))
    with pytest.raises(InputError, match="value 7 in slices 0..15.*classes 1..3"):
        merge_classes(bad, into="x")
