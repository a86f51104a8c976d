"""OME-Zarr outputs checked by a reference reader of the NGFF spec (ome-zarr-models): images, and labels as
NGFF label images with their class colours and names."""

import json

import numpy as np
import pytest
import zarr
from ome_zarr_models.v04 import Image
from ome_zarr_models.v04.image_label import ImageLabel

from damselfly.engine import Labels, Volume, io, make_classes, phantoms


@pytest.fixture(scope="module")
def casting():
    return phantoms.casting((40, 72, 72))


def test_a_saved_image_is_a_valid_ngff_image_with_its_pyramid_scale_and_unit(casting, tmp_path):
    vol, _ = casting
    vol = Volume(np.asarray(vol.data), spacing=(0.5, 0.25, 0.25), origin=(1.0, 2.0, 3.0), unit="mm")
    io.write_volume(vol, tmp_path / "scan.zarr")
    img = Image.from_zarr(zarr.open_group(str(tmp_path / "scan.zarr"), mode="r"))
    ms = img.attributes.multiscales[0]
    assert [a.name for a in ms.axes] == ["z", "y", "x"] and {a.unit for a in ms.axes} == {"millimeter"}
    scales = [d.coordinateTransformations[0].scale for d in ms.datasets]
    assert scales[0] == [0.5, 0.25, 0.25] and scales[1] == [1.0, 0.5, 0.5] and len(scales) == 2
    assert ms.datasets[0].coordinateTransformations[1].translation == [1.0, 2.0, 3.0]
    back = io.read_volume(tmp_path / "scan.zarr")
    assert back.spacing == (0.5, 0.25, 0.25) and back.origin == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(np.asarray(back.data), np.asarray(vol.data))


def test_saved_labels_are_an_ngff_label_image_with_class_colours_and_names(casting, tmp_path):
    _, truth = casting
    io.write_volume(truth, tmp_path / "seg.zarr")
    label = ImageLabel.from_zarr(zarr.open_group(str(tmp_path / "seg.zarr"), mode="r"))
    meta = label.attributes.image_label
    assert [(c.label_value, tuple(c.rgba)) for c in meta.colors] == [(c.index, tuple(c.color)) for c in truth.classes]
    props = zarr.open_group(str(tmp_path / "seg.zarr"), mode="r").attrs["image-label"]["properties"]
    assert [p["name"] for p in props] == [c.name for c in truth.classes]
    (tmp_path / "seg.zarr.json").unlink()  # without our sidecar, the NGFF metadata names the classes
    back = io.read_labels(tmp_path / "seg.zarr")
    assert [(c.name, c.color) for c in back.classes] == [(c.name, c.color) for c in truth.classes]
    np.testing.assert_array_equal(np.asarray(back.data), np.asarray(truth.data))


def test_a_label_image_written_by_another_tool_is_read_with_its_names(tmp_path):
    data = np.zeros((4, 8, 8), np.uint16)
    data[:, :4] = 1
    data[:, 4:, :4] = 2
    root = zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=data, chunks=(4, 8, 8))
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": n, "type": "space"} for n in "zyx"],
                                  "datasets": [{"path": "0", "coordinateTransformations": [
                                      {"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]
    root.attrs["image-label"] = {"version": "0.4", "colors": [{"label-value": 1, "rgba": [0, 255, 0, 255]},
                                                             {"label-value": 2, "rgba": [255, 0, 0, 255]}],
                                 "properties": [{"label-value": 1, "name": "cell"}, {"label-value": 2, "name": "nucleus"}]}
    ImageLabel.from_zarr(root)  # what we test against is valid
    lab = io.read_labels(tmp_path / "other.zarr")
    assert [c.name for c in lab.classes] == ["cell", "nucleus"] and lab.classes[1].color == (255, 0, 0, 255)
    np.testing.assert_array_equal(np.asarray(lab.data), data)


def test_object_ids_are_a_label_image_too(tmp_path):
    ids = np.arange(4 * 8 * 8, dtype=np.uint32).reshape(4, 8, 8) % 7
    objs = Labels(ids, classes=make_classes(["object"]), metadata={"objects": 6})
    io.write_volume(objs, tmp_path / "objects.zarr")
    ImageLabel.from_zarr(zarr.open_group(str(tmp_path / "objects.zarr"), mode="r"))
    assert json.loads((tmp_path / "objects.zarr.json").read_text())["classes"][0]["name"] == "object"
    back = io.read_labels(tmp_path / "objects.zarr")
    assert back.classes[0].name == "object" and int(np.asarray(back.data).max()) == 6
