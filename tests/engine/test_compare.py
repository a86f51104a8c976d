"""compare_methods: methods scored on a held-out painted slice; the better one is returned with its table."""

from functools import partial

import numpy as np
import pytest

from damselfly.engine import InputError, ParameterError
from damselfly.engine.actions import compare
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation._training import data_hash, dice_scores

compare_methods = partial(compare.compare_methods, ctx=RunContext(device="cpu"))
QUICK = {"epochs": 1, "steps": 2}


@pytest.fixture(scope="module")
def painted(casting_small):
    vol, truth = casting_small
    return vol, truth, sparse_labels(truth, slices=[8, 20, 31])


def test_the_model_with_the_higher_held_out_score_is_returned(painted):
    vol, truth, lab = painted
    best = compare_methods(vol, lab, refit=False, **QUICK)
    table = compare.comparison(best)
    assert table["method"] == ["forest", "unet"]
    z = table.metadata["holdout"]
    assert z in (8, 31)  # slice 20 holds the only painted pores: holding it out would leave them unpainted
    winner = table.row("chosen", True)
    assert best.arch == winner["method"] and table.metadata["margin"] == compare.MARGIN
    # the best score wins unless a cheaper method (earlier in the table) is within the margin of it
    first_tied = next(m for m, d in zip(table["method"], table["mean_dice"])
                      if d >= max(table["mean_dice"]) - compare.MARGIN)
    assert winner["method"] == first_tied
    # the table's score is the returned model's Dice on the held-out slice
    from damselfly.engine.segmentation._inference import predict_slice

    d = dice_scores(predict_slice(best, [vol], z), np.asarray(lab.data[z]), 3)
    assert round(float(np.nanmean(d)), 4) == winner["mean_dice"]


def test_the_choice_follows_the_scores(painted, monkeypatch):
    """With the forest's prediction spoiled, the network must be chosen, and refit on every painted slice."""
    vol, _, lab = painted
    real = compare.predict_slice

    def spoiled(model, images, z, device="auto"):
        out = real(model, images, z, device=device)
        return np.zeros_like(out) if model.is_forest else out  # no voxel right: Dice 0

    monkeypatch.setattr(compare, "predict_slice", spoiled)
    best = compare_methods(vol, lab, **QUICK)
    table = compare.comparison(best)
    assert best.arch == "unet" and table.row("chosen", True)["method"] == "unet"
    assert table.row("method", "forest")["mean_dice"] < table.row("method", "unet")["mean_dice"]
    assert best.config["training"]["data_sha256"] == data_hash([vol], lab)  # refit on every painted slice


def test_a_tie_within_the_margin_goes_to_the_cheaper_method(painted, monkeypatch):
    """The network exact on the held-out slice, the forest 0.005 behind: within the default margin the
    forest is chosen; with a margin of 0.001 the network."""
    vol, _, lab = painted

    def scored(model, images, z, device="auto"):
        truth = np.asarray(lab.data[z]).copy()
        if model.is_forest:  # a few voxels of the most painted class called another class
            c = np.bincount(truth.ravel())[1:].argmax() + 1
            ys, xs = np.nonzero(truth == c)
            n = max(1, int(0.01 * len(ys)))
            truth[ys[:n], xs[:n]] = 1 if c != 1 else 2
        return truth

    monkeypatch.setattr(compare, "predict_slice", scored)
    tied = compare.comparison(compare_methods(vol, lab, refit=False, **QUICK))
    forest, unet = (tied.row("method", m)["mean_dice"] for m in ("forest", "unet"))
    assert unet == 1.0 and 1 - compare.MARGIN < forest < 1.0
    assert tied.row("chosen", True)["method"] == "forest"
    strict = compare_methods(vol, lab, refit=False, margin=0.001, **QUICK)
    assert strict.arch == "unet" and compare.comparison(strict).metadata["margin"] == 0.001


def test_bad_requests_are_refused(painted):
    vol, truth, lab = painted
    with pytest.raises(InputError, match="at least two painted"):
        compare_methods(vol, sparse_labels(truth, slices=[8]))
    with pytest.raises(ParameterError, match="holdout slice 9 is not painted"):
        compare_methods(vol, lab, holdout=9)
    with pytest.raises(ParameterError, match="leaves class value"):
        compare_methods(vol, lab, holdout=20)
    with pytest.raises(ParameterError, match="methods must be"):
        compare_methods(vol, lab, methods=["forest", "svm"])
    with pytest.raises(ParameterError, match="margin"):
        compare_methods(vol, lab, margin=-0.1)


def test_a_macro_compares_saves_the_table_and_the_model(painted, tmp_path):
    from damselfly.engine.io import _files as io
    from damselfly.macros.runner import run_file

    vol, _, lab = painted
    io.write_volume(vol, tmp_path / "scan.tif")
    io.write_volume(lab, tmp_path / "painted.tif")
    macro = tmp_path / "compare.dfm"
    macro.write_text('raw = load("scan.tif")\nlab = load_labels("painted.tif")\n'
                     'best = compare_methods(raw, lab, methods=["forest"], refit=false)\n'
                     'table = comparison(best)\nsave(table, "comparison.csv")\nsave_model(best, "best.dfmodel")\n')
    assert run_file(macro, out_dir=tmp_path / "out", device="cpu").status == "ok"
    assert (tmp_path / "out" / "comparison.csv").read_text().startswith("method,dice_air,")
    from damselfly.engine.segmentation._model import load_model

    assert load_model(tmp_path / "out" / "best.dfmodel").config["comparison"]["columns"]["method"] == ["forest"]
