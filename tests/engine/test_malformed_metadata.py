"""Malformed metadata is a clear error naming the field, never "internal error" (issue 31): OME-Zarr's
multiscales document and MetaImage headers, crafted here."""

import json

import numpy as np
import pytest

from damselfly.engine.core import phantoms
from damselfly.engine.core.errors import InputError
from damselfly.engine.io import _files as io


@pytest.fixture()
def ome(tmp_path):
    vol, _ = phantoms.grains((8, 16, 16), seed=0)
    path = tmp_path / "x.ome.zarr"
    io.write_volume(vol, path)
    return path


def _edit(path, change):
    doc = json.loads((path / ".zattrs").read_text())
    change(doc["multiscales"])
    (path / ".zattrs").write_text(json.dumps(doc))


@pytest.mark.parametrize("change, field", [
    (lambda ms: ms[0]["datasets"][0].update(path="../../etc"), "datasets[0].path"),
    (lambda ms: ms[0]["datasets"][0].update(path="/etc"), "datasets[0].path"),
    (lambda ms: ms[0]["datasets"][0].update(path="missing"), "is no array"),
    (lambda ms: ms[0].update(datasets={}), "'datasets'"),
    (lambda ms: ms[0].update(axes=5), "'axes'"),
    (lambda ms: ms[0].update(axes=["z", "y"]), "2 axes for an array of 3"),
    (lambda ms: ms[0]["datasets"][0].update(coordinateTransformations=[{"type": "scale", "scale": ["a", 1, 1]}]),
     "coordinateTransformations[0].scale"),
    (lambda ms: ms[0]["datasets"][0].update(coordinateTransformations=[{"type": "scale", "scale": [0, 1, 1]}]),
     "scale must be positive"),
    (lambda ms: ms[0]["datasets"][0].update(coordinateTransformations=[{"type": "rotate"}]), "type 'rotate'"),
    (lambda ms: ms[0]["datasets"][0].update(coordinateTransformations={"type": "scale"}), "must be a list"),
    (lambda ms: ms.__setitem__(0, "x"), "'multiscales'"),
])
def test_malformed_ome_zarr_metadata_names_the_field(ome, change, field):
    _edit(ome, change)
    with pytest.raises(InputError, match="OME-Zarr metadata") as e:
        io.read_volume(ome)
    assert field in str(e.value) and "internal" not in str(e.value)


@pytest.fixture()
def mhd(tmp_path):
    vol, _ = phantoms.grains((4, 6, 8), seed=0)
    io.write_volume(vol, tmp_path / "s.mhd")
    return tmp_path / "s.mhd", vol


@pytest.mark.parametrize("key, value, message", [
    ("DimSize", "8 6 -4", "DimSize"), ("DimSize", "99999999 99999999 99999999", "DimSize"),
    ("DimSize", "8 six 4", "bad MetaImage header"), ("ElementSpacing", "a b c", "must be numbers"),
    ("ElementSpacing", "1 0 1", "must be positive"), ("Offset", "0 nan 0", "finite"),
    ("ElementType", "MET_COMPLEX", "ElementType"),
])
def test_malformed_metaimage_headers_are_clear_errors(mhd, key, value, message):
    path, _ = mhd
    lines = [f"{key} = {value}" if line.startswith(f"{key} =") else line for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        io.read_volume(path)


def test_metaimage_header_size_minus_one_means_the_data_end_the_file(mhd):
    path, vol = mhd
    raw = path.with_suffix(".raw")
    raw.write_bytes(b"a header of any length" + raw.read_bytes())
    path.write_text(path.read_text() + "HeaderSize = -1\n")
    np.testing.assert_array_equal(np.asarray(io.read_volume(path).data), np.asarray(vol.data))
