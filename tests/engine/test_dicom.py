"""DICOM series are never silently wrong (issue 31): two series in one folder are not merged, missing
slices and a degenerate orientation are errors, the x/y origin is kept."""

import numpy as np
import pytest

from damselfly.engine.core.errors import InputError
from damselfly.engine.io import _files as io

from .format_fuzzing import write_series

pydicom = pytest.importorskip("pydicom")


def test_two_series_in_one_folder_are_never_merged(tmp_path):
    write_series(tmp_path / "ct", [0, 1, 2, 3], uid="1.2.3.1", number=1, prefix="a")
    write_series(tmp_path / "ct", [0.5, 1.5, 2.5, 3.5], uid="1.2.3.2", number=2, prefix="b")
    with pytest.raises(InputError, match=r"holds 2 DICOM series.*1\.2\.3\.1 \(number 1, 'series 1', 4 slices\)"):
        io.read_volume(tmp_path / "ct")
    one = io.read_volume(tmp_path / "ct", series="2")
    assert one.shape == (4, 4, 5) and int(np.asarray(one.data)[0, 0, 0]) == 200
    assert io.read_volume(tmp_path / "ct", series="1.2.3.1").shape == (4, 4, 5)
    with pytest.raises(InputError, match="no series '7'"):
        io.read_volume(tmp_path / "ct", series="7")


def test_missing_slices_and_two_slices_in_one_place_are_errors(tmp_path):
    write_series(tmp_path / "gap", [0, 1, 2, 5, 6, 7])
    with pytest.raises(InputError, match=r"slices missing between s002.dcm and s003.dcm: 3 mm apart .*2 slice"):
        io.read_volume(tmp_path / "gap")
    write_series(tmp_path / "dup", [0, 1, 1, 2])
    with pytest.raises(InputError, match="two slices at one position"):
        io.read_volume(tmp_path / "dup")


def test_a_degenerate_orientation_is_an_error(tmp_path):
    write_series(tmp_path / "zero", [0, 1, 2], orientation=(0, 0, 0, 0, 0, 0))
    with pytest.raises(InputError, match="degenerate ImageOrientationPatient"):
        io.read_volume(tmp_path / "zero")
    write_series(tmp_path / "parallel", [0, 1, 2], orientation=(1, 0, 0, 1, 0, 0))
    with pytest.raises(InputError, match="degenerate"):
        io.read_volume(tmp_path / "parallel")


def test_the_x_y_origin_is_kept(tmp_path):
    write_series(tmp_path / "ct", [10, 11, 12], xy=(-120.5, 33.0))
    v = io.read_volume(tmp_path / "ct")
    assert v.origin == pytest.approx((10.0, 33.0, -120.5))


def test_the_load_action_takes_the_series(tmp_path):
    from damselfly.engine.actions.io_actions import load

    write_series(tmp_path / "ct", [0, 1, 2], uid="9.9", number=3, prefix="a")
    write_series(tmp_path / "ct", [0, 1, 2], uid="9.8", number=4, prefix="b")
    assert int(np.asarray(load(str(tmp_path / "ct"), series="4").data)[1, 0, 0]) == 401
