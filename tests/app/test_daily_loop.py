"""The daily loop on a grains scan with the real widgets (issue 30): calibrate, a few dabs, the default
Train (arch="auto": the forest's held-out scores shown at once, then the network's), infer; the recording
keeps what was chosen, and the macro for new scans saves the segmentation and replays it exactly."""

import numpy as np

from damselfly.engine.io import _files as io
from damselfly.macros.cli import main

from .test_app import accept, settle
from .test_painting import _dab_classes, _open_and_calibrate

QUICK = {"epochs": 2, "steps": 2, "batch": 2, "patch": 32, "input": "2d"}


def test_default_train_scores_on_held_out_slices_and_the_macro_for_new_scans_saves_the_segmentation(
        qtbot, win, grains, tmp_path):
    path, truth = grains
    win.set_recording(True)
    _open_and_calibrate(qtbot, win, grains)
    for z in (4, 12, 20, 28):
        _dab_classes(qtbot, win, truth, z)
    dlg = win.open_action("train", QUICK)
    assert dlg.values().get("arch", "auto") == "auto"  # the default
    accept(dlg)
    settle(qtbot, win)
    scores = win.training.scores.text().splitlines()
    assert [s.split(":")[0] for s in scores] == ["forest", "unet"] and "held-out Dice air" in scores[0]
    assert "nan" not in scores[1]  # a network the forest left no room is "not trained", not a NaN score
    assert scores[1].startswith("unet: held-out Dice") or scores[1].startswith(
        "unet: not trained (the forest's held-out mean Dice")
    model = win.session["model"]
    assert f"kept the {model.config['arch']}" in win.training.status.text()
    accept(win.open_action("infer", {"tile": 64}))
    settle(qtbot, win)
    # the uncertainty, from the menu, is drawn over the scan (where to paint next), not instead of it
    before, shown = win.canvas.image().copy(), win.volume_name
    accept(win.open_action("uncertainty", {"model": "model", "image": "cal"}))
    settle(qtbot, win)
    assert win.volume_name == shown and win.canvas.heat is win.session["uncertainty"]
    assert not np.array_equal(win.canvas.image(), before)
    # mid-recording, a result not used yet is no warning (it was noise while recording)
    assert "seg = infer(" in win.macro.text() and all(d.code != "unused" for d in win.macro.check_now())
    # an output name with a template, typed in the app, is expanded for this scan and recorded as a template
    accept(win.open_action("snapshot", {"volume": "cal", "path": "{scan.stem}_snapshot.png", "labels": "seg",
                                        "size": [160, 120]}))
    settle(qtbot, win)
    assert (win.session.settings.out_dir / f"{path.stem}_snapshot.png").is_file()
    text = win.macro.text()
    assert 'snapshot(cal, "{scan.stem}_snapshot.png", labels=seg' in text
    if model.config["arch"] == "forest":  # the recording keeps the choice: the same model in a replay
        assert 'arch="forest"' in text and 'train(arch="auto") kept the forest' in text
    else:
        assert "load_model(\"assets/" in text
    win.set_recording(False)
    assert win.macro.recording is False
    assert win.asked[-2].startswith("Save the recording as it is")  # offered, as the macro for new scans is
    out = win.save_macro_for_new_scans(tmp_path / "new" / "for_new_scans.dfm")
    new = out.read_text()
    assert 'save(seg, "{scan.stem}_seg.tif")' in new and "painted" not in new
    assert win.messages == []
    # the macro for new scans, run headless on the same scan, gives the app's segmentation voxel for voxel
    assert main(["run", str(out), "--set", f"scan={path}", "--out", str(tmp_path / "replay")]) == 0
    replay = io.read_labels(tmp_path / "replay" / f"{path.stem}_seg.tif")
    np.testing.assert_array_equal(np.asarray(replay.data), np.asarray(win.session["seg"].data))


def test_the_default_output_folder_is_not_inside_the_raw_data_folder(qtbot, tmp_path, monkeypatch):
    from damselfly.app.window import MainWindow

    monkeypatch.delenv("DAMSELFLY_OUT_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    raw = tmp_path / "raw"
    raw.mkdir()
    w = MainWindow(base_dir=raw, device="cpu")  # as `damselfly app raw/scan.tif` makes it
    qtbot.addWidget(w)
    out = w.session.settings.out_dir
    assert out == (tmp_path / "home" / "damselfly-out").resolve() and raw not in out.parents
    assert list(raw.iterdir()) == []
