import numpy as np

from damselfly.engine import Labels, Session, Settings, make_classes
from damselfly.engine.actions.processing import crop
from damselfly.engine.core import phantoms
from damselfly.engine.io import _files as io
from damselfly.engine.segmentation import _model as model_io
from damselfly.macros.parser import parse
from damselfly.macros.recorder import Recorder
from damselfly.macros.runner import run_file


def make_inputs(d):
    v, t = phantoms.casting((24, 32, 32), seed=5)
    io.write_volume(v, d / "data" / "part_07.tif")
    io.write_volume(t, d / "data" / "part_07_truth.tif")
    return d / "data" / "part_07.tif", d / "data" / "part_07_truth.tif"


def record_session(tmp_path):
    scan, truth = make_inputs(tmp_path)
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "rec_out"))
    rec = Recorder(s, macro_dir=tmp_path, comment="recorded")
    raw = s.run("load", str(scan), spacing=[0.1, 0.05, 0.05], target="raw")
    s.run("calibrate", raw, low=2.0, target="cal")        # a first try ...
    cal = s.run("calibrate", raw, low=1.0, high=99.0, target="cal")  # ... the final slider value
    seg = s.run("threshold", cal, method="multiotsu", classes=3, names=["air", "pore", "metal"], target="seg")
    lab = s.run("load_labels", str(truth), spacing=[0.1, 0.05, 0.05], target="truth")
    scores = s.run("evaluate", seg, lab, target="scores")
    s.run("save", seg, "part_07_seg.tif")
    s.run("save", scores, str(tmp_path / "rec_out" / "part_07_scores.csv"))
    rec.stop()
    return rec, s


def test_recorded_macro_is_canonical_with_params_and_templates(tmp_path):
    rec, _ = record_session(tmp_path)
    text = rec.text()
    assert text == (
        "# recorded\n"
        "version 1\n\n"
        'param scan = "data/part_07.tif"\n'
        'param truth_file = "data/part_07_truth.tif"\n\n'
        "raw = load(scan, spacing=[0.1, 0.05, 0.05])\n"
        "cal = calibrate(raw, low=1.0, high=99.0)\n"
        'seg = threshold(cal, method="multiotsu", classes=3, names=["air", "pore", "metal"])\n'
        "truth = load_labels(truth_file, spacing=[0.1, 0.05, 0.05])\n"
        "scores = evaluate(seg, truth)\n"
        'save(seg, "{scan.stem}_seg.tif")\n'
        'save(scores, "{scan.stem}_scores.csv")\n')
    assert parse(text) is not None


def test_replaying_the_recording_gives_identical_outputs(tmp_path):
    rec, s = record_session(tmp_path)
    macro = rec.save(tmp_path / "recorded.dfm")
    result = run_file(macro, out_dir=tmp_path / "replay_out")
    assert result.status == "ok"
    a = io.read_labels(tmp_path / "rec_out" / "part_07_seg.tif")
    b = io.read_labels(tmp_path / "replay_out" / "part_07_seg.tif")
    assert a.hash() == b.hash() == s["seg"].hash()
    assert b.class_names == ["air", "pore", "metal"]
    assert (tmp_path / "rec_out" / "part_07_scores.csv").read_text() == \
        (tmp_path / "replay_out" / "part_07_scores.csv").read_text()


def record_with_painted_labels(tmp_path, paint):
    """A recording that loads a scan and scores its threshold against labels painted by ``paint(array)``
    (not made by any action); returns the recorder and the painted array."""
    scan, _ = make_inputs(tmp_path)
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "o"))
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(scan), target="raw")
    painted = np.zeros(raw.shape, np.uint8)
    paint(painted)
    lab = Labels(painted, spacing=raw.spacing, classes=make_classes(["air", "metal"]), name="painted")
    seg = s.run("threshold", raw, names=["air", "metal"], target="seg")
    s.run("evaluate", seg, lab, target="scores")
    rec.stop()
    return rec, painted


def test_hand_made_labels_are_saved_beside_the_macro(tmp_path):
    def paint(a):
        a[10, 5:10, 5:10] = 1
        a[10, 20:25, 20:25] = 2

    rec, painted = record_with_painted_labels(tmp_path, paint)
    text = rec.text()
    assert 'painted = load_labels("assets/painted.tif", spacing=[0.05, 0.05, 0.05])' in text
    assert "scores = evaluate(seg, painted)" in text
    back = io.read_labels(tmp_path / "assets" / "painted.tif")
    assert back.class_names == ["air", "metal"] and np.array_equal(back.data, painted)
    rec.save(tmp_path / "m.dfm")
    assert run_file(tmp_path / "m.dfm", out_dir=tmp_path / "o2").status == "ok"


def test_an_action_that_uses_its_own_previous_result_is_not_coalesced(tmp_path):
    scan, _ = make_inputs(tmp_path)
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path))
    rec = Recorder(s)
    raw = s.run("load", str(scan), target="raw")
    c = s.run("crop", raw, [0, 0, 0, 20, 30, 30], target="c")
    s.run("crop", c, [0, 0, 0, 10, 10, 10], target="c")
    assert rec.text().count("c = crop(") == 2
    assert crop(c, [0, 0, 0, 10, 10, 10]).shape == s["c"].shape


def test_training_session_records_and_replays_to_the_same_model_and_labels(tmp_path):
    """Painted slices → train → save_model → infer, recorded; the replay retrains to identical weights
    (CPU determinism), and a second macro applies the saved model to another scan unattended."""
    scan, truth = make_inputs(tmp_path)
    s = Session(Settings(device="cpu", base_dir=tmp_path, out_dir=tmp_path / "rec_out"))
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(scan), target="raw")
    cal = s.run("calibrate", raw, target="cal")
    full = s.run("load_labels", str(truth), target="truth")
    painted = s.run("sparse_labels", full, slices=[4, 12, 20], target="painted")
    model = s.run("train", [cal, raw], painted, arch="unet", input="2d", epochs=2, steps=2, batch=2, patch=16,
                  target="model")
    s.run("save_model", model, "part_07.dfmodel")
    seg = s.run("infer", model, [cal, raw], tile=32, target="seg")
    s.run("save", seg, "part_07_seg.tif")
    rec.stop()
    text = rec.text()
    assert ('model = train([cal, raw], painted, arch="unet", input="2d", epochs=2, steps=2, batch=2, patch=16)'
            in text)
    assert 'save_model(model, "{scan.stem}.dfmodel")' in text
    assert "seg = infer(model, [cal, raw], tile=32)" in text
    macro = rec.save(tmp_path / "train.dfm")
    result = run_file(macro, out_dir=tmp_path / "replay", device="cpu")
    assert result.status == "ok", result.record
    replayed = model_io.load_model(tmp_path / "replay" / "part_07.dfmodel")
    assert replayed.hash == model.hash
    assert io.read_labels(tmp_path / "replay" / "part_07_seg.tif").hash() == seg.hash()

    # apply the saved model to a second scan (another seed), as a batch would
    v2, _ = phantoms.casting((24, 32, 32), seed=11)
    io.write_volume(v2, tmp_path / "data" / "part_08.tif")
    s2 = Session(Settings(device="cpu", base_dir=tmp_path, out_dir=tmp_path / "apply_out"))
    rec2 = Recorder(s2, macro_dir=tmp_path)
    raw2 = s2.run("load", str(tmp_path / "data" / "part_08.tif"), target="raw")
    cal2 = s2.run("calibrate", raw2, target="cal")
    m2 = s2.run("load_model", str(tmp_path / "replay" / "part_07.dfmodel"), target="model")
    s2.run("save", s2.run("infer", m2, [cal2, raw2], target="seg"), "part_08_seg.tif")
    rec2.stop()
    assert "model = load_model(model_file)" in rec2.text()
    out = run_file(rec2.save(tmp_path / "apply.dfm"), out_dir=tmp_path / "apply_replay")
    assert out.status == "ok"
    assert (io.read_labels(tmp_path / "apply_replay" / "part_08_seg.tif").hash()
            == io.read_labels(tmp_path / "apply_out" / "part_08_seg.tif").hash())


def test_a_model_made_outside_actions_is_saved_beside_the_macro(tmp_path):
    import torch

    from damselfly.engine.segmentation._model import Model

    scan, _ = make_inputs(tmp_path)
    s = Session(Settings(device="cpu", base_dir=tmp_path, out_dir=tmp_path / "o"))
    raw = s.run("load", str(scan), target="raw")
    painted = np.zeros(raw.shape, np.uint8)
    painted[3, :16] = 1
    painted[3, 16:] = 2
    lab = Labels(painted, spacing=raw.spacing, classes=make_classes(["a", "b"]), name="painted")
    model = s.run("train", raw, lab, arch="unet", input="2d", epochs=1, steps=1, batch=1, patch=16)
    loose = Model(model.config, {k: torch.clone(v) for k, v in model.state.items()}, name="mine")
    rec = Recorder(s, macro_dir=tmp_path)
    s.run("infer", loose, raw, target="seg")
    rec.stop()
    assert 'mine = load_model("assets/mine.dfmodel")' in rec.text()
    assert model_io.load_model(tmp_path / "assets" / "mine.dfmodel").hash == model.hash


def test_labels_painted_in_place_are_saved_with_the_content_each_use_saw(tmp_path):
    """The app paints into a Labels the session holds: each use records the content it saw, and a
    result edited by hand after an action made it (a corrected prediction) is saved, not re-made."""
    scan, _ = make_inputs(tmp_path)
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "o"))
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(scan), target="raw")
    layer = Labels(np.zeros(raw.shape, np.uint8), spacing=raw.spacing, classes=make_classes(["air", "metal"]),
                   name="painted")
    s.add("painted", layer)
    layer.data[3, :4] = 1
    s.run("evaluate", layer, layer, target="a")
    s.run("evaluate", layer, layer, target="b")  # unchanged: the same asset
    layer.data[3, 4:8] = 2  # painted more
    s.run("evaluate", layer, layer, target="c")
    seg = s.run("threshold", raw, names=["air", "metal"], target="seg")
    s.run("evaluate", seg, layer, target="d")  # seg as the action made it: referenced by name
    seg.data[0] = np.where(seg.data[0] == 1, 2, 1)  # corrected by hand
    s.run("evaluate", seg, layer, target="e")
    rec.stop()
    text = rec.text()
    assert text.count('painted = load_labels("assets/painted.tif"') == 1
    assert text.count('painted = load_labels("assets/painted_2.tif"') == 1
    assert "d = evaluate(seg, painted)" in text
    assert 'seg = load_labels("assets/seg.tif"' in text and "e = evaluate(seg, painted)" in text
    first = io.read_labels(tmp_path / "assets" / "painted.tif").data
    second = io.read_labels(tmp_path / "assets" / "painted_2.tif").data
    assert np.count_nonzero(first) == 4 * 32 and np.count_nonzero(second) == 8 * 32
    rec.save(tmp_path / "m.dfm")
    assert run_file(tmp_path / "m.dfm", out_dir=tmp_path / "o2").status == "ok"


def test_objects_loaded_before_recording_are_recorded_as_their_loads(tmp_path):
    """Pressing Record after opening a scan: the scan becomes ``param scan`` and is loaded, not copied."""
    scan, truth = make_inputs(tmp_path)
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "o"))
    raw = s.run("load", str(scan), spacing=[0.1, 0.05, 0.05], target="raw")
    lab = s.run("load_labels", str(truth), spacing=[0.1, 0.05, 0.05], target="truth")
    painted = s.run("load_labels", str(truth), spacing=[0.1, 0.05, 0.05], target="painted")
    painted.data[3] = 0
    painted.metadata["modified"] = True  # what painting in the app marks
    rec = Recorder(s, macro_dir=tmp_path)
    cal = s.run("calibrate", raw, target="cal")
    seg = s.run("threshold", cal, method="multiotsu", classes=3, names=["air", "pore", "metal"], target="seg")
    s.run("evaluate", seg, lab, target="scores")
    s.run("evaluate", seg, painted, target="scores2")
    rec.stop()
    text = rec.text()
    assert 'param scan = "data/part_07.tif"' in text and "raw = load(scan, spacing=[0.1, 0.05, 0.05])" in text
    assert "truth = load_labels(truth_file, spacing=[0.1, 0.05, 0.05])" in text
    assert 'painted = load_labels("assets/painted.tif"' in text  # edited after loading: its content is saved
    assert not (tmp_path / "assets" / "raw.tif").exists() and not (tmp_path / "assets" / "truth.tif").exists()
    assert text.index("raw = load(") < text.index("cal = calibrate(")
    (tmp_path / "m.dfm").write_text(text)
    assert run_file(tmp_path / "m.dfm", out_dir=tmp_path / "replay").status == "ok"


def test_macro_for_new_scans_applies_the_trained_model_instead_of_training(tmp_path):
    scan, truth = make_inputs(tmp_path)
    s = Session(Settings(device="cpu", base_dir=tmp_path, out_dir=tmp_path / "rec_out"))
    rec = Recorder(s, macro_dir=tmp_path / "rec")
    raw = s.run("load", str(scan), target="raw")
    cal = s.run("calibrate", raw, target="cal")
    painted = s.run("sparse_labels", s.run("load_labels", str(truth), target="truth"), slices=[4, 12, 20],
                    target="painted")
    model = s.run("train", cal, painted, arch="unet", input="2d", epochs=1, steps=2, batch=2, patch=16, target="model")
    s.run("save_model", model, "m.dfmodel")
    seg = s.run("infer", model, cal, tile=32, target="seg")
    s.run("save", seg, "part_07_seg.tif")
    s.run("save", s.run("crop", seg, [0, 0, 0, 8, 16, 16], target="corner"), "part_07_corner.tif")
    rec.stop()
    new = rec.for_new_scans()
    from damselfly.macros.formatter import format_macro

    text = format_macro(new)
    assert "train(" not in text and "painted" not in text and "truth" not in text and "save_model" not in text
    assert 'model = load_model("assets/model.dfmodel")' in text and "param scan = " in text
    assert 'save(corner, "{scan.stem}_corner.tif")' in text
    assert model_io.load_model(tmp_path / "rec" / "assets" / "model.dfmodel").hash == model.hash
    (tmp_path / "rec" / "new.dfm").write_text(text)
    v2, _ = phantoms.casting((24, 32, 32), seed=11)
    io.write_volume(v2, tmp_path / "data" / "part_08.tif")
    from damselfly.macros.batch import run_batch

    res = run_batch(tmp_path / "rec" / "new.dfm", str(tmp_path / "data" / "part_08.tif"), out_dir=tmp_path / "b",
                    device="cpu")
    assert [r.status for r in res] == ["ok"]
    expected = s.run("infer", model, s.run("calibrate", s.run("load", str(tmp_path / "data" / "part_08.tif"))),
                     tile=32)
    assert io.read_labels(tmp_path / "b" / "part_08" / "part_08_seg.tif").hash() == expected.hash()


def test_a_big_painted_layer_is_kept_as_chunked_zarr_without_its_unpainted_chunks(tmp_path, monkeypatch):
    """Over ``io.ZARR_ASSET_VOXELS`` a painted layer is saved as OME-Zarr: chunks that hold no paint
    are not written at all, and the recorded macro loads it back and replays."""
    monkeypatch.setattr(io, "ZARR_ASSET_VOXELS", 1000)
    rec, painted = record_with_painted_labels(tmp_path, lambda a: a.__setitem__((10, slice(5, 10), slice(5, 10)), 1))
    assert 'painted = load_labels("assets/painted.zarr", spacing=[0.05, 0.05, 0.05])' in rec.text()
    chunks = [p for p in (tmp_path / "assets" / "painted.zarr" / "0").rglob("*") if p.is_file() and p.name[0] != "."]
    assert len(chunks) == 1  # one 64^3 chunk holds the paint; the empty ones are not stored
    back = io.read_labels(tmp_path / "assets" / "painted.zarr")
    assert back.class_names == ["air", "metal"] and np.array_equal(np.asarray(back.data), painted)
    rec.save(tmp_path / "m.dfm")
    assert run_file(tmp_path / "m.dfm", out_dir=tmp_path / "o2").status == "ok"


def test_a_training_stopped_early_is_recorded_as_the_model_it_kept(tmp_path):
    """Stop after the first epoch of 30: the recording loads the kept model from an asset (a replay of
    train(...) would train all 30 epochs), with a comment that says why; the replay gives that model."""
    import pytest

    from damselfly.engine.core.errors import Cancelled
    from damselfly.engine.core.progress import Reporter

    scan, truth_path = make_inputs(tmp_path)
    reporter = Reporter(on_event=lambda name, _d: name == "epoch" and reporter.cancel())
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "rec_out", device="cpu"), reporter)
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(scan), target="raw")
    truth = s.run("load_labels", str(truth_path), target="truth")
    painted = s.run("sparse_labels", truth, slices=[6, 12, 18], target="painted")
    with pytest.raises(Cancelled):
        s.run("train", raw, painted, arch="unet", epochs=30, steps=2, batch=2, patch=32, input="2d", target="model")
    s.run("save_model", s["model"], "kept.dfmodel")
    rec.stop()
    text = rec.text()
    assert s["model"].config["training"]["epochs_run"] == 1
    assert "# train stopped at epoch 1 of 30 (Stop ended it): the model it kept is an asset" in text
    assert 'model = load_model("assets/model.dfmodel")' in text and "train(" not in text
    rec.save(tmp_path / "rec.dfm")
    run_file(tmp_path / "rec.dfm", out_dir=tmp_path / "replay")
    assert model_io.load_model(tmp_path / "replay" / "kept.dfmodel").hash == s["model"].hash


def test_auto_training_that_kept_the_forest_is_recorded_with_its_choice(tmp_path):
    scan, truth_path = make_inputs(tmp_path)
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "rec_out", device="cpu"))
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(scan), target="raw")
    truth = s.run("load_labels", str(truth_path), target="truth")
    painted = s.run("sparse_labels", truth, slices=[6, 12, 18], target="painted")
    model = s.run("train", raw, painted, epochs=1, steps=1, batch=2, patch=32, input="2d", seconds=0.0,
                  target="model")
    s.run("save_model", model, "kept.dfmodel")
    rec.stop()
    text = rec.text()
    if model.config["arch"] == "forest":
        assert 'model = train(raw, painted, arch="forest", input="2d", epochs=1' in text
        assert '# train(arch="auto") kept the forest: forest air' in text
        rec.save(tmp_path / "rec.dfm")
        run_file(tmp_path / "rec.dfm", out_dir=tmp_path / "replay")
        assert model_io.load_model(tmp_path / "replay" / "kept.dfmodel").hash == model.hash
    else:
        assert "load_model(\"assets/" in text


def test_the_recorded_scores_say_when_the_network_stopped_early_or_was_not_trained():
    from types import SimpleNamespace

    from damselfly.macros.recorder import _scores

    def model(scored, mean):
        cols = {"method": ["forest", "unet"], "dice_air": [0.991, 0.9], "dice_ice": [0.985, 0.8], "mean_dice": mean}
        return SimpleNamespace(config={"comparison": {"columns": cols, "holdout": [[1], [2], [3]],
                                                      "folds_scored": scored}})

    assert _scores(model([3, 1], [0.988, 0.85])) == (
        "forest air 0.991, ice 0.985; unet air 0.900, ice 0.800 on 1 of 3 folds (then it could not beat the "
        "forest) (held-out Dice)")
    assert _scores(model([3, 0], [0.988, float("nan")])) == \
        "forest air 0.991, ice 0.985; unet not trained (the forest left it no room) (held-out Dice)"
    assert _scores(model([3, 3], [0.988, 0.85])).endswith("unet air 0.900, ice 0.800 (held-out Dice)")
