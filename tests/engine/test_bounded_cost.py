"""One small file must not exhaust the machine (issue 31): sizes a header declares are checked against
the file before anything is allocated; nesting is bounded."""

import resource

import numpy as np
import pytest

from damselfly.engine.core.errors import InputError
from damselfly.engine.io import _files as io


def test_an_mrc_header_claiming_a_huge_extended_header_is_refused_before_reading_it(tmp_path):
    import mrcfile

    p = tmp_path / "small.mrc"
    with mrcfile.new(str(p)) as m:
        m.set_data(np.zeros((4, 8, 8), np.float32))
    raw = bytearray(p.read_bytes())
    raw[92:96] = np.int32(2 ** 31 - 1).tobytes()  # NSYMBT: a 2 GiB extended header in a 1 KB file
    p.write_bytes(bytes(raw))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError, match="extended header of 2,147,483,647 bytes"):
        io.read_volume(p)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: no 2 GiB read


def test_a_model_file_whose_json_is_nested_too_deep_is_a_clear_error(tmp_path):
    import torch
    from safetensors.torch import save_file

    p = tmp_path / "deep.dfmodel"
    save_file({"w": torch.zeros(1)}, str(p), metadata={"damselfly": "[" * 100_000 + "]" * 100_000})
    from damselfly.engine.segmentation import _model as model_io

    with pytest.raises(InputError, match="nested too deep"):
        model_io.load_model(p)


def test_a_local_cluster_is_bounded_like_jobs():
    from damselfly.engine.core.errors import ParameterError
    from damselfly.macros.cluster import connect

    with pytest.raises(ParameterError, match="1..1024 workers"):
        connect("local:100000")


def test_an_hdf5_chunk_inflating_beyond_its_declared_size_is_refused_before_it_inflates(tmp_path):
    """issue 31: HDF5 inflated a 250 KB chunk of a 16 KB array to 256 MB, then read it as zeros."""
    import zlib

    import h5py

    p = tmp_path / "bomb.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("v", shape=(8, 64, 64), chunks=(4, 64, 64), dtype="u1", compression="gzip")
        ds[:] = 1
        ds.id.write_direct_chunk((4, 0, 0), zlib.compress(bytes(64 << 20), 9), filter_mask=0)
    vol = io.read_volume(p)
    assert int(np.asarray(vol.data[0:4]).min()) == 1  # the good chunk reads
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError, match=r"chunk at \(4, 0, 0\) inflates beyond the 16,384 bytes"):
        np.asarray(vol.data[3:6])
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024  # KiB: not the 64 MiB


def test_saving_npy_streams_slab_by_slab(tmp_path):
    """issue 31: saving a store on disk to .npy read it whole first (MemoryError for 64 GiB)."""
    import zarr

    from damselfly.engine.core.data import Volume

    z = zarr.create_array(str(tmp_path / "big.zarr"), shape=(64, 256, 256), chunks=(16, 256, 256), dtype="f4")
    z[:] = np.arange(64, dtype=np.float32)[:, None, None]
    reads = []

    class Watched:
        shape, dtype, ndim = z.shape, z.dtype, 3

        def __getitem__(self, key):
            out = z[key]
            reads.append(out.nbytes)
            return out

    io.write_volume(Volume(Watched(), name="big"), tmp_path / "big.npy")
    back = np.load(tmp_path / "big.npy", mmap_mode="r")
    assert back.shape == z.shape and float(back[40, 3, 3]) == 40.0
    assert max(reads) <= 16 * 256 * 256 * 4  # a slab at a time, never the whole 16 MiB array
