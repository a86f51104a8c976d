"""The out-of-core distance transform's scratch store: the phase voxels' fields only, row by row."""

import os

import numpy as np
import pytest

from damselfly.engine.thickness._phase_rows import DenseRows, PhaseRows


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    mask = rng.random((7, 9, 11)) < 0.3
    fields = rng.integers(-32000, 32000, (3, *mask.shape)).astype(np.int16) * mask
    return mask, fields


@pytest.mark.parametrize("with_x", [True, False])
def test_boxes_read_back_what_slabs_of_planes_or_rows_wrote(volume, with_x):
    mask, f = volume
    planes, rows = PhaseRows(mask.shape, 3, with_x), PhaseRows(mask.shape, 3, with_x)
    for z in range(0, 7, 3):
        planes.write(z, 0, mask[z:z + 3], f[:, z:z + 3])
    for y in (4, 0, 8):  # any order
        rows.write(0, y, mask[:, y:y + 4], f[:, :, y:y + 4])
    for store in (planes, rows):
        for box in [(slice(0, 7), slice(2, 8), slice(None)), (slice(1, 6), slice(None), slice(None)),
                    (slice(3, 4), slice(5, 6), slice(None)), (slice(2, 2), slice(None), slice(None))]:
            np.testing.assert_array_equal(store.read(box, mask[box]), f[(slice(None), *box)])
    if with_x:
        box = (slice(1, 6), slice(2, 9), slice(3, 8))  # part of the rows
        np.testing.assert_array_equal(rows.read(box), f[(slice(None), *box)])


def test_only_the_phase_voxels_are_written(volume):
    mask, f = volume
    store = PhaseRows(mask.shape, 2, with_x=True)
    store.write(0, 0, mask, f[:2])
    n = int(mask.sum())
    assert store.records == n and np.array_equal(store.stop - store.start, mask.sum(axis=2))
    rec = np.frombuffer(os.pread(store.file.fd, n * 3 * 2 + 100, 0), np.int16)[:n * 3].reshape(n, 3)
    z, y, x = np.nonzero(mask)  # raster order: x first, then the fields
    np.testing.assert_array_equal(rec, np.stack([x, f[0][mask], f[1][mask]], axis=1))
    with pytest.raises(ValueError, match="records for a store of"):  # more than it was sized for
        PhaseRows(mask.shape, 2, capacity=n - 1).write(0, 0, mask, f[:2])
    empty = PhaseRows(mask.shape, 2)
    empty.write(0, 0, np.zeros_like(mask), f[:2])
    assert empty.records == 0 and not empty.read((slice(None),) * 3, np.zeros_like(mask)).any()


def test_dense_rows_read_back_the_same_boxes(volume):
    mask, f = volume
    dense = DenseRows(mask.shape, 3)
    for y in (4, 0, 8):
        dense.write(0, y, mask[:, y:y + 4], f[:, :, y:y + 4])
    box = (slice(1, 6), slice(2, 9), slice(3, 8))
    got = dense.read(box)
    assert all(a.flags.c_contiguous for a in got)
    np.testing.assert_array_equal(np.stack(got), f[(slice(None), *box)])
