import json

import numpy as np
import pytest

from damselfly.engine import InputError, Labels, Table, Volume, make_classes
from damselfly.engine.io import _files as io


def vol(dtype, shape=(5, 6, 7), spacing=(2.0, 0.5, 0.25), origin=(1.0, -2.0, 3.5), unit="um"):
    data = (np.arange(np.prod(shape)) % 200).reshape(shape).astype(dtype)
    return Volume(data, spacing=spacing, origin=origin, unit=unit, name="v")


@pytest.mark.parametrize("name", ["a.tif", "a.tiff", "a.nrrd", "a.nii.gz", "a.nii", "slices"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int32, np.float64])
def test_volume_roundtrip_keeps_data_and_geometry(tmp_path, name, dtype):
    v = vol(dtype)
    p = io.write_volume(v, tmp_path / name)
    w = io.read_volume(p)
    assert w.shape == v.shape
    np.testing.assert_array_equal(np.asarray(w.data), v.data)
    assert w.data.dtype == v.data.dtype
    assert w.spacing == pytest.approx(v.spacing)
    if name != "slices":  # a slice folder keeps x/y/z spacing, origin only in the ImageJ tags
        assert w.origin == pytest.approx(v.origin)
    assert w.unit == "um"


def test_npy_roundtrip_and_spacing_override(tmp_path):
    v = vol(np.int16)
    io.write_volume(v, tmp_path / "a.npy")
    w = io.read_volume(tmp_path / "a.npy", spacing=(3, 2, 1))
    np.testing.assert_array_equal(w.data, v.data)
    assert w.spacing == (3.0, 2.0, 1.0)


def test_labels_roundtrip_keeps_class_names_and_colours(tmp_path):
    data = np.zeros((4, 5, 6), np.uint8)
    data[1:3, 1:4, 2:5] = 2
    data[0, 0, 0] = 1
    lab = Labels(data, spacing=(1, 2, 3), name="l",
                 classes=make_classes(["air", "metal"], [(1, 2, 3, 255), (9, 8, 7, 128)]))
    for name in ("l.tif", "l.nrrd", "l.nii.gz", "l.npy"):
        io.write_volume(lab, tmp_path / name)
        back = io.read_labels(tmp_path / name)
        assert back.class_names == ["air", "metal"]
        assert back.classes[1].color == (9, 8, 7, 128)
        np.testing.assert_array_equal(back.data, data)
    assert json.loads((tmp_path / "l.tif.json").read_text())["classes"][0]["name"] == "air"


def test_labels_with_more_values_than_classes_is_an_error(tmp_path):
    io.write_volume(Volume(np.full((2, 3, 3), 3, np.uint8)), tmp_path / "l.tif")
    with pytest.raises(InputError, match=r"l\.tif.*value 3 but only 2 classes"):
        io.read_labels(tmp_path / "l.tif", classes=["a", "b"])


def test_table_csv_roundtrip(tmp_path):
    t = Table({"class": ["a", "b"], "dice": [0.5, 1 / 3], "n": [1, 2]})
    io.write_table(t, tmp_path / "t.csv")
    back = io.read_table(tmp_path / "t.csv")
    assert back.columns == t.columns


def test_truncated_tiff_is_a_clear_error_naming_the_file(tmp_path):
    io.write_volume(vol(np.uint16, shape=(20, 30, 30)), tmp_path / "scan.tif")
    raw = (tmp_path / "scan.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cut\.tif: .*(truncated|corrupt)"):
        io.read_volume(tmp_path / "cut.tif")


def test_garbage_files_are_clear_errors(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match=r"x\.tif: cannot read TIFF"):
        io.read_volume(tmp_path / "x.tif")
    (tmp_path / "x.nrrd").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"x\.nrrd: cannot read NRRD"):
        io.read_volume(tmp_path / "x.nrrd")
    with pytest.raises(InputError, match="no such file"):
        io.read_volume(tmp_path / "missing.tif")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(InputError, match="unknown file type"):
        io.read_volume(tmp_path / "x.png")


def test_memory_mapping_tiff_and_npy(tmp_path):
    v = vol(np.uint16, shape=(8, 16, 16))
    io.write_volume(v, tmp_path / "a.tif")
    io.write_volume(v, tmp_path / "a.npy")
    for name in ("a.tif", "a.npy"):
        w = io.read_volume(tmp_path / name, mmap=True)
        assert isinstance(w.data, np.memmap)
        np.testing.assert_array_equal(w.data, v.data)
        assert w.hash() == v.hash()


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    dest = tmp_path / "out.tif"
    dest.write_bytes(b"old content")
    with pytest.raises(RuntimeError):
        with io.atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_atomic_write_with_overwrite_off(tmp_path):
    dest = tmp_path / "out.tif"
    dest.write_bytes(b"x")
    with pytest.raises(InputError, match="exists already"):
        io.write_volume(vol(np.uint8), dest, overwrite=False)
    assert dest.read_bytes() == b"x"


def test_slice_folder_with_mismatched_slice_is_an_error(tmp_path):
    folder = tmp_path / "stack"
    io.write_volume(vol(np.uint8), folder)
    import tifffile

    tifffile.imwrite(folder / "slice_9999.tif", np.zeros((3, 3), np.uint8))
    with pytest.raises(InputError, match=r"slice_9999\.tif: slice shape"):
        io.read_volume(folder)


def test_written_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        p = io.write_volume(Volume(np.zeros((2, 3, 3), np.uint8)), tmp_path / "v.tif")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
