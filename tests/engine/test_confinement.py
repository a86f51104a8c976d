"""Files that name other files are inputs confined to their folder (issue 31): HDF5 external storage,
virtual datasets and external links; Zarr chunks that are symlinks. Every crafted file is built here."""

import json
import os

import h5py
import numpy as np
import pytest

from damselfly.engine.core.errors import InputError
from damselfly.engine.io import _files as io


@pytest.fixture()
def secret(tmp_path):
    """A file outside the input's folder that must never be read as voxels."""
    p = tmp_path / "secret.bin"
    p.write_bytes(bytes(range(256)) * 4)
    return p


@pytest.fixture()
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    return d


def test_hdf5_external_storage_outside_the_folder_is_refused(inputs, secret):
    with h5py.File(inputs / "ext.h5", "w") as f:
        f.create_dataset("vol", shape=(4, 8, 8), dtype="u1", external=[(str(secret), 0, 256)])
    with pytest.raises(InputError, match="external storage reads .*outside the input's folder"):
        io.read_volume(inputs / "ext.h5")
    with h5py.File(inputs / "rel.h5", "w") as f:  # a relative name climbing out
        f.create_dataset("vol", shape=(4, 8, 8), dtype="u1", external=[("../secret.bin", 0, 256)])
    with pytest.raises(InputError, match="outside the input's folder"):
        io.read_volume(inputs / "rel.h5")


def test_hdf5_external_storage_beside_the_file_is_read_and_listed(inputs, tmp_path, monkeypatch):
    raw = np.arange(256, dtype=np.uint8)
    (inputs / "data.raw").write_bytes(raw.tobytes())
    with h5py.File(inputs / "ext.h5", "w") as f:
        f.create_dataset("vol", shape=(4, 8, 8), dtype="u1", external=[("data.raw", 0, 256)])
    monkeypatch.chdir(tmp_path)  # relative to the file's folder, not the working folder
    vol = io.read_volume(inputs / "ext.h5")
    np.testing.assert_array_equal(np.asarray(vol.data).ravel(), raw)
    assert vol.metadata["files"] == [str((inputs / "data.raw").resolve())]


def test_hdf5_virtual_dataset_and_external_link_outside_the_folder_are_refused(inputs, tmp_path):
    with h5py.File(tmp_path / "outside.h5", "w") as f:
        f["d"] = np.ones((4, 8, 8), np.float32)
    layout = h5py.VirtualLayout(shape=(4, 8, 8), dtype="f4")
    layout[:] = h5py.VirtualSource(str(tmp_path / "outside.h5"), "d", shape=(4, 8, 8))
    with h5py.File(inputs / "virtual.h5", "w") as f:
        f.create_virtual_dataset("v", layout)
    with pytest.raises(InputError, match="a virtual dataset's source reads .*outside"):
        io.read_volume(inputs / "virtual.h5")
    with h5py.File(inputs / "link.h5", "w") as f:
        f["vol"] = h5py.ExternalLink(str(tmp_path / "outside.h5"), "/d")
    with pytest.raises(InputError, match="an external link reads .*outside"):
        io.read_volume(inputs / "link.h5", dataset="vol")


def test_hdf5_virtual_dataset_and_link_inside_the_folder_are_read_and_listed(inputs):
    with h5py.File(inputs / "part.h5", "w") as f:
        f["d"] = np.full((4, 8, 8), 7, np.float32)
    layout = h5py.VirtualLayout(shape=(4, 8, 8), dtype="f4")
    layout[:] = h5py.VirtualSource("part.h5", "d", shape=(4, 8, 8))
    with h5py.File(inputs / "virtual.h5", "w") as f:
        f.create_virtual_dataset("v", layout)
        f["linked"] = h5py.ExternalLink("part.h5", "/d")
    vol = io.read_volume(inputs / "virtual.h5", dataset="v")
    assert float(np.asarray(vol.data).mean()) == 7.0
    assert vol.metadata["files"] == [str((inputs / "part.h5").resolve())]
    linked = io.read_volume(inputs / "virtual.h5", dataset="linked")
    assert float(np.asarray(linked.data).mean()) == 7.0 and linked.metadata["files"] == vol.metadata["files"]


def test_a_run_record_lists_the_files_an_hdf5_input_read(inputs, tmp_path):
    from damselfly.macros.runner import run_file

    (inputs / "data.raw").write_bytes(np.arange(256, dtype=np.uint8).tobytes())
    with h5py.File(inputs / "ext.h5", "w") as f:
        f.create_dataset("vol", shape=(4, 8, 8), dtype="u1", external=[("data.raw", 0, 256)])
    m = inputs / "m.dfm"
    m.write_text('version 1\nparam scan = "ext.h5"\nraw = load(scan)\nsave(raw, "copy.tif")\n')
    run_file(m, out_dir=tmp_path / "out")
    rec = json.loads((tmp_path / "out" / "run.json").read_text())
    assert str((inputs / "data.raw").resolve()) in rec["inputs"]


@pytest.mark.parametrize("fmt", [2, 3])
def test_a_zarr_chunk_that_is_a_symlink_out_of_the_store_is_refused(inputs, secret, fmt):
    import zarr

    store = inputs / "scan.zarr"
    z = zarr.create_array(str(store), shape=(4, 8, 8), chunks=(2, 8, 8), dtype="u1", zarr_format=fmt,
                          compressors=None)
    z[:] = 1
    chunk = next(p for p in store.rglob("*") if p.is_file() and p.name not in (".zarray", "zarr.json", ".zattrs"))
    chunk.unlink()
    os.symlink(secret, chunk)
    vol = io.read_volume(store)
    with pytest.raises(InputError, match="outside the store"):
        np.asarray(vol.data[:])
    # a symlink inside the store is fine
    chunk.unlink()
    other = next(p for p in store.rglob("*") if p.is_file() and p.name not in (".zarray", "zarr.json", ".zattrs"))
    os.symlink(other, chunk)
    assert np.asarray(io.read_volume(store).data[:]).min() == 1


def test_a_zarr_chunk_inflating_beyond_its_declared_size_is_refused_before_it_inflates(inputs):
    import zlib

    import zarr
    from numcodecs import Zlib

    store = inputs / "bomb.zarr"
    z = zarr.open_array(str(store), mode="w", shape=(4, 64, 64), chunks=(4, 64, 64), dtype="u1", zarr_format=2,
                        compressor=Zlib(level=9))
    z[:] = 3
    (store / "0.0.0").write_bytes(zlib.compress(bytes(64 << 20), 9))  # 64 MiB of zeros in ~64 KB
    vol = io.read_volume(store)
    with pytest.raises(InputError, match="inflates beyond the 16,384 bytes"):
        np.asarray(vol.data[:])


def test_a_zarr_of_far_too_many_chunks_is_refused_with_the_count_and_a_rechunk_hint(inputs):
    import zarr

    store = inputs / "tiny_chunks.zarr"
    zarr.open_array(str(store), mode="w", shape=(4096, 4096, 4096), chunks=(1, 1, 1), dtype="u1", zarr_format=2)
    with pytest.raises(InputError, match="68,719,476,736 chunks .*rechunk"):
        io.read_volume(store)
