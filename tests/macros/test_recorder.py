import numpy as np

from engine import Labels, Session, Settings, io, make_classes, phantoms
from engine.actions.processing import crop
from macros.parser import parse
from macros.recorder import Recorder
from macros.runner import run_file


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


def test_hand_made_labels_are_saved_beside_the_macro(tmp_path):
    scan, _ = make_inputs(tmp_path)
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "o"))
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(scan), target="raw")
    painted = np.zeros(raw.shape, np.uint8)
    painted[10, 5:10, 5:10] = 1
    painted[10, 20:25, 20:25] = 2
    lab = Labels(painted, spacing=raw.spacing, classes=make_classes(["air", "metal"]), name="painted")
    seg = s.run("threshold", raw, names=["air", "metal"], target="seg")
    s.run("evaluate", seg, lab, target="scores")
    rec.stop()
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
