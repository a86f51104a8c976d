"""train(arch="auto"), the default: the forest and the U-Net scored on painted slices held out in turn,
the better kept; a validation that can fail; Stop keeps the forest."""

import numpy as np
import pytest
from scipy import ndimage

from damselfly.engine.actions.compare import comparison
from damselfly.engine.actions.segmentation import train, training_history
from damselfly.engine.core import phantoms
from damselfly.engine.core.context import RunContext
from damselfly.engine.core.errors import Cancelled
from damselfly.engine.core.progress import Reporter
from damselfly.engine.segmentation import _autotrain as autotrain

SHAPE = (20, 48, 48)
SLICES = (2, 6, 10, 14, 18)
QUICK = {"epochs": 2, "steps": 2, "batch": 2, "patch": 32, "input": "2d"}


def dabs(truth, slices=SLICES, n=4, seed=0):
    """``n`` 3 x 3 dabs of each class, inside it, on each of ``slices``: what a user paints in a minute."""
    rng = np.random.default_rng(seed)
    t = np.asarray(truth.data)
    out = np.zeros(t.shape, np.uint8)
    for z in slices:
        for k in range(1, len(truth.classes) + 1):
            rr, cc = np.nonzero(ndimage.binary_erosion(t[z] == k, iterations=2))
            for i in rng.choice(len(rr), n, replace=False):
                out[z, rr[i] - 1:rr[i] + 2, cc[i] - 1:cc[i] + 2] = k
    return truth.with_data(out, name="painted")


@pytest.fixture(scope="module")
def grains():
    return phantoms.grains(SHAPE, seed=4)


def test_folds_hold_every_painted_slice_out_once_and_keep_every_class_in_training():
    painted = {z: {1, 2} for z in SLICES}
    parts = autotrain.folds(painted)
    assert sorted(z for f in parts for z in f) == list(SLICES) and len(parts) == 3
    assert autotrain.folds({3: {1, 2}, 7: {1}}) == [[7]]  # holding 3 out leaves class 2 unpainted
    assert autotrain.network_budget(10_000, "cpu") == 220.0 and autotrain.network_budget(10**9, "cpu") == 900.0


@pytest.fixture()
def room(monkeypatch):
    """The network is trained on every fold even where the forest leaves it no room (the forest scores 1.0
    on dabs of the grains phantom, so the early stop would skip the network these tests are about)."""
    monkeypatch.setattr(autotrain, "at_best", lambda *a: float("inf"))


def test_auto_is_the_default_scores_both_methods_on_held_out_slices_and_keeps_the_better(grains, room):
    vol, truth = grains
    events = []
    ctx = RunContext(device="cpu", reporter=Reporter(on_event=lambda name, data: events.append((name, data))))
    from damselfly.engine.core import progress

    with progress.reporting(ctx.reporter):
        model = train(vol, dabs(truth), **QUICK, ctx=ctx)
    table = comparison(model)
    cols = table.columns
    assert cols["method"] == ["forest", "unet"] and sum(cols["chosen"]) == 1
    kept = cols["method"][cols["chosen"].index(True)]
    assert model.config["arch"] == kept
    doc = model.config["comparison"]
    assert doc["auto"] and sorted(z for f in doc["holdout"] for z in f) == list(SLICES)
    assert all(0.0 <= v <= 1.0 for v in cols["dice_air"] + cols["dice_ice"])
    assert cols["dice_air"][0] > 0.8 and cols["dice_ice"][0] > 0.8  # the forest on a bimodal scan
    # the forest is scored first and shown at once, then the network
    scored = [d for n, d in events if n == "scored"]
    assert [d["method"] for d in scored] == ["forest", "unet"] and set(scored[0]["dice"]) == {"air", "ice"}
    # the forest wins ties (it is cheaper): the network must do better by the margin
    f, u = cols["mean_dice"]
    assert kept == ("unet" if u > f + autotrain.MARGIN else "forest")
    hist = training_history(model)
    if kept in cols["method"]:
        assert set(hist.metadata["held_out_dice"]) == {"air", "ice"}


def test_the_held_out_validation_can_fail(grains):
    """Paint one slice with the classes swapped: trained on the others, every method gets it wrong, and
    the held-out Dice says so (a score on a random share of the same dots would not)."""
    vol, truth = grains
    painted = dabs(truth)
    d = painted.data
    d[10] = np.where(d[10] == 1, 2, np.where(d[10] == 2, 1, 0))
    model = train(vol, painted, arch="auto", **QUICK, ctx=RunContext(device="cpu"))
    cols = comparison(model).columns
    assert max(cols["mean_dice"]) < 0.9


def test_without_two_painted_slices_per_class_the_forest_is_kept_and_the_note_says_why(grains):
    vol, truth = grains
    model = train(vol, dabs(truth, slices=(9,)), **QUICK, ctx=RunContext(device="cpu"))
    assert model.config["arch"] == "forest"
    assert "not scored" in model.config["comparison"]["note"] and comparison(model).columns["method"] == []


def test_stop_during_the_network_keeps_the_forest(grains, room):
    vol, truth = grains
    reporter = Reporter()

    def on_event(name, data):
        if name == "scored" and data["method"] == "forest":
            reporter.cancel()  # Stop pressed once the forest's scores are shown

    reporter.on_event = on_event
    from damselfly.engine.core import progress

    with progress.reporting(reporter):
        model = train(vol, dabs(truth), **QUICK, ctx=RunContext(device="cpu", reporter=reporter))
    assert model.config["arch"] == "forest" and "Stop during the unet" in model.config["comparison"]["note"]


def test_auto_refuses_init_with_a_clear_error(grains):
    vol, truth = grains
    net = train(vol, dabs(truth), arch="unet", **QUICK, ctx=RunContext(device="cpu"))
    from damselfly.engine.core.errors import ParameterError

    with pytest.raises(ParameterError, match="init continues a network"):
        train(vol, dabs(truth), init=net, ctx=RunContext(device="cpu"))


def test_a_cancel_before_the_forest_is_scored_stops_the_training(grains):
    vol, truth = grains
    reporter = Reporter()
    reporter.cancel()
    from damselfly.engine.core import progress

    with progress.reporting(reporter), pytest.raises(Cancelled):
        train(vol, dabs(truth), **QUICK, ctx=RunContext(device="cpu", reporter=reporter))


def test_uncertainty_is_the_normalised_entropy_of_the_class_probabilities(grains):
    from damselfly.engine.actions.segmentation import infer_probabilities, uncertainty

    vol, truth = grains
    ctx = RunContext(device="cpu")
    model = train(vol, dabs(truth), arch="forest", ctx=ctx)
    u = uncertainty(model, vol, ctx=ctx)
    p = np.clip(np.asarray(infer_probabilities(model, vol, ctx=ctx).data, np.float64), 1e-12, 1)
    expected = -(p * np.log(p)).sum(axis=-1) / np.log(p.shape[-1])
    np.testing.assert_allclose(np.asarray(u.data), expected, atol=1e-4)
    assert u.shape == vol.shape and 0 <= float(u.data.min()) and float(u.data.max()) <= 1
    assert u.metadata["display"] == "overlay"
    # the model is surer well inside the classes than on the boundaries between them
    t = np.asarray(truth.data)
    edge = ndimage.binary_dilation(t == 2) & ndimage.binary_dilation(t == 1)
    assert np.asarray(u.data)[edge].mean() > 2 * np.asarray(u.data)[~edge].mean()


def fake_methods(truth, wrong: dict, seed: int):
    """``fit`` and ``predict`` for :func:`autotrain.select` without training: a method's prediction of a
    slice is the truth with a share ``wrong[method]`` of its voxels (drawn per slice) set to the other
    class. ``fits`` records (method, slices held out) per call."""
    from types import SimpleNamespace

    t = np.asarray(truth.data)
    fits = []

    def fit(method, labels, seconds):
        held = [z for z in range(t.shape[0]) if not np.asarray(labels.data[z]).any() and t[z].any()]
        fits.append((method, held))
        return SimpleNamespace(config={"arch": method})

    def predict(model, z):
        m = model.config["arch"]
        rng = np.random.default_rng([seed, z, len(m)])
        flip = rng.random(t[z].shape) < wrong[m]
        return np.where(flip, 3 - t[z], t[z])

    return fit, predict, fits


@pytest.mark.parametrize("seed", range(12))
def test_the_network_stops_early_only_where_it_could_not_be_kept_anyway(grains, seed):
    """Over random accuracies per method, the early stop keeps the method that scoring every fold would
    keep, and trains the network on fewer folds only where it could no longer win."""
    _, truth = grains
    painted = dabs(truth, n=6, seed=seed)
    rng = np.random.default_rng(seed)
    wrong = {"forest": float(rng.choice([0.0, 0.005, 0.02, 0.05, 0.15])),
             "unet": float(rng.choice([0.0, 0.01, 0.03, 0.1, 0.3]))}
    fit, predict, fits = fake_methods(truth, wrong, seed)
    model = autotrain.select([truth], painted, fit, predict, "cpu")
    parts = autotrain.folds(autotrain.painted_slices(painted))
    full = {}  # the pooled held-out mean Dice of each method over every fold, as if none stopped early
    for method in ("forest", "unet"):
        dice, scored = autotrain.held_out_dice(*fake_methods(truth, wrong, seed)[:2], method, painted, parts)
        assert scored == len(parts)
        full[method] = round(float(np.nanmean(dice)), 4)
    want = "unet" if full["unet"] > full["forest"] + autotrain.MARGIN else "forest"
    assert model.config["arch"] == want
    trained = [h for m, h in fits if m == "unet"]
    cols = model.config["comparison"]["columns"]
    if len(trained) < len(parts) + (want == "unet"):  # stopped early: the note says so
        note = model.config["comparison"]["note"]
        assert want == "forest" and ("could not beat the forest" in note or "leaves no room" in note), note
    else:
        assert cols["mean_dice"][1] == full["unet"]


def test_a_forest_that_leaves_no_room_means_no_network_is_trained(grains):
    _, truth = grains
    fit, predict, fits = fake_methods(truth, {"forest": 0.0, "unet": 0.0}, 0)
    model = autotrain.select([truth], dabs(truth), fit, predict, "cpu")
    assert [m for m, _ in fits] == ["forest"] * 4 and model.config["arch"] == "forest"  # 3 folds + the fit
    doc = model.config["comparison"]
    assert doc["columns"]["mean_dice"][0] == 1.0 and np.isnan(doc["columns"]["mean_dice"][1])
    assert doc["note"].startswith("the unet was not trained: the forest's held-out mean Dice 1.000 leaves no room")
    assert doc["folds_scored"] == [3, 0]
