"""OME-Zarr outputs checked by a reference reader of the NGFF spec (ome-zarr-models): images, and labels as
NGFF label images with their class colours and names."""

import json

import numpy as np
import pytest
import zarr
from ome_zarr_models.v04 import Image
from ome_zarr_models.v04.image_label import ImageLabel

from damselfly.engine import Labels, Volume, io, make_classes, phantoms
from damselfly.engine.core.errors import ParameterError
from damselfly.macros.cli import main


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


def test_labels_saved_into_their_image_are_listed_in_its_ngff_labels_group(casting, tmp_path):
    vol, truth = casting
    io.write_volume(vol, tmp_path / "scan.zarr")
    io.write_volume(truth, tmp_path / "scan.zarr" / "labels" / "classes")
    pores = Labels((np.asarray(truth.data) == 3).astype(np.uint8), classes=make_classes(["pore"]))
    io.write_volume(pores, tmp_path / "scan.zarr" / "labels" / "pores")
    io.write_volume(truth, tmp_path / "scan.zarr" / "labels" / "classes")  # saved again: listed once
    root = zarr.open_group(str(tmp_path / "scan.zarr"), mode="r")
    img = Image.from_zarr(root)
    assert img.labels is not None and img.labels.attributes.labels == ["pores", "classes"]
    for name in ("classes", "pores"):
        label = ImageLabel.from_zarr(root["labels"][name])
        assert label.attributes.image_label.source.image == "../../"
    assert not (tmp_path / "scan.zarr" / "labels" / "classes.json").exists()  # NGFF holds the classes
    back = io.read_labels(tmp_path / "scan.zarr" / "labels" / "classes")
    assert [(c.name, c.color) for c in back.classes] == [(c.name, c.color) for c in truth.classes]
    np.testing.assert_array_equal(np.asarray(back.data), np.asarray(truth.data))
    np.testing.assert_array_equal(np.asarray(io.read_volume(tmp_path / "scan.zarr").data), np.asarray(vol.data))


@pytest.mark.parametrize("case, message", [
    ("volume", "only labels are saved into an image's labels/ group"),
    ("no image", "does not exist or is no OME-Zarr image: save the image there first"),
    ("shape", "cannot go into the image"),
])
def test_labels_that_cannot_join_an_image_are_refused_before_anything_is_written(casting, tmp_path, case, message):
    vol, truth = casting
    io.write_volume(vol, tmp_path / "scan.zarr")
    before = sorted(p.name for p in (tmp_path / "scan.zarr").iterdir())
    obj = {"volume": vol, "no image": truth,
           "shape": Labels(np.asarray(truth.data)[:-2], classes=truth.classes)}[case]
    image = "other.zarr" if case == "no image" else "scan.zarr"
    with pytest.raises(ParameterError, match=message):
        io.write_volume(obj, tmp_path / image / "labels" / "x")
    assert sorted(p.name for p in (tmp_path / "scan.zarr").iterdir()) == before
    assert not (tmp_path / "other.zarr").exists()


def test_a_macro_stores_labels_with_the_image_it_saved_but_never_in_an_input_image(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    vol, _ = phantoms.casting((24, 40, 40))
    io.write_volume(vol, tmp_path / "g.tif")
    head = 'version 1\nraw = load("g.tif")\ncal = calibrate(raw)\nseg = threshold(cal, names=["air", "metal"])\n'
    (tmp_path / "m.dfm").write_text(head + 'save(cal, "scan.zarr")\nsave(seg, "scan.zarr/labels/seg")\n')
    assert main(["run", "m.dfm", "--out", "o"]) == 0
    root = zarr.open_group(str(tmp_path / "o" / "scan.zarr"), mode="r")
    assert Image.from_zarr(root).labels.attributes.labels == ["seg"]
    assert [c.name for c in io.read_labels(tmp_path / "o" / "scan.zarr" / "labels" / "seg").classes] == ["air", "metal"]
    # the saved image as the input of another run: its folder is not written into
    (tmp_path / "n.dfm").write_text('version 1\nraw = load("o/scan.zarr")\nseg = threshold(raw)\n'
                                    'save(seg, "../o/scan.zarr/labels/again")\n')
    assert main(["run", "n.dfm", "--out", "o2", "--allow-outside-out"]) == 1
    assert "lies inside the run's input folder" in capsys.readouterr().err
    assert Image.from_zarr(zarr.open_group(str(tmp_path / "o" / "scan.zarr"), mode="r")).labels.attributes.labels == ["seg"]
