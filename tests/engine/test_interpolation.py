"""interpolate_labels: painted shapes carried between painted slices along the image's edges."""

import numpy as np
import pytest
import zarr

from damselfly.engine import InputError, Labels, Volume, make_classes
from damselfly.engine.actions.interpolation import interpolate_labels
from damselfly.engine.io import _files as io

CLASSES = make_classes(["air", "disc"])


def disc_scan(shift: float, n=11, size=40, r=9, noise=0.05, seed=0):
    """A bright disc whose centre moves ``shift`` voxels along x per slice; its true labels."""
    yy, xx = np.mgrid[:size, :size]
    truth = np.stack([np.where(np.hypot(yy - 20, xx - 14 - shift * z) <= r, 2, 1) for z in range(n)]).astype(np.uint8)
    grey = (truth == 2).astype(np.float32) + np.random.default_rng(seed).normal(0, noise, truth.shape)
    return Volume(grey.astype(np.float32), spacing=(1.0, 1.0, 1.0)), truth


def painted_at(truth, zs):
    lab = np.zeros_like(truth)
    lab[zs] = truth[zs]
    return Labels(lab, spacing=(1.0, 1.0, 1.0), classes=CLASSES, name="painted")


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_two_identical_painted_slices_give_the_same_shape_in_between():
    vol, truth = disc_scan(shift=0.0)
    out = np.asarray(interpolate_labels(vol, painted_at(truth, [0, 10])).data)
    assert np.array_equal(out, truth)


def test_a_moving_shape_follows_the_image_not_the_painted_slices():
    vol, truth = disc_scan(shift=1.0)  # the disc moves 10 voxels between the two painted slices
    out = np.asarray(interpolate_labels(vol, painted_at(truth, [0, 10])).data)
    inner = slice(1, 10)
    ours = dice(out[inner] == 2, truth[inner] == 2)
    nearest = dice(np.stack([truth[0] if z < 5 else truth[10] for z in range(1, 10)]) == 2, truth[inner] == 2)
    assert ours > 0.97 and ours > nearest + 0.1


def test_painted_voxels_kept_ends_unlabelled_and_bad_input_refused():
    vol, truth = disc_scan(shift=0.5)
    lab = painted_at(truth, [2, 5, 8])
    res = interpolate_labels(vol, lab)
    out = np.asarray(res.data)
    assert np.array_equal(out[[2, 5, 8]], truth[[2, 5, 8]]) and res.class_names == ["air", "disc"]
    assert not out[:2].any() and not out[9:].any() and out[3:8].all()
    assert res.metadata["interpolated_between"] == [2, 5, 8]
    with pytest.raises(InputError, match="at least two painted"):
        interpolate_labels(vol, painted_at(truth, [4]))
    with pytest.raises(InputError, match="does not match"):
        interpolate_labels(vol.with_data(np.asarray(vol.data)[:5]), lab)


def test_a_scan_on_disk_is_interpolated_gap_by_gap_into_chunked_storage(tmp_path):
    vol, truth = disc_scan(shift=0.0)
    io.write_volume(vol, tmp_path / "s.zarr")
    lazy = io.read_volume(tmp_path / "s.zarr")
    res = interpolate_labels(lazy, painted_at(truth, [0, 10]).with_data(painted_at(truth, [0, 10]).data))
    assert isinstance(res.data, zarr.Array) and np.array_equal(np.asarray(res.data), truth)
