"""The classic pixel classifier (``train(arch="forest")``): training, streamed inference, its model file."""

import json
from functools import partial

import numpy as np
import pytest
import torch

from damselfly.engine import InputError, ParameterError
from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.core import progress
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation import _classifier as classifier
from damselfly.engine.segmentation import _inference as inf
from damselfly.engine.segmentation import _model as model_io
from damselfly.engine.segmentation._training import dice_scores

CPU = RunContext(device="cpu")
train = partial(seg_actions.train, ctx=CPU)
infer = partial(seg_actions.infer, ctx=CPU)
SMALL = {"sigma_max": 3.0, "num_sigma": 3, "trees": 20}


@pytest.fixture(scope="module")
def painted(casting_small):
    vol, truth = casting_small
    return vol, truth, sparse_labels(truth, slices=[8, 20, 31])


@pytest.fixture(scope="module")
def forest_model(painted):
    vol, _, lab = painted
    return classifier.train([vol], lab, hparams=SMALL, seed=1)


def test_a_forest_from_three_painted_slices_segments_the_unseen_ones(painted):
    vol, truth, lab = painted
    model = train(vol, lab, arch="forest", seed=0)
    assert model.is_forest and model.config["history"]["samples"][0] > 1000
    seg = np.asarray(infer(model, vol).data)
    unseen = np.setdiff1d(np.arange(vol.shape[0]), [8, 20, 31])
    d = dice_scores(seg[unseen], np.asarray(truth.data)[unseen], 3)
    assert d[truth.class_index("air") - 1] > 0.95 and d[truth.class_index("metal") - 1] > 0.95


def test_training_is_deterministic_and_the_seed_matters(painted, forest_model):
    vol, _, lab = painted
    assert classifier.train([vol], lab, hparams=SMALL, seed=1).hash == forest_model.hash
    assert classifier.train([vol], lab, hparams=SMALL, seed=2).hash != forest_model.hash


def test_boxes_give_the_same_labels_as_one_box(painted, forest_model, monkeypatch):
    vol = painted[0]
    one = np.zeros(vol.shape, np.uint8)
    inf.segment(forest_model, [vol], one, tile=256)
    monkeypatch.setattr(classifier, "BOX_VOXELS", 16 * 16 * 3)  # slabs of 3 slices
    small = np.zeros(vol.shape, np.uint8)
    inf.segment(forest_model, [vol], small, tile=16)
    assert np.array_equal(one, small)


def test_prediction_of_one_slice_is_the_volumes(painted, forest_model):
    vol = painted[0]
    whole = np.zeros(vol.shape, np.uint8)
    inf.segment(forest_model, [vol], whole)
    assert np.array_equal(inf.predict_slice(forest_model, [vol], 13), whole[13])


def test_mask_limits_inference(painted, forest_model):
    vol, truth, _ = painted
    mask = truth.with_data((np.arange(vol.shape[0]) < 10)[:, None, None] * np.ones(vol.shape, np.uint8))
    seg = np.asarray(infer(forest_model, vol, mask=mask, outside="metal").data)
    assert np.all(seg[10:] == truth.class_index("metal")) and len(np.unique(seg[:10])) == 3


def test_model_file_round_trips_and_holds_only_numbers(forest_model, painted, tmp_path):
    path = model_io.save_model(forest_model, tmp_path / "f.dfmodel")
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    assert dtypes <= {"I64", "F64"}  # tensors of numbers
    back = model_io.load_model(path)
    assert back.is_forest and back.hash == forest_model.hash and back.hparams == forest_model.hparams
    vol = painted[0]
    a, b = np.zeros(vol.shape, np.uint8), np.zeros(vol.shape, np.uint8)
    inf.segment(forest_model, [vol], a)
    inf.segment(back, [vol], b)
    assert np.array_equal(a, b)


def _tampered(model, tmp_path, **changes):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in model.state.items()}
    doc = dict(model.config, format=model_io.FORMAT, format_version=model_io.FORMAT_VERSION)
    for k, v in changes.items():
        if k == "doc":
            doc.update(v)
        elif v is None:
            del state[k]
        else:
            state[k] = v(state[k])
    path = tmp_path / "bad.dfmodel"
    save_file(state, str(path), metadata={"damselfly": json.dumps(doc)})
    return path


def _set(i, value):
    def change(t):
        t[i] = value
        return t
    return change


@pytest.mark.parametrize("changes, message", [
    ({"left": _set(0, 10 ** 9)}, "inconsistent"),
    ({"right": _set(0, 0)}, "inconsistent"),  # a cycle: a child before its parent
    ({"feature": _set(0, 999)}, "inconsistent"),
    ({"value": None}, "holds the arrays"),
    ({"threshold": lambda t: t.float()}, "dtype"),
    ({"threshold": _set(0, float("nan"))}, "NaN"),
    ({"doc": {"hparams": dict(SMALL, num_sigma=4)}}, "features"),
    ({"doc": {"hparams": {"trees": 0}}}, "trees"),
    ({"doc": {"hparams": {"leaves": 3}}}, "unknown forest setting"),
])
def test_a_tampered_forest_file_is_refused_naming_it(forest_model, tmp_path, changes, message):
    path = _tampered(forest_model, tmp_path, **changes)
    with pytest.raises(InputError, match=message) as e:
        model_io.load_model(path)
    assert "bad.dfmodel" in str(e.value)


def test_sampling_is_uniform_bounded_and_needs_every_class(painted):
    _, truth, lab = painted
    flat = classifier.sample_painted(lab, 3, 500, np.random.default_rng(0), slab=4)
    values = np.asarray(lab.data).ravel()[flat]
    painted_per_class = np.bincount(np.asarray(lab.data).ravel(), minlength=4)[1:]
    assert np.all(values > 0)
    assert np.bincount(values, minlength=4)[1:].tolist() == np.minimum(painted_per_class, 500).tolist()
    assert len(np.unique(flat)) == len(flat)
    z = np.unravel_index(flat, lab.shape)[0]
    assert set(np.unique(z)) == {8, 20, 31}  # drawn from every painted slice
    only_two = lab.with_data(np.where(np.asarray(lab.data) == 3, 0, np.asarray(lab.data)))
    with pytest.raises(InputError, match="no labelled voxel"):
        classifier.train([painted[0]], only_two, hparams=SMALL)


def test_forest_settings_that_do_not_apply_are_refused(painted, forest_model):
    vol, _, lab = painted
    with pytest.raises(ParameterError, match="cannot continue"):
        train(vol, lab, arch="forest", init=forest_model)
    with pytest.raises(ParameterError, match="not a network"):
        forest_model.network()


def test_stop_during_forest_training_cancels_it(painted):
    from damselfly.engine import Cancelled

    vol, _, lab = painted
    rep = progress.Reporter()
    rep.cancel()
    with progress.reporting(rep), pytest.raises(Cancelled):
        classifier.train([vol], lab, hparams=SMALL)


def test_the_preview_is_written_once(painted, tmp_path):
    vol, _, lab = painted
    model = train(vol, lab, arch="forest", preview=[20, 0, 0, 21, 30, 30], preview_dir=str(tmp_path / "p"))
    assert (tmp_path / "p" / "epoch_001.png").is_file() and model.config["history"]["preview"]
    assert torch.is_tensor(next(iter(model.state.values())))
