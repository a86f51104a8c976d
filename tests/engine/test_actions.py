import numpy as np
import pytest
import zarr

from damselfly.engine import InputError, Labels, ParameterError, Session, Settings, Volume, make_classes
from damselfly.engine.actions.io_actions import load
from damselfly.engine.actions.processing import calibrate, crop, evaluate, threshold
from damselfly.engine.io import _files as io


def labels(data, names):
    return Labels(np.asarray(data, np.uint8), classes=make_classes(names), name="l")


def test_percentile_calibration_maps_percentiles_to_0_and_1(rng):
    v = Volume(rng.normal(1000, 100, (20, 30, 30)).astype(np.float32))
    out = calibrate(v, method="percentile", low=1, high=99)
    lo, hi = np.percentile(v.data, [1, 99])
    assert out.data.dtype == np.float32
    assert out.data.min() == 0 and out.data.max() == 1
    np.testing.assert_allclose(out.data, np.clip((v.data - lo) / (hi - lo), 0, 1), atol=1e-5)
    assert out.spacing == v.spacing


def test_two_point_calibration_with_boxes_and_with_classes():
    data = np.full((10, 10, 10), 100.0, np.float32)
    data[5:] = 300.0
    v = Volume(data)
    boxes = calibrate(v, method="two_point", regions=[[0, 0, 0, 5, 10, 10], [5, 0, 0, 10, 10, 10]],
                      values=[0.0, 1000.0])
    assert boxes.data[0, 0, 0] == pytest.approx(0.0) and boxes.data[9, 9, 9] == pytest.approx(1000.0)
    lab = labels(np.where(np.arange(10)[:, None, None] < 5, 1, 2) * np.ones((10, 10, 10)), ["air", "al"])
    by_class = calibrate(v, method="two_point", regions=["air", "al"], labels=lab, values=[0.0, 1000.0])
    np.testing.assert_allclose(by_class.data, boxes.data)
    with pytest.raises(InputError, match=r"unknown class 'alu'; did you mean 'al'\?"):
        calibrate(v, method="two_point", regions=["air", "alu"], labels=lab)
    with pytest.raises(ParameterError, match="outside the volume"):
        calibrate(v, method="two_point", regions=[[0, 0, 0, 5, 10, 10], [5, 0, 0, 11, 10, 10]])


def test_histogram_matching_takes_the_reference_distribution(rng):
    ref = Volume(rng.normal(50, 5, (10, 20, 20)).astype(np.float32))
    v = Volume(rng.normal(500, 80, (10, 20, 20)).astype(np.float32))
    out = calibrate(v, method="match", reference=ref)
    assert abs(out.data.mean() - 50) < 1 and abs(out.data.std() - 5) < 1


def test_nan_in_a_volume_is_a_clear_error_naming_the_file(tmp_path):
    data = np.ones((4, 5, 5), np.float32)
    data[2, 2, 2] = np.nan
    io.write_volume(Volume(data), tmp_path / "nan.tif")
    with pytest.raises(InputError, match=r"nan\.tif: 1 voxel\(s\) are NaN"):
        load(str(tmp_path / "nan.tif"))
    fixed = load(str(tmp_path / "nan.tif"), nan="zero")
    assert fixed.data[2, 2, 2] == 0
    with pytest.raises(InputError, match="NaN"):
        calibrate(Volume(data, metadata={"source": "mem.tif"}))


def test_otsu_separates_two_phases(rng):
    truth = np.zeros((16, 32, 32), np.uint8)
    truth[:, :, 16:] = 1
    v = Volume(truth * 100 + rng.normal(0, 10, truth.shape))
    seg = threshold(v, names=["dark", "bright"])
    assert seg.class_names == ["dark", "bright"]
    assert np.mean(seg.data == truth + 1) > 0.99
    three = threshold(Volume(np.repeat(np.arange(3), 100).reshape(3, 10, 10).astype(float)),
                      method="multiotsu", classes=3)
    assert sorted(np.unique(three.data)) == [1, 2, 3]
    with pytest.raises(ParameterError, match="multiotsu"):
        threshold(v, classes=3)


def test_crop_keeps_physical_position_and_type():
    lab = Labels(np.arange(60, dtype=np.uint8).reshape(3, 4, 5) % 2 + 1, spacing=(2, 3, 4),
                 origin=(10, 20, 30), classes=make_classes(["a", "b"]))
    c = crop(lab, [1, 1, 2, 3, 4, 5])
    assert isinstance(c, Labels) and c.class_names == ["a", "b"]
    assert c.shape == (2, 3, 3) and c.origin == (12.0, 23.0, 38.0)
    np.testing.assert_array_equal(c.data, lab.data[1:3, 1:4, 2:5])
    with pytest.raises(ParameterError, match="outside the volume"):
        crop(lab, [0, 0, 0, 4, 4, 5])


def test_evaluate_dice_and_iou_by_class_name_ignoring_unlabelled():
    truth = labels([[[1, 1, 2, 2, 0, 0]]], ["air", "metal"])
    seg = labels([[[2, 1, 1, 1, 1, 2]]], ["metal", "air"])  # classes in another order
    t = evaluate(seg, truth)
    air, metal = t.row("class", "air"), t.row("class", "metal")
    # seg air (its index 2) on labelled voxels = {0}; truth air = {0, 1}: intersection 1
    assert air["dice"] == pytest.approx(2 * 1 / (2 + 1)) and air["iou"] == pytest.approx(1 / 2)
    # seg metal on labelled voxels = {1, 2, 3}; truth metal = {2, 3}: intersection 2
    assert metal["dice"] == pytest.approx(2 * 2 / (2 + 3)) and metal["iou"] == pytest.approx(2 / 3)
    assert metal["seg_voxels"] == 3 and air["truth_voxels"] == 2


def test_evaluate_missing_class_scores_zero_and_shape_mismatch_names_files():
    truth = labels(np.ones((2, 2, 2)) * 2, ["air", "pore"])
    seg = labels(np.ones((2, 2, 2)), ["air"])
    assert evaluate(seg, truth).row("class", "pore")["dice"] == 0
    other = Labels(np.ones((2, 2, 3), np.uint8), classes=make_classes(["air"]), metadata={"source": "seg.tif"})
    truth.metadata["source"] = "truth.tif"
    with pytest.raises(InputError, match=r"truth\.tif: shape \(2, 2, 2\).*does not match.*seg\.tif"):
        evaluate(other, truth)


def test_evaluate_against_a_truth_with_no_class_in_common_says_how_to_name_or_merge_them():
    """Another tool's instance ids (class1..class20) against a background/nucleus segmentation: not a table
    of twenty zeros but an error naming both sets of classes and the way out."""
    ids = labels(np.arange(24).reshape(2, 3, 4) % 7, [f"class{i}" for i in range(1, 7)])
    ids.metadata["source"] = "nuclei_labels.tif"
    seg = labels(np.ones((2, 3, 4)), ["background", "nucleus"])
    with pytest.raises(InputError, match=r"nuclei_labels\.tif: the segmentation and the truth share no class name "
                       r"\(segmentation: background, nucleus; truth: class1, class2, class3, class4, class5, … "
                       r"\(6 classes\)\).*merge_classes\(truth, into=\"nucleus\"\)"):
        evaluate(seg, ids)


def test_labels_file_of_wrong_shape_fails_through_the_session(tmp_path, casting_small):
    vol, truth = casting_small
    io.write_volume(vol, tmp_path / "scan.tif")
    io.write_volume(crop(truth, [0, 0, 0, 10, 10, 10]), tmp_path / "small_truth.tif")
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path))
    raw = s.run("load", "scan.tif")
    seg = s.run("threshold", raw)
    lab = s.run("load_labels", "small_truth.tif")
    with pytest.raises(InputError, match=r"small_truth\.tif: shape \(10, 10, 10\) \(z, y, x\) does not match"):
        s.run("evaluate", seg, lab)


def test_memory_mapped_input_is_streamed_into_a_disk_backed_result(tmp_path, casting_small):
    vol, _ = casting_small
    io.write_volume(vol, tmp_path / "big.npy")
    mapped = load(str(tmp_path / "big.npy"), mmap="yes")
    assert isinstance(mapped.data, np.memmap)
    cal_mapped = calibrate(mapped)
    seg_mapped = threshold(cal_mapped, method="multiotsu", classes=3)
    assert isinstance(cal_mapped.data, zarr.Array) and isinstance(seg_mapped.data, zarr.Array)
    cal = calibrate(vol)
    np.testing.assert_array_equal(np.asarray(cal_mapped.data), cal.data)
    assert seg_mapped.hash() == threshold(cal, method="multiotsu", classes=3).hash()
    io.write_volume(seg_mapped, tmp_path / "seg.tif")
    assert io.read_labels(tmp_path / "seg.tif").hash() == seg_mapped.hash()
