"""Scan formats users have: each round-trips a small volume with its values and spacing; readers are lazy."""

import os

import numpy as np
import pytest
import zarr

from damselfly.engine import InputError, Labels, Volume, make_classes
from damselfly.engine.actions.io_actions import load
from damselfly.engine.io import _files as io


@pytest.fixture
def vol():
    rng = np.random.default_rng(0)
    return Volume(rng.integers(0, 4000, (70, 40, 36)).astype(np.uint16), spacing=(0.5, 0.25, 0.2), unit="um",
                  origin=(1.0, 2.0, 3.0), name="s")


@pytest.mark.parametrize("name", ["s.zarr", "s.h5", "s.mrc", "s.mhd"])
def test_round_trip_values_and_spacing(tmp_path, vol, name):
    io.write_volume(vol, tmp_path / name)
    back = io.read_volume(tmp_path / name)
    assert back.shape == vol.shape and np.array_equal(np.asarray(back.data[:]), np.asarray(vol.data))
    assert np.allclose(back.spacing, vol.spacing if name != "s.mrc" else tuple(s * 1e4 for s in vol.spacing))
    assert back.unit == ("Å" if name == "s.mrc" else "um")


def test_ome_zarr_pyramid_levels_scale_and_laziness(tmp_path):
    import zarr

    vol = Volume(np.random.default_rng(1).integers(0, 4000, (70, 80, 72)).astype(np.uint16),
                 spacing=(0.5, 0.25, 0.2), unit="um")
    io.write_volume(vol, tmp_path / "s.zarr")
    attrs = dict(zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs)
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [a["unit"] for a in ms["axes"]] == ["micrometer"] * 3
    assert len(ms["datasets"]) == 2  # 70 x 80 x 72 -> 35 x 40 x 36, then too small for another level
    lvl1 = io.read_volume(tmp_path / "s.zarr", level=1)
    assert lvl1.shape == (35, 40, 36) and np.allclose(lvl1.spacing, (1.0, 0.5, 0.4))
    means = np.asarray(vol.data, np.float64).reshape(35, 2, 40, 2, 36, 2).mean(axis=(1, 3, 5))
    assert np.array_equal(np.asarray(lvl1.data[:]), np.rint(means).astype(np.uint16))  # 2 x 2 x 2 means
    assert np.allclose(lvl1.origin, (0.25, 0.125, 0.1))  # between the voxels they average (NGFF translation)
    lab = Labels(np.asarray(vol.data) % 3 + 1, spacing=vol.spacing, unit="um", classes=make_classes(["a", "b", "c"]))
    io.write_volume(lab, tmp_path / "l.zarr")
    lab1 = io.read_volume(tmp_path / "l.zarr", level=1)  # labels: every second voxel, never a mean
    assert np.array_equal(np.asarray(lab1.data[:]), np.asarray(lab.data)[::2, ::2, ::2]) and lab1.origin == (0, 0, 0)
    assert io.read_volume(tmp_path / "s.zarr").spacing == (0.5, 0.25, 0.2)
    full = io.read_volume(tmp_path / "s.zarr")
    assert not isinstance(full.data, np.ndarray)  # lazy: a Zarr array, read slab by slab
    with pytest.raises(InputError, match="levels 0..1"):
        io.read_volume(tmp_path / "s.zarr", level=5)
    io.write_volume(vol, tmp_path / "s.zarr")  # our own Zarr folder may be replaced


def test_plain_zarr_array_and_hdf5_dataset_choice(tmp_path, vol):
    import h5py
    import zarr

    z = zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=vol.shape, dtype="u2", chunks=(16, 40, 36))
    z[:] = np.asarray(vol.data)
    assert np.array_equal(np.asarray(io.read_volume(tmp_path / "plain.zarr").data[:]), np.asarray(vol.data))
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["raw/a"] = np.asarray(vol.data)
        f["raw/b"] = np.asarray(vol.data) + 1
        f["raw/a"].attrs["element_size_um"] = [0.5, 0.25, 0.2]
    with pytest.raises(InputError, match="name the dataset"):
        io.read_volume(tmp_path / "two.h5")
    a = load(str(tmp_path / "two.h5"), dataset="raw/a")
    assert a.spacing == (0.5, 0.25, 0.2) and a.unit == "um" and int(a.data[0, 0, 0]) == int(vol.data[0, 0, 0])
    with pytest.raises(InputError, match="no dataset 'raw/c'"):
        io.read_volume(tmp_path / "two.h5", dataset="raw/c")


def test_dicom_series_order_spacing_and_rescale(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "ct"
    folder.mkdir()
    truth = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    for i, k in enumerate([3, 0, 4, 1, 2]):  # files in shuffled order; position decides
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset(str(folder / f"{i}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.Rows, ds.Columns = 6, 7
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 10.0 + 2.5 * k]
        ds.PixelSpacing = [0.8, 0.6]
        ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
        ds.PixelData = truth[k].tobytes()
        ds.save_as(str(folder / f"{i}.dcm"), enforce_file_format=True)
    v = io.read_volume(folder)
    assert v.shape == (5, 6, 7) and np.allclose(v.spacing, (2.5, 0.8, 0.6)) and v.unit == "mm"
    assert np.allclose(np.asarray(v.data), truth * 2.0 - 1024)
    lazy = io.read_volume(folder, mmap=True)  # a big series: headers now, pixels when a slice is read
    assert not isinstance(lazy.data, np.ndarray) and lazy.shape == v.shape and lazy.spacing == v.spacing
    assert np.array_equal(lazy.data[2:4, 1], np.asarray(v.data)[2:4, 1]) and lazy.hash() == v.hash()
    del pydicom


def test_metaimage_data_file_is_confined_and_checked(tmp_path, vol):
    io.write_volume(vol, tmp_path / "s.mhd")
    text = (tmp_path / "s.mhd").read_text()
    (tmp_path / "evil.mhd").write_text(text.replace("ElementDataFile = s.raw", "ElementDataFile = ../x.raw"))
    with pytest.raises(InputError, match="outside the header's folder"):
        io.read_volume(tmp_path / "evil.mhd")
    (tmp_path / "short.raw").write_bytes(b"12")
    (tmp_path / "short.mhd").write_text(text.replace("ElementDataFile = s.raw", "ElementDataFile = short.raw"))
    with pytest.raises(InputError, match="shorter than the header says"):
        io.read_volume(tmp_path / "short.mhd")


@pytest.mark.parametrize("name", ["s.zarr", "s.h5", "s.mrc", "s.mhd"])
def test_volumes_without_a_unit_stay_without_one(tmp_path, name):
    v = Volume(np.ones((4, 8, 8), np.uint16))
    io.write_volume(v, tmp_path / name)
    assert io.read_volume(tmp_path / name).unit in ("voxel", "unknown")


def test_a_spacing_without_a_unit_is_unknown_not_voxel(tmp_path, vol):
    np.save(tmp_path / "s.npy", np.asarray(vol.data))
    assert load(str(tmp_path / "s.npy"), spacing=[0.02, 0.02, 0.02]).unit == "unknown"
    assert load(str(tmp_path / "s.npy"), spacing=[0.02, 0.02, 0.02], unit="mm").unit == "mm"
    assert load(str(tmp_path / "s.npy")).unit == "voxel"


def test_compressed_tiff_and_slice_folders_open_lazily(tmp_path, vol):
    import tifffile

    tifffile.imwrite(tmp_path / "c.tif", np.asarray(vol.data), compression="zlib")
    lazy = io.read_volume(tmp_path / "c.tif", mmap=True)
    assert not isinstance(lazy.data, np.ndarray) and np.array_equal(np.asarray(lazy.data[5:9]),
                                                                    np.asarray(vol.data)[5:9])
    io.write_volume(vol, tmp_path / "slices")
    folder = io.read_volume(tmp_path / "slices", mmap=True)
    assert not isinstance(folder.data, np.ndarray) and folder.shape == vol.shape
    assert np.array_equal(np.asarray(folder.data[10:12]), np.asarray(vol.data)[10:12])
    assert np.array_equal(np.asarray(io.read_volume(tmp_path / "slices").data), np.asarray(vol.data))


def test_results_of_lazy_inputs_go_to_disk_not_memory(tmp_path, vol):
    from damselfly.engine.actions.processing import calibrate, threshold

    io.write_volume(vol, tmp_path / "s.zarr")
    lazy = load(str(tmp_path / "s.zarr"))
    cal = calibrate(lazy)
    seg = threshold(cal)
    assert isinstance(cal.data, zarr.Array) and isinstance(seg.data, zarr.Array)  # chunked scratch, not RAM
    mem = calibrate(Volume(np.asarray(vol.data)))
    assert type(mem.data) is np.ndarray and np.array_equal(np.asarray(cal.data), mem.data)
    from damselfly.engine.actions.processing import crop

    box = [1, 2, 3, vol.shape[0] - 1, vol.shape[1] - 2, vol.shape[2]]
    cut = crop(lazy, box)  # streamed into chunked scratch too
    assert isinstance(cut.data, zarr.Array)
    assert np.array_equal(np.asarray(cut.data), np.asarray(vol.data)[1:-1, 2:-2, 3:])
    lab = threshold(lazy.with_data(np.asarray(vol.data)))  # two_point from class names, on the lazy scan
    two = calibrate(lazy, method="two_point", regions=["class1", "class2"], labels=lab)
    grey = np.asarray(vol.data, np.float64)
    means = [grey[np.asarray(lab.data) == k].mean() for k in (1, 2)]
    assert two.metadata["calibration"]["means"] == pytest.approx(means, rel=1e-12)


def test_too_little_scratch_space_is_a_clear_error_before_any_work(tmp_path, vol, monkeypatch):
    import shutil
    from collections import namedtuple

    from damselfly.engine import ResourceError
    from damselfly.engine.actions.processing import calibrate
    from damselfly.engine.core.volume_ops import ScratchFile

    io.write_volume(vol, tmp_path / "s.zarr")
    lazy = load(str(tmp_path / "s.zarr"))
    monkeypatch.setenv("DAMSELFLY_SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 6, 10 ** 6 - 100, 100))
    with pytest.raises(ResourceError, match=r"scratch space in .*scratch.*DAMSELFLY_SCRATCH"):
        calibrate(lazy)  # its result would go to chunked scratch
    with pytest.raises(ResourceError, match="GiB free"):
        ScratchFile((64, 64, 64), np.int16)
    assert not any((tmp_path / "scratch").iterdir())  # nothing half-written


def test_scratch_left_by_a_killed_run_is_removed_by_the_next_and_a_live_runs_is_kept(tmp_path, monkeypatch):
    import subprocess
    import sys

    from damselfly.engine.core import volume_ops

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("DAMSELFLY_SCRATCH", str(scratch))
    code = ("import os, signal, sys; from damselfly.engine.core import volume_ops as v; import numpy as np\n"
            "a = v.scratch_chunked((4, 8, 8), np.float32); a[:] = 1; f = v.ScratchFile((2, 2, 2), np.int16, True)\n"
            "print(flush=True); os.kill(os.getpid(), signal.SIGKILL)")  # dies holding both: no clean-up runs
    child = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DAMSELFLY_SCRATCH": str(scratch)})
    assert child.returncode == -9
    left = sorted(p.name for p in scratch.iterdir())
    assert len(left) == 2 and all(n.startswith(volume_ops.SCRATCH_PREFIX) for n in left)
    (scratch / "damselfly-scratch-unlocked-folder").mkdir()  # no owner file: not ours to judge
    pending = [scratch / "damselfly-pending-old", scratch / "damselfly-pending-new"]  # never locked: a run died
    for p in pending:
        p.write_bytes(b"")
    os.utime(pending[0], (0, 0))  # long ago: removed; the recent one may still be about to be locked
    live = volume_ops.ScratchFile((2, 2, 2), np.int16, shared=True)  # the first scratch here sweeps it
    kept = sorted([os.path.basename(live.path), "damselfly-pending-new", "damselfly-scratch-unlocked-folder"])
    assert sorted(p.name for p in scratch.iterdir()) == kept  # the killed run's two entries are gone
    assert volume_ops.remove_stale_scratch() == []  # this process's entry is locked: kept
    assert sorted(p.name for p in scratch.iterdir()) == kept
    path = live.path
    del live
    assert not os.path.exists(path)  # removed with its object, as before


def test_scratch_works_on_a_file_system_without_locks_and_is_then_never_swept(tmp_path, monkeypatch):
    import errno
    import fcntl

    from damselfly.engine.core import volume_ops

    monkeypatch.setenv("DAMSELFLY_SCRATCH", str(tmp_path))

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    arr = volume_ops.scratch_chunked((4, 8, 8), np.float32)
    arr[:] = 2.0
    assert float(np.asarray(arr[:]).sum()) == 2.0 * 256
    assert volume_ops.remove_stale_scratch() == []  # a lock it cannot take: left alone
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(volume_ops.SCRATCH_PREFIX)]) == 1
