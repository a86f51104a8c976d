"""One bad file must not exhaust the machine, and gets a clear error naming it (issue: data safety)."""

import json
import time
import tracemalloc

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from damselfly.engine.actions.processing import calibrate
from damselfly.engine.core.data import Volume
from damselfly.engine.core.errors import InputError
from damselfly.engine.io import _files as io
from damselfly.engine.segmentation import _nets as nets
from damselfly.engine.segmentation._model import FORMAT, FORMAT_VERSION, Model, load_model, save_model


def good_doc():
    return {"arch": "unet", "hparams": {"base": 4, "levels": 2}, "input": "2d", "context": 1,
            "inputs": [{"name": "raw", "low": 0.0, "high": 1.0}],
            "classes": [{"index": 1, "name": "air", "color": [0, 0, 0, 255]},
                        {"index": 2, "name": "metal", "color": [80, 150, 230, 255]}]}


def good_state(doc=None):
    doc = doc or good_doc()
    torch.manual_seed(0)
    return nets.build(doc["arch"], 1, len(doc["classes"]), doc["hparams"]).state_dict()


def write_model(path, doc, state):
    full = dict(doc, format=FORMAT, format_version=doc.get("format_version", FORMAT_VERSION), name="m")
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"damselfly": json.dumps(full)})
    return path


def test_a_good_model_file_loads(tmp_path):
    p = save_model(Model(good_doc(), good_state()), tmp_path / "m.dfmodel")
    assert load_model(p).class_names == ["air", "metal"]


@pytest.mark.parametrize("change, words", [
    ({"hparams": {"base": 2048, "levels": 5}}, "'base' must be 1..256"),
    ({"hparams": {"base": 4, "levels": 60}}, "'levels' must be 1..8"),
    ({"hparams": {"base": 1e6}}, "'base' must be 1..256"),
    ({"hparams": {"base": 4.5}}, "whole number"),
    ({"hparams": {"bogus": 1}}, "no hyper-parameter 'bogus'"),
    ({"context": 1e7}, "field 'context'"),
    ({"context": 10_000_001}, "field 'context'"),
    ({"format_version": 99}, "newer than this Damselfly reads"),
    ({"format_version": "1"}, "field 'format_version'"),
    ({"format_version": 0}, "field 'format_version'"),
    ({"arch": "resnet"}, "unknown architecture"),
    ({"input": "4d"}, "field 'input'"),
    ({"inputs": [{"low": float("nan"), "high": 1.0}]}, "field 'inputs\\[0\\]'"),
    ({"inputs": [{"low": 2.0, "high": 1.0}]}, "field 'inputs\\[0\\]'"),
    ({"inputs": [{"low": 0.0, "high": 1.0}] * 17}, "field 'inputs'"),
    ({"classes": [{"name": "a", "color": [0, 0, 0]}] * 300}, "field 'classes'"),
    ({"classes": [{"name": "a"}, {"name": "b", "color": [1, 2, 3]}]}, "field 'classes\\[0\\]'"),
])
def test_crafted_documents_are_refused_before_anything_is_built(tmp_path, change, words):
    doc = dict(good_doc(), **change)
    p = write_model(tmp_path / "m.dfmodel", doc, good_state())
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=words) as e:
            load_model(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(p) in str(e.value)
    assert peak < 50 * 2 ** 20  # nothing of the size the document claims was allocated


@pytest.mark.parametrize("spoil, words", [
    (lambda s: {**s, next(iter(s)): s[next(iter(s))] * float("nan")}, "NaN or infinite"),
    (lambda s: {k: v.to(torch.int8) if v.is_floating_point() else v for k, v in s.items()}, "must be floating"),
    (lambda s: {k: v.bool() if v.is_floating_point() else v for k, v in s.items()}, "must be floating"),
    (lambda s: {k: v for i, (k, v) in enumerate(s.items()) if i}, "do not fit its architecture"),
    (lambda s: {**s, next(iter(s)): torch.zeros(3, 3)}, "has shape"),
])
def test_bad_weights_are_refused(tmp_path, spoil, words):
    p = write_model(tmp_path / "m.dfmodel", good_doc(), spoil(dict(good_state())))
    with pytest.raises(InputError, match=words):
        load_model(p)


def test_huge_label_value_is_refused_at_once(tmp_path):
    a = np.zeros((2, 4, 4), np.int64)
    a[0, 0, 0] = 3 * 10 ** 12
    np.save(tmp_path / "l.npy", a)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="holds label value 3000000000000"):
        io.read_labels(tmp_path / "l.npy")
    assert time.perf_counter() - t0 < 10  # not the 44 s (and MemoryError) of building 3e12 class names


@pytest.mark.parametrize("sidecar, words", [
    ("{not json", "not JSON"),
    ('{"classes": 5}', "must be a list"),
    ('{"classes": [{"color": [1, 2, 3]}]}', "non-empty 'name'"),
    ('{"classes": [{"name": "a", "color": "red"}]}', "'color' as 3 or 4 integers"),
    ('{"classes": [{"name": "a", "color": [1, 2, 999]}]}', "'color' as 3 or 4 integers"),
    ('[1, 2]', "non-empty 'name'"),
    ('"x"', "must be a list"),
])
def test_malformed_label_sidecars_get_clear_errors(tmp_path, sidecar, words):
    np.save(tmp_path / "l.npy", np.ones((2, 4, 4), np.uint8))
    (tmp_path / "l.npy.json").write_text(sidecar)
    with pytest.raises(InputError, match=words) as e:
        io.read_labels(tmp_path / "l.npy")
    assert "l.npy.json" in str(e.value)


def test_empty_and_absurd_headers_get_messages(tmp_path):
    (tmp_path / "z.nrrd").write_bytes(b"")
    (tmp_path / "z.nii").write_bytes(b"")
    for name in ("z.nrrd", "z.nii"):
        with pytest.raises(InputError) as e:
            io.read_volume(tmp_path / name)
        assert str(e.value).split(": ")[-1].strip(), str(e.value)  # a reason after the colon
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(tmp_path / "big.nii"))
    raw = bytearray((tmp_path / "big.nii").read_bytes())
    raw[42:48] = np.array([30000, 30000, 30000], "<i2").tobytes()  # dim[1..3] of the NIfTI-1 header
    (tmp_path / "big.nii").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="truncated or corrupt"):
        io.read_volume(tmp_path / "big.nii")
    (tmp_path / "big.nrrd").write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 30000 30000 30000\n"
                                        b"endian: little\nencoding: raw\n\n" + bytes(64))
    with pytest.raises(InputError, match="truncated or corrupt"):
        io.read_volume(tmp_path / "big.nrrd")


def test_zero_size_volumes_are_refused_at_load(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((0, 4, 4), np.float32))
    with pytest.raises(InputError, match="holds no voxels"):
        io.read_volume(tmp_path / "e.npy")


def test_calibrate_names_bool_and_empty_volumes():
    with pytest.raises(InputError, match="boolean"):
        calibrate(Volume(np.ones((2, 4, 4), bool)))
    with pytest.raises(InputError, match="no voxels"):
        calibrate(Volume(np.ones((0, 4, 4), np.float32)))
