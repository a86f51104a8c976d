"""The app driven as a user would (pytest-qt, under Xvfb): load, paint, calibrate, train, infer, save while
recording; the recorded macro replayed headless gives the same segmentation. Menus map to actions."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from damselfly.engine.builtin import all_actions
from damselfly.engine.core import phantoms
from damselfly.engine.io import _files as io

SHAPE = (32, 48, 48)


def settle(qtbot, w, timeout=180_000):
    from PySide6.QtWidgets import QApplication

    qtbot.waitUntil(lambda: not w.worker.busy, timeout=timeout)
    for _ in range(3):  # deliver the worker's queued signals (and what their slots post)
        qtbot.wait(30)
        QApplication.processEvents()
    if w.view3d is not None:  # the 3-D scene is prepared in a thread
        qtbot.waitUntil(lambda: not w.view3d.building, timeout=timeout)
    for _ in range(3):  # deliver the worker's queued signals (and what their slots post)
        qtbot.wait(30)
        QApplication.processEvents()


def accept(dlg):
    dlg._try_accept()
    assert dlg.result() == dlg.DialogCode.Accepted, dlg.error.text()


def stroke(qtbot, canvas, points):
    """Press, drag through ``points`` (plane row, column) and release, with the real mouse handlers."""
    pos = [canvas.to_widget(r + 0.5, c + 0.5).toPoint() for r, c in points]
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, pos[0])
    for p in pos[1:]:
        QTest.mouseMove(canvas, p)
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, pos[-1])


def paint_class(qtbot, w, truth, z, cls, name, n=12):
    w.set_class(name)
    rr, cc = np.nonzero(np.asarray(truth.data[z]) == cls)
    pick = np.linspace(0, len(rr) - 1, n).astype(int)
    for r, c in zip(rr[pick], cc[pick]):  # a click (one dab) per spot
        stroke(qtbot, w.canvas, [(r, c)])


def open_scan(qtbot, w, scan, layer: bool = True):
    """Open the phantom scan in ``w`` (and a new label layer "air", "metal"); the scan's truth."""
    path, truth = scan
    w.open_files([str(path)])
    settle(qtbot, w)
    if layer:
        w.new_label_layer(["air", "metal"])
    return truth


def wheel(widget, at, modifiers=Qt.NoModifier, up: bool = True):
    """One notch of the mouse wheel at ``at`` (a QPointF) on ``widget``."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(widget, QWheelEvent(at, widget.mapToGlobal(at), QPoint(0, 0), QPoint(0, 120 if up else -120),
                                               Qt.NoButton, modifiers, Qt.NoScrollPhase, False))


def test_every_menu_and_toolbar_entry_is_an_action_or_a_view_operation(win):
    from PySide6.QtWidgets import QToolBar

    names = {a.name for a in all_actions()}
    entries = []

    def walk(menu):
        for a in menu.actions():
            if a.menu() is not None:
                walk(a.menu())
            elif not a.isSeparator():
                entries.append(a)

    for top in win.menuBar().actions():
        walk(top.menu())
    for tb in win.findChildren(QToolBar):
        entries += [a for a in tb.actions() if not a.isSeparator()]
    assert len(entries) > len(names)
    mapped = set()
    for a in entries:
        data = a.data()
        assert isinstance(data, dict) and (set(data) == {"action"} or set(data) == {"view"}), a.text()
        if "action" in data:
            assert data["action"] in names, a.text()
            mapped.add(data["action"])
        else:
            assert data["view"].strip(), a.text()
    assert mapped == names  # every registered action is reachable from the menus


def test_record_paint_calibrate_train_infer_save_then_replay_headless(qtbot, win, scan, tmp_path):
    path, truth = scan
    win.set_recording(True)
    assert win.open_files([str(path)])
    settle(qtbot, win)
    assert win.volume_name == "raw" and win.canvas.depth == SHAPE[0]

    win.new_label_layer(["air", "metal"])
    win.set_tool("brush")
    win.brush_spin.setValue(2)
    for z in (8, 16, 24):  # two classes on three slices
        win.set_slice(z)
        paint_class(qtbot, win, truth, z, 1, "air")
        paint_class(qtbot, win, truth, z, 2, "metal")
    painted = win.session["painted"].data
    assert set(np.unique(painted)) == {0, 1, 2}
    assert sorted(set(np.nonzero(painted)[0])) == [8, 16, 24]
    agree = np.asarray(truth.data)[painted > 0] == painted[painted > 0]
    assert agree.mean() > 0.9  # the strokes landed where they were aimed

    accept(win.open_action("calibrate"))
    settle(qtbot, win)
    dlg = win.open_action("train", {"arch": "unet", "epochs": 2, "steps": 3, "batch": 2, "patch": 32, "input": "2d", "seed": 1})
    assert dlg.values()["labels"] is win.session["painted"] and dlg.values()["image"] is win.session["cal"]
    accept(dlg)
    settle(qtbot, win)
    assert [r["epoch"] for r in win.training.plot.rows] == [1, 2]  # the live plot got every epoch
    accept(win.open_action("infer", {"tile": 64}))
    settle(qtbot, win)
    accept(win.open_action("save", {"obj": "seg", "path": "part_01_seg.tif"}))
    settle(qtbot, win)
    assert win.messages == []
    win.set_recording(False)

    text = win.macro.text()
    assert "param scan = " in text and "part_01.tif" in text
    for line in ("raw = load(scan)", "cal = calibrate(raw)", 'painted = load_labels("assets/painted.tif"',
                 'model = train(cal, painted, arch="unet", input="2d", epochs=2, steps=3, batch=2, patch=32, seed=1)',
                 "seg = infer(model, cal, tile=64)", 'save(seg, "{scan.stem}_seg.tif")'):
        assert line in text, (line, text)
    assert win.macro.check_now() == []

    macro = win.save_macro(tmp_path / "recorded" / "porosity.dfm")
    assert (tmp_path / "recorded" / "assets" / "painted.tif").exists()
    out = subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "run", str(macro), "--out", str(tmp_path / "replay"),
                          "--device", "cpu"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    app_seg = io.read_labels(tmp_path / "out" / "part_01_seg.tif")
    replayed = io.read_labels(tmp_path / "replay" / "part_01_seg.tif")
    assert replayed.hash() == app_seg.hash() == win.session["seg"].hash()

    # replayed as it is on another scan, it would train on labels painted on this one: the checker warns
    vol2, truth2 = phantoms.casting(SHAPE, seed=9)
    io.write_volume(vol2, tmp_path / "part_02.tif")
    batch = [sys.executable, "-m", "damselfly.macros.cli", "run", "--batch", str(tmp_path / "part_02.tif"),
             "--device", "cpu"]
    out = subprocess.run(batch[:4] + [str(macro)] + batch[4:] + ["--out", str(tmp_path / "b1")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert "warning: in a batch, every scan is trained on 'painted'" in out.stderr
    # the macro for new scans (offered when recording stopped) applies the trained model instead
    assert any("Save a macro for new scans" in q for q in win.asked)
    new = win.save_macro_for_new_scans(tmp_path / "recorded" / "for_new_scans.dfm")
    text2 = new.read_text()
    assert "train(" not in text2 and "painted" not in text2 and "param scan = " in text2
    assert 'model = load_model("assets/model.dfmodel")' in text2 and "seg = infer(model, cal, tile=64)" in text2
    out = subprocess.run(batch[:4] + [str(new)] + batch[4:] + ["--out", str(tmp_path / "b2")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
    batch_seg = io.read_labels(tmp_path / "b2" / "part_02" / "part_02_seg.tif")
    # applying the model in the app to the same second scan
    raw2 = win.session.run("load", str(tmp_path / "part_02.tif"), target="raw2")
    cal2 = win.session.run("calibrate", raw2, target="cal2")
    app_seg2 = win.session.run("infer", win.session["model"], cal2, tile=64, target="seg2")

    def dice(seg, k):  # the painted classes were truth values 1 (air) and 2 (metal)
        a, b = np.asarray(seg.data) == k, np.asarray(truth2.data) == k
        return 2 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))

    for k in (1, 2):  # two epochs of training: the point is that the batch applies what the app applies
        assert abs(dice(batch_seg, k) - dice(app_seg2, k)) <= 0.02, (k, dice(batch_seg, k), dice(app_seg2, k))
    assert dice(batch_seg, 1) > 0.5


def test_undo_redo_fill_classes_and_boxes_into_dialogs(qtbot, win, scan):
    path, truth = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    layer = win.new_label_layer(["air"])
    win.add_class("pore", (255, 0, 0))
    win.rename_class("void")
    assert layer.class_names == ["air", "void"] and layer.classes[1].color[:3] == (255, 0, 0)
    win.recolour_class((0, 255, 0))
    assert layer.classes[1].color == (0, 255, 0, 255)
    win.set_tool("brush")
    win.set_slice(10)
    stroke(qtbot, win.canvas, [(5, 5), (5, 15)])
    after = layer.data[10].copy()
    assert after[5, 5:16].tolist() == [2] * 11
    win.set_class("air")
    win.canvas.fill_slice()  # the rest of the slice is air
    assert np.all(layer.data[10] > 0) and np.count_nonzero(layer.data[10] == 2) == np.count_nonzero(after == 2)
    assert win.canvas.undo() and np.array_equal(layer.data[10], after)
    assert win.canvas.undo() and not layer.data[10].any()
    assert win.canvas.redo() and np.array_equal(layer.data[10], after)
    win.set_tool("eraser")
    stroke(qtbot, win.canvas, [(5, 5), (5, 15)])
    assert not layer.data[10].any()

    win.set_tool("box")
    for a, b in (((2, 3), (6, 9)), ((20, 20), (30, 25))):
        stroke(qtbot, win.canvas, [a, b])
    assert win.boxes == [[10, 2, 3, 11, 7, 10], [10, 20, 20, 11, 31, 26]]
    dlg = win.open_action("calibrate", {"method": "two_point"})
    dlg.use_boxes("regions")
    assert dlg.values()["regions"] == win.boxes
    assert win.open_action("crop").use_boxes("box") is None
    win._set_axis("x")
    assert win.canvas.axis == "x" and win.slider.maximum() == SHAPE[2] - 1


def test_checker_marks_errors_as_you_type_and_errors_are_messages(qtbot, win, scan, tmp_path):
    path, _ = scan
    win.macro.set_text(f'version 1\nparam scan = "{path.name}"\nraw = load(scan)\ncal = calibrat(raw, low=0.5)\n')
    qtbot.waitUntil(lambda: bool(win.macro.diagnostics), timeout=5000)  # the checker ran by itself
    d = win.macro.diagnostics[0]
    assert (d.line, d.column) == (4, 7) and "did you mean 'calibrate'" in d.message
    assert win.macro.problems.item(0).text().startswith("4:7: error")
    assert win.macro.editor.extraSelections()
    assert not win.run_macro_text(win.macro.text()) and "calibrat" in win.messages[-1]
    win.macro.set_text(win.macro.text().replace("calibrat(", "calibrate("))
    assert [d.severity for d in win.macro.check_now()] == ["warning"]  # cal is never used: fine to run

    bad = tmp_path / "broken.tif"
    bad.write_bytes(path.read_bytes()[:5000])  # a truncated TIFF
    win.open_files([str(bad)])
    settle(qtbot, win)
    assert "broken.tif" in win.messages[-1] and "internal error" not in win.messages[-1]


def test_run_macro_and_run_on_files_with_a_bad_scan(qtbot, win, scan, tmp_path):
    path, _ = scan
    macro = tmp_path / "m.dfm"
    macro.write_text(f'version 1\nparam scan = "{path.name}"\nraw = load(scan)\ncal = calibrate(raw)\n'
                     'save(cal, "{scan.stem}_cal.tif")\n')
    win.macro.open(macro)
    assert win.run_macro_text(win.macro.text())
    settle(qtbot, win)
    assert {"raw", "cal"} <= set(win.session.objects) and (tmp_path / "out" / "part_01_cal.tif").exists()

    second = tmp_path / "part_02.tif"
    io.write_volume(phantoms.casting(SHAPE, seed=4)[0], second)
    bad = tmp_path / "part_03.tif"
    bad.write_bytes(b"not a tiff")
    opened = []
    win.open_in_browser = opened.append
    assert win.run_batch([str(path), str(bad), str(second)], tmp_path / "batch")
    settle(qtbot, win)
    assert opened == [tmp_path / "batch" / "summary.html"] and opened[0].exists()  # the summary opens
    status = {Path(r.item).name: r.status for r in win.batch_results}
    assert status == {"part_01.tif": "ok", "part_03.tif": "failed", "part_02.tif": "ok"}
    assert win.batch_table.rowCount() == 3 and "part_03" in win.batch_results[1].error
    assert (tmp_path / "batch" / "part_02" / "part_02_cal.tif").exists()


def test_run_on_files_after_an_edit_keeps_the_macros_relative_paths(qtbot, win, scan, tmp_path):
    """An edited, unsaved macro runs from its own folder: a relative path to a file beside it still
    resolves, and the file on disk is left as it was."""
    path, truth = scan
    (tmp_path / "macros" / "data").mkdir(parents=True)
    io.write_volume(truth, tmp_path / "macros" / "data" / "truth.tif")
    macro = tmp_path / "macros" / "m.dfm"
    text = (f'version 1\nparam scan = "{path}"\nraw = load(scan)\ncal = calibrate(raw)\n'
            'truth = load_labels("data/truth.tif")\nsave(cal, "{scan.stem}_cal.tif")\n')
    macro.write_text(text)
    win.macro.open(macro)
    win.macro.set_text(text + 'save(truth, "{scan.stem}_truth.tif")\n')  # edited, not saved
    assert win.run_batch([str(path)], tmp_path / "batch")
    settle(qtbot, win)
    assert [r.status for r in win.batch_results] == ["ok"], win.batch_results[0].error
    assert (tmp_path / "batch" / "part_01" / "part_01_truth.tif").exists()
    assert macro.read_text() == text and win.macro.path == macro.resolve()


def test_segment_and_correct_continues_training_from_the_model(qtbot, win, scan):
    path, truth = scan
    win.set_recording(True)
    win.open_files([str(path)])
    settle(qtbot, win)
    layer = win.new_label_layer(["air", "metal", "pore"])
    layer.data[[8, 24]] = np.asarray(truth.data)[[8, 24]]  # two slices painted (fast, as a fill would)
    accept(win.open_action("train", {"image": "raw", "arch": "unet", "epochs": 1, "steps": 2, "batch": 2, "patch": 32,
                                     "input": "2d"}))
    settle(qtbot, win)
    win.set_slice(16)
    win.predict_slice()
    settle(qtbot, win)
    assert layer.data[16].any() and not layer.data[15].any()  # only the current slice was predicted
    win.set_tool("brush")
    win.set_class("pore")
    stroke(qtbot, win.canvas, [(20, 20), (20, 24)])  # the correction
    assert win.canvas.undo_stack
    accept(win.open_action("train", {"image": "raw", "arch": "unet", "init": "model", "epochs": 1, "steps": 2, "batch": 2,
                                     "patch": 32, "input": "2d"}, ))
    settle(qtbot, win)
    win.set_recording(False)
    text = win.macro.text()
    assert 'painted = load_labels("assets/painted.tif"' in text
    assert 'painted = load_labels("assets/painted_2.tif"' in text  # the corrected layer, as it was used
    assert "model2 = train(raw, painted, arch=\"unet\", input=\"2d\", epochs=1, steps=2, batch=2, patch=32, init=model)" in text
    saved = io.read_labels(win.macro_dir / "assets" / "painted_2.tif")
    assert np.array_equal(saved.data, layer.data)


def test_damselfly_app_opens_a_macro(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from damselfly import app
    from damselfly.app.window import MainWindow

    macro = tmp_path / "m.dfm"
    macro.write_text("version 1\nparam scan = \"x.tif\"\n")
    seen = {}

    def look():
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        seen["text"] = wins[-1].macro.text() if wins else None
        for w in wins:
            w.close()
        QApplication.instance().exit(0)

    QTimer.singleShot(1500, look)
    assert app.main(str(macro)) == 0
    assert seen["text"] == macro.read_text()


def test_app_opens_a_scan_by_its_kind(qtbot, tmp_path, scan):
    """`damselfly app scan.tif` opens the scan (it used to read the TIFF as macro text and crash)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from damselfly import app
    from damselfly.app.window import MainWindow

    path, _ = scan
    seen = {}

    def look():
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)
                and w.session.settings.base_dir == path.parent.resolve() and w.isVisible()]
        seen["tries"] = seen.get("tries", 0) + 1
        if (not wins or wins[-1].worker.busy or not wins[-1].session.objects) and seen["tries"] < 100:
            QTimer.singleShot(200, look)  # at most 20 s
            return
        seen["objects"] = {k: type(v).__name__ for k, v in wins[-1].session.objects.items()} if wins else None
        seen["messages"] = list(wins[-1].messages) if wins else None
        for w in wins:
            w.close()
        QApplication.instance().exit(0)

    QTimer.singleShot(1500, look)
    assert app.main(str(path)) == 0
    assert seen["objects"] == {"raw": "Volume"} and seen["messages"] == []
    assert app.main(str(tmp_path / "missing.tif")) == 1


def test_dropping_files_loads_them_through_their_actions(qtbot, win, scan, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    path, truth = scan
    lab = io.write_volume(truth, tmp_path / "part_01_labels.tif")
    macro = tmp_path / "m.dfm"
    macro.write_text("version 1\n")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in (path, lab, macro)])
    win.set_recording(True)
    win.dropEvent(QDropEvent(QPointF(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    settle(qtbot, win)
    assert win.session["raw"].shape == SHAPE and win.session["labels"].class_names == truth.class_names
    assert "raw = load(scan)" in win.recorder.text() and "labels = load_labels(labels_file)" in win.recorder.text()
    win.set_recording(False)


def test_the_slice_plane_follows_the_slider_in_3d(qtbot, win, scan):
    path, _ = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    assert win.canvas.depth == SHAPE[0] and win.view3d.renderer is not None
    win.plane_action.trigger()
    win.set_slice(10)
    assert win.view3d.plane == ("z", pytest.approx(10 / (SHAPE[0] - 1)))
    assert set(win.view3d.renderer.slice_actors) == {"z"}
    win.plane_action.trigger()
    assert win.view3d.plane is None and not win.view3d.renderer.slice_actors


def test_a_new_action_with_a_title_and_a_box_argument_appears_with_its_box_tool(qtbot, tmp_path, scan):
    """Actions are data: registering one is all it takes to get a menu entry, a dialog and the box tool."""
    from PySide6.QtWidgets import QPushButton

    from damselfly.app.window import MainWindow
    from damselfly.engine import BUILTIN, Table, Volume, action

    @action("box_mean", result="stats", category="Inspect", title="Mean inside a box…", roles={"box": "box"})
    def box_mean(volume: Volume, box: list[int]) -> Table:
        """Mean grey value inside a box.

        Parameters
        ----------
        volume : Volume
            The scan.
        box : list of int
            ``[z0, y0, x0, z1, y1, x1]``.
        """
        z0, y0, x0, z1, y1, x1 = box
        return Table({"mean": [float(np.asarray(volume.data[z0:z1, y0:y1, x0:x1]).mean())]})

    BUILTIN.register(box_mean)
    try:
        w = MainWindow(base_dir=tmp_path, out_dir=tmp_path / "out", device="cpu")
        qtbot.addWidget(w)
        w.show()
        menu = next(m for m in w.menuBar().actions() if m.text() == "Inspect").menu()
        entry = next(a for a in menu.actions() if a.text() == "Mean inside a box…")
        assert entry.data() == {"action": "box_mean"}
        path, _ = scan
        w.open_files([str(path)])
        settle(qtbot, w)
        w.set_tool("box")
        stroke(qtbot, w.canvas, [(2, 3), (6, 9)])
        entry.trigger()
        dlg = w.findChildren(type(w.open_action("box_mean", show=False)))[-1]
        buttons = [b.text() for b in dlg.findChildren(QPushButton)]
        assert "drawn box" in buttons  # the box tool's button, from the role alone
        next(b for b in dlg.findChildren(QPushButton) if b.text() == "drawn box").click()
        z = w.canvas.index
        assert dlg.values()["box"] == [z, 2, 3, z + 1, 7, 10]
        accept(dlg)
        settle(qtbot, w)
        table = w.session.objects["stats"]
        assert table.columns["mean"][0] == pytest.approx(float(np.asarray(w.canvas.volume.data[z:z + 1, 2:7, 3:10]).mean()))
        w.worker.wait(30)
    finally:
        BUILTIN.unregister("box_mean")


def test_stopping_a_recording_offers_to_save_results_that_are_never_saved(qtbot, win, scan, tmp_path):
    path, _ = scan
    win.set_recording(True)
    win.open_files([str(path)])
    settle(qtbot, win)
    win.run_action("calibrate", win.session["raw"], target="cal")
    settle(qtbot, win)
    win.run_action("threshold", win.session["cal"], target="seg")
    settle(qtbot, win)
    win.ask = lambda question: win.asked.append(question) or True
    win.set_recording(False)
    assert win.asked == ["The recording computes seg but never saves it. Add save statements?"]
    text = win.macro.text()
    assert text.rstrip().endswith('save(seg, "{scan.stem}_seg.tif")')
    from damselfly.macros.checker import check
    from damselfly.macros.parser import parse

    res = check(parse(text, str(tmp_path / "m.dfm")), base_dir=tmp_path, check_files=False)
    assert res.ok and not res.diagnostics  # no warning left


def test_record_after_loading_writes_param_scan_and_copies_nothing(qtbot, win, scan, tmp_path):
    path, _ = scan
    win.open_files([str(path)])  # opened before Record is pressed
    settle(qtbot, win)
    win.set_recording(True)
    accept(win.open_action("calibrate"))
    settle(qtbot, win)
    accept(win.open_action("save", {"obj": "cal", "path": "part_01_cal.tif"}))
    settle(qtbot, win)
    win.set_recording(False)
    text = win.macro.text()
    assert "param scan = " in text and "part_01.tif" in text and "raw = load(scan)" in text, text
    assert not (win.macro_dir / "assets").exists()  # the scan was not copied


def test_one_slice_index_for_slider_wheel_keys_and_undo(qtbot, win, scan):
    from PySide6.QtCore import QPointF

    open_scan(qtbot, win, scan)
    c = win.canvas
    win.set_slice(10)
    center = QPointF(c.width() / 2, c.height() / 2)
    for _ in range(3):  # the wheel moves the slice and the slider with it
        wheel(c, center)
    assert c.index == 13 and win.slider.value() == 13 and win.slice_label.text() == "13"
    c.setFocus()
    QTest.keyClick(c, Qt.Key_Down)
    QTest.keyClick(c, Qt.Key_PageUp)
    assert c.index == win.slider.value() == 22
    win.set_tool("brush")
    stroke(qtbot, c, [(5, 5), (5, 9)])  # the stroke lands on the slice the slider names
    layer = win.session["painted"]
    assert np.nonzero(layer.data)[0].tolist() and set(np.nonzero(layer.data)[0]) == {22}
    win.set_slice(3)
    assert c.undo()  # undo goes back to the edited slice, and says so; slider and canvas agree
    assert c.index == win.slider.value() == 22 and not layer.data.any()
    QTest.keyClick(c, Qt.Key_BracketRight)
    assert win.brush_spin.value() == c.brush and c.brush == 4
    QTest.keyClick(c, Qt.Key_2)
    assert c.current_class == 2 and win.class_box.currentData() == 2


def test_the_3d_view_does_not_redraw_while_nothing_changes(qtbot, win, scan):
    path, _ = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    plotter = win.view3d.plotter
    assert not plotter.render_timer.isActive()
    renders = []
    plotter.ren_win.AddObserver("EndEvent", lambda *_: renders.append(1))
    qtbot.wait(1500)  # idle
    assert renders == []
    win.view3d.preset("top")  # a change redraws
    assert renders


def test_zoom_keeps_the_voxel_under_the_mouse_and_pan_moves_the_plane(qtbot, win, scan):
    from PySide6.QtCore import QPoint, QPointF

    open_scan(qtbot, win, scan)
    c = win.canvas
    at = c.to_widget(30.5, 12.5)
    before = c.to_voxel(at)
    for _ in range(3):  # Ctrl + wheel zooms about the mouse
        wheel(c, at, Qt.ControlModifier)
    assert c.zoom == pytest.approx(1.25 ** 3) and c.to_voxel(at) == before and c.index == win.slider.value()
    win.set_tool("brush")
    win.brush_spin.setValue(1)
    stroke(qtbot, c, [(20, 20)])  # painting still lands on the voxel under the mouse
    assert win.session["painted"].data[c.index, 20, 20] == c.current_class
    t0 = c._target()
    win.set_tool("navigate")
    QTest.mousePress(c, Qt.LeftButton, Qt.NoModifier, QPoint(100, 100))
    QTest.mouseMove(c, QPoint(130, 90))
    QTest.mouseRelease(c, Qt.LeftButton, Qt.NoModifier, QPoint(130, 90))
    t1 = c._target()
    assert (t1.left() - t0.left(), t1.top() - t0.top()) == pytest.approx((30, -10))
    QTest.keyClick(c, Qt.Key_Home)
    assert c.zoom == 1.0 and c.pan == QPointF(0, 0)


def test_unsaved_changes_are_offered_before_record_open_and_quit(qtbot, win, scan, tmp_path):
    path, truth = scan
    macro = tmp_path / "m.dfm"
    macro.write_text('version 1\nparam scan = "x.tif"\n')
    win.macro.open(macro)
    assert win.macro_dock.windowTitle() == "Macro — m.dfm"
    win.macro.set_text(win.macro.text() + "raw = load(scan)\n")
    assert win.macro_dock.windowTitle() == "Macro — m.dfm*" and win.macro.modified
    win.ask_save = lambda q: win.asked.append(q) or "cancel"
    win.set_recording(True)  # would replace the edited text: asked, cancelled, nothing lost
    assert win.recorder is None and not win.record_action.isChecked() and "raw = load(scan)" in win.macro.text()
    assert win.asked[-1].startswith("Unsaved changes before recording a new macro: the macro (m.dfm)")
    from PySide6.QtGui import QAction, QKeySequence

    save = next(a for a in win.findChildren(QAction) if a.text() == "Save macro")
    assert save.shortcut() == QKeySequence("Ctrl+S")
    save.trigger()  # saves to its file
    assert macro.read_text().endswith("raw = load(scan)\n") and win.macro_dock.windowTitle() == "Macro — m.dfm"
    win.open_files([str(path)])
    settle(qtbot, win)
    win.new_label_layer(["air", "metal"])
    win.set_tool("brush")
    stroke(qtbot, win.canvas, [(5, 5), (5, 9)])
    n = len(win.asked)
    win.close()  # painted labels never saved: asked, cancelled, the window stays
    assert len(win.asked) == n + 1 and "painting not saved since it was made ('painted'" in win.asked[-1]
    assert win.isVisible()
    win.run_action("save", obj=win.session["painted"], path="painted.tif")  # saved: nothing left to lose
    settle(qtbot, win)
    n = len(win.asked)
    win.close()
    assert len(win.asked) == n and not win.isVisible()
    win.ask_save = lambda q: "discard"


def test_per_class_visibility_opacity_and_outline(qtbot, win, scan):
    open_scan(qtbot, win, scan)
    layer = win.session["painted"]
    z = win.canvas.index
    layer.data[z, :10, :10] = 1
    layer.data[z, 20:30, 20:30] = 2
    grey = win.canvas.image().copy()
    win.labels_check.setChecked(False)
    base = win.canvas.image()
    win.labels_check.setChecked(True)
    assert win.class_list.count() == 2
    win.class_list.item(1).setCheckState(Qt.Unchecked)  # hide metal
    img = win.canvas.image()
    assert np.array_equal(img[22:28, 22:28], base[22:28, 22:28]) and not np.array_equal(img[2:8, 2:8], base[2:8, 2:8])
    win.class_list.item(1).setCheckState(Qt.Checked)
    win.class_list.setCurrentRow(0)
    win.class_opacity_slider.setValue(0)  # air fully transparent, metal unchanged
    img = win.canvas.image()
    assert np.array_equal(img[2:8, 2:8], base[2:8, 2:8]) and np.array_equal(img[22:28, 22:28], grey[22:28, 22:28])
    win.class_opacity_slider.setValue(100)
    win.outline_check.setChecked(True)  # only region borders are coloured
    img = win.canvas.image()
    assert np.array_equal(img[24, 24], base[24, 24]) and not np.array_equal(img[20, 24], base[20, 24])


def test_dialogs_speak_plainly_fold_advanced_fields_and_hide_what_does_not_apply(qtbot, win, scan):
    from damselfly.app.params import plain

    assert plain("Use ``two_point`` with :func:`~damselfly.engine.io._files.read_volume`.") == \
        "Use two_point with read_volume."
    path, _ = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    dlg = win.open_action("calibrate", show=False)
    assert dlg.shown("low") and not dlg.shown("regions") and not dlg.shown("reference")
    dlg.set_value("method", "two_point")
    assert dlg.shown("regions") and dlg.shown("values") and not dlg.shown("low")
    assert "``" not in dlg.fields["method"].toolTip()
    about = win.open_action("merge_classes", show=False).about.text()  # its summary has ``nucleus`` in the source
    assert "one class nucleus, for training" in about and "``" not in about
    dlg = win.open_action("train", show=False)
    assert dlg.shown("epochs") and dlg.shown("arch") and not dlg.shown("lr") and not dlg.shown("batch")
    dlg.advanced.setChecked(True)
    assert dlg.shown("lr") and dlg.shown("batch") and dlg.shown("context")
    dlg.set_value("input", "2d")
    assert not dlg.shown("context")  # only for 2.5d


def test_an_argument_that_takes_several_images_ticks_them_in_order_and_records_the_list(qtbot, win, scan):
    """train(image=[...]) and infer(image=[...]) take several images as channels: the dialog lists the
    volumes to tick, the shown one ticked to start with, and passes them in the order they were ticked."""
    from PySide6.QtWidgets import QComboBox

    from damselfly.app.params import ObjectChecklist
    from damselfly.engine import ParameterError

    path, _ = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    win.run_action("calibrate", win.session["raw"], target="cal")
    settle(qtbot, win)
    dlg = win.open_action("train", show=False)
    ticks = dlg.fields["image"]
    assert isinstance(ticks, ObjectChecklist) and ticks.names == [win.volume_name]
    assert dlg._raw("image") is win.session[win.volume_name]  # one ticked: the object itself
    ticks.tick(["cal"])
    ticks.findItems("raw", Qt.MatchExactly)[0].setCheckState(Qt.Checked)  # as a click would
    assert ticks.names == ["cal", "raw"]
    assert dlg._raw("image") == [win.session["cal"], win.session["raw"]]
    ticks.findItems("cal", Qt.MatchExactly)[0].setCheckState(Qt.Unchecked)
    assert dlg._raw("image") is win.session["raw"]
    ticks.tick([])
    with pytest.raises(ParameterError, match="'image' is required"):
        dlg.values()
    with pytest.raises(ParameterError, match="'nothing' is not offered"):
        dlg.set_value("image", ["cal", "nothing"])
    assert isinstance(win.open_action("calibrate", show=False).fields["volume"], QComboBox)  # takes one
    win.set_recording(True)
    truth_path = io.write_volume(scan[1], path.parent / "truth.tif")
    win.run_action("load_labels", str(truth_path), target="truth")
    settle(qtbot, win)
    win.run_action("sparse_labels", win.session["truth"], slices=[8, 24], target="painted")
    settle(qtbot, win)
    accept(win.open_action("train", {"image": ["cal", "raw"], "labels": "painted", "arch": "unet", "input": "2d", "epochs": 1,
                                     "steps": 1, "batch": 2, "patch": 16}, show=False))
    settle(qtbot, win)
    assert win.session["model"].n_inputs == 2
    assert "model = train([cal, raw], painted, arch=\"unet\", input=\"2d\", epochs=1, steps=1, batch=2, patch=16)" in win.macro.text()
    assert win.open_action("infer", show=False).fields["image"].names == ["cal", "raw"]  # the model's inputs


def test_open_goes_to_a_chooser_save_offers_the_newest_result_help_lists_keys(qtbot, win, scan, tmp_path):
    from PySide6.QtGui import QAction

    path, _ = scan
    asked = []
    win.choose_file = lambda title, start: asked.append((title, start)) or str(path)
    next(a for a in win.findChildren(QAction) if a.text() == "Open volume…").trigger()
    settle(qtbot, win)
    assert asked == [("Open volume", tmp_path.resolve())] and "raw" in win.session.objects
    assert win.last_dir == path.parent
    win.run_action("calibrate", win.session["raw"], target="cal")
    settle(qtbot, win)
    win.run_action("threshold", win.session["cal"], target="seg")
    settle(qtbot, win)
    assert win.open_action("save", show=False).fields["obj"].currentData() == "seg"  # the newest result
    text = win.shortcuts_text()
    assert "Ctrl+S" in text and "Ctrl+Z" in text and "[ / ]" in text and "F1" in text


def test_training_dialog_shows_epoch_of_n_and_time_left(qtbot):
    from damselfly.app.training import TrainingDialog, duration

    assert (duration(45), duration(185), duration(3720)) == ("45 s", "3 min 5 s", "1 h 2 min")
    dlg = TrainingDialog(None, epochs=10)
    qtbot.addWidget(dlg)
    dlg.on_epoch({"epoch": 1, "loss": 0.5, "val_loss": 0.6, "seconds": 12.0})
    dlg.on_epoch({"epoch": 2, "loss": 0.4, "val_loss": 0.5, "seconds": 8.0})
    assert dlg.status.text() == "epoch 2/10: loss 0.4000, val_loss 0.5000; at most 1 min 20 s left"


def test_training_dialog_says_why_a_network_stopped_early_and_stays_on_the_screen(qtbot):
    """The held-out scores of train(arch="auto") as the engine sends them: a network stopped after one fold,
    or not trained at all, is said in a line that wraps instead of widening the dialog."""
    from damselfly.app.training import TrainingDialog

    dlg = TrainingDialog(None, epochs=10)
    qtbot.addWidget(dlg)
    dlg.show()
    width = dlg.width()
    dlg.on_scored({"method": "forest", "dice": {"background": 0.985, "nucleus": 0.985}, "mean_dice": 0.985,
                   "seconds": 8.0, "folds": [[20], [38], [50]], "of": 3, "beat": None, "margin": 0.01})
    dlg.on_scored({"method": "unet", "dice": {"background": 0.979, "nucleus": 0.98}, "mean_dice": 0.9795,
                   "seconds": 12.0, "folds": [[20]], "of": 3, "beat": 0.985, "margin": 0.01})
    lines = dlg.scores.text().splitlines()
    assert lines[0].startswith("forest: held-out Dice background 0.985") and "3 painted slices held out" in lines[0]
    assert "1 painted slice held out" in lines[1] and lines[1].endswith(
        "stopped after 1 of 3 folds: even right on the rest it could not beat the forest by the margin")
    qtbot.wait(50)
    assert dlg.width() <= max(width, 1000)
    dlg.on_scored({"method": "unet", "dice": {"background": float("nan")}, "mean_dice": float("nan"), "seconds": 0.0,
                   "folds": [], "of": 3, "beat": 1.0, "margin": 0.01})
    assert dlg.scores.text().splitlines()[-1] == (
        "unet: not trained (the forest's held-out mean Dice 1.000 leaves no room to beat it by more than 0.01; "
        "the forest was kept)")
    assert dlg.plot.empty_text == "no network was trained (the forest has no epochs)"  # not a bare empty plot


def test_window_level_histogram_drag_and_integer_values(qtbot, win, scan, tmp_path):
    from PySide6.QtCore import QPoint

    path, _ = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    vol = win.session["raw"]
    assert vol.data.dtype.kind in "iu" and win.histogram.integer
    assert win.histogram.counts.sum() > 0 and win.low_edit.text().lstrip("-").isdigit()  # integers for integer data
    h = win.histogram
    lo, hi = win.canvas.window
    x_hi = int(h.x_of(hi))
    QTest.mousePress(h, Qt.LeftButton, Qt.NoModifier, QPoint(x_hi, 10))  # grab the high edge ...
    QTest.mouseMove(h, QPoint(x_hi - 30, 10))
    QTest.mouseRelease(h, Qt.LeftButton, Qt.NoModifier, QPoint(x_hi - 30, 10))  # ... and narrow the window
    lo2, hi2 = win.canvas.window
    assert lo2 == lo and hi2 < hi and win.high_edit.text() == str(int(hi2))
    c = win.canvas
    QTest.mousePress(c, Qt.RightButton, Qt.NoModifier, QPoint(100, 100))  # right drag: up widens
    QTest.mouseMove(c, QPoint(100, 40))
    QTest.mouseRelease(c, Qt.RightButton, Qt.NoModifier, QPoint(100, 40))
    lo3, hi3 = c.window
    assert hi3 - lo3 > hi2 - lo2 and h.window == c.window
    assert "value " in c._describe((5, 5)) and "." not in c._describe((5, 5)).split("value ")[1].split()[0]


def test_linked_cursor_and_z_up_in_coronal_and_sagittal_views(qtbot, win, scan):
    open_scan(qtbot, win, scan)
    c = win.canvas
    win.set_slice(7)
    at = c.to_widget(30.5, 12.5)
    QTest.mouseClick(c, Qt.LeftButton, Qt.ShiftModifier, at.toPoint())  # Shift + click: the linked cursor
    assert c.cursor == (7, 30, 12)
    win._set_axis("y")  # the coronal view shows the cursor's slice ...
    assert c.index == 30 == win.slider.value() and win.axis_box.currentData() == "y"
    top, bottom = c.to_widget(0.5, 12.5), c.to_widget(SHAPE[0] - 0.5, 12.5)
    assert bottom.y() < top.y()  # ... with z up: slice 0 at the bottom
    win.set_tool("brush")
    win.brush_spin.setValue(1)
    stroke(qtbot, c, [(7, 12)])  # row 7 of the coronal plane is z = 7: painting lands there
    assert win.session["painted"].data[7, 30, 12] == c.current_class
    win._set_axis("x")
    assert c.index == 12


def test_data_panel_menu_recent_files_and_dark_theme(qtbot, win, scan, tmp_path):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from damselfly.app import prefs

    path, _ = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    assert prefs.recent()[0] == str(path.resolve())
    win._fill_recent()
    assert [a.text() for a in win.recent_menu.actions()][0] == str(path.resolve())
    assert win.rename_object("raw", "scan1") and "scan1" in win.session.objects and win.volume_name == "scan1"
    assert not win.rename_object("scan1", "1bad") and "cannot rename" in win.messages[-1]
    win.delete_object("scan1")
    assert "scan1" not in win.session.objects and win.canvas.volume is None
    win.dark_action.trigger()  # View > Dark theme
    assert win.dark_action.isChecked() and prefs.load()["dark"]
    assert QApplication.instance().palette().color(QPalette.Window).lightness() < 80
    win.dark_action.trigger()
    assert QApplication.instance().palette().color(QPalette.Window).lightness() > 150


def test_snapshot_of_this_view_takes_the_shown_slice_plane(qtbot, win, scan, tmp_path):
    open_scan(qtbot, win, scan, layer=False)
    win.set_slice(8)
    win.plane_action.setChecked(True)
    win._sync_plane()
    dlg = win.open_action("snapshot", show=False)
    assert dlg.fields["slices"].text() == '["z"]'
    assert dlg.fields["positions"].text() == f"[{round(8 / (SHAPE[0] - 1), 4)!r}]"


def test_save_and_restore_a_session(qtbot, win, scan, tmp_path):
    from damselfly.app.window import MainWindow

    path, truth = scan
    open_scan(qtbot, win, scan)
    win.run_action("calibrate", win.session["raw"], target="cal")
    settle(qtbot, win)
    win.select("raw")
    win.set_tool("brush")
    win.set_slice(9)
    stroke(qtbot, win.canvas, [(5, 5), (5, 9)])
    win.canvas.hidden_classes = {2}
    win.canvas.set_cursor((4, 4))
    win.macro.set_text('version 1\nparam scan = "x.tif"\n')
    saved = win.save_session(tmp_path / "work.dfsession")
    doc = __import__("json").loads(saved.read_text())
    by_name = {o["name"]: o for o in doc["objects"]}
    assert by_name["raw"] == {"name": "raw", "action": "load", "args": {"path": str(path.resolve())}}  # a reference
    assert by_name["painted"]["args"]["path"].endswith("work_data/painted.tif")  # painted: its content saved
    assert by_name["cal"]["args"]["path"].endswith("work_data/cal.tif")

    other = MainWindow(base_dir=tmp_path, out_dir=tmp_path / "out2", device="cpu")
    other.ask, other.ask_save = (lambda q: False), (lambda q: "discard")
    qtbot.addWidget(other)
    other.show()
    assert other.restore_session(saved)
    settle(qtbot, other)
    assert set(other.session.objects) == {"raw", "cal", "painted"}
    assert np.array_equal(other.session["painted"].data, win.session["painted"].data)
    c = other.canvas
    assert (other.volume_name, other.labels_name, c.index, c.cursor, c.hidden_classes) == ("raw", "painted", 9, (9, 4, 4), {2})
    assert other.macro.text() == 'version 1\nparam scan = "x.tif"\n' and other.messages == []
    (tmp_path / "bad.dfsession").write_text("{}")
    assert not other.restore_session(tmp_path / "bad.dfsession") and "not a Damselfly session" in other.messages[-1]


def test_a_chunked_scan_opens_lazily_with_its_3d_view_built_off_the_gui_thread(qtbot, win, tmp_path, monkeypatch):
    """An OME-Zarr scan: the slice view reads the slices it shows, the window and histogram come from a
    pyramid level, the 3-D view from a coarse level prepared in a thread (a draft, then refined). Reads of full-resolution voxels
    are counted: far fewer than the scan holds."""
    import threading

    import zarr

    from damselfly.engine import Volume

    n = (96, 160, 160)
    data = np.random.default_rng(0).integers(0, 4000, n).astype(np.uint16)
    path = io.write_volume(Volume(data, spacing=(0.1, 0.1, 0.1), unit="mm"), tmp_path / "big.zarr")
    full_res = str(Path(path) / "0")
    read = {"voxels": 0, "gui": 0}
    real = zarr.Array.__getitem__

    def counting(self, key):
        out = real(self, key)
        if str(self.store_path).endswith("/0") or full_res in str(self.store_path):
            read["voxels"] += int(np.size(out))

        if threading.current_thread() is threading.main_thread() and np.size(out) > 48 * 160 * 160:
            read["gui"] += 1  # a big read on the GUI thread: the window would wait for it
        return out

    monkeypatch.setattr(zarr.Array, "__getitem__", counting)
    monkeypatch.setattr(win.view3d.plotter, "width", lambda: 64)  # a small frame: coarse levels suffice
    monkeypatch.setattr(win.view3d.plotter, "height", lambda: 48)
    shown = []
    win.view3d.built.connect(lambda gen, prepared, final: shown.append((final, prepared.scene.volume.shape)))
    win.open_files([str(path)])
    settle(qtbot, win)
    assert [f for f, _ in shown] == [False, True]  # a quick draft first, then the full detail
    assert shown[0][1][0] < shown[1][1][0] == win.view3d.renderer.scene.volume.shape[0]
    assert win.canvas.volume is not None and win.canvas.volume.shape == n
    assert win.view3d.renderer is not None and not win.messages
    assert win.view3d.renderer.scene.volume.shape[0] < n[0]  # drawn from a coarser level
    assert read["voxels"] < 0.25 * data.size and read["gui"] == 0


def test_compare_methods_shows_its_table_and_a_table_chosen_in_the_data_panel(qtbot, win, scan):
    path, truth = scan
    win.set_recording(True)
    win.open_files([str(path)])
    settle(qtbot, win)
    layer = win.new_label_layer(["air", "metal", "pore"])
    layer.data[[6, 16, 26]] = np.asarray(truth.data)[[6, 16, 26]]
    accept(win.open_action("compare_methods", {"image": "raw", "methods": ["forest"], "refit": False}))
    settle(qtbot, win)
    view = win.table_dock.view
    assert win.table_dock.isVisible() and "Table: model" in win.table_dock.windowTitle()
    headers = [view.horizontalHeaderItem(i).text() for i in range(view.columnCount())]
    assert headers[:2] == ["method", "dice_air"] and "mean_dice" in headers and view.rowCount() == 1
    assert view.item(0, 0).text() == "forest" and view.item(0, headers.index("chosen")).text() == "✔"
    recorded = 'model = compare_methods(raw, painted, methods=["forest"], refit=false)'
    assert recorded in win.macro.text()
    win.run_action("comparison", win.session["model"], target="table")
    settle(qtbot, win)
    assert "Table: table" in win.table_dock.windowTitle()


def test_enhance_menu_trains_a_denoiser_with_the_live_dialog_and_shows_the_result(qtbot, win, scan):
    path, _ = scan
    win.set_recording(True)
    win.open_files([str(path)])
    settle(qtbot, win)
    titles = {a.text() for a in win.menuBar().actions()}
    assert "Enhance" in titles  # the menu comes from the registry's category
    accept(win.open_action("train_denoiser", {"image": "raw", "epochs": 2, "steps": 2, "batch": 2, "patch": 32,
                                              "preview": [10, 0, 0, 11, 32, 32]}))
    settle(qtbot, win)
    assert [r["epoch"] for r in win.training.plot.rows] == [1, 2]  # the loss curves got every epoch
    assert win.training.preview.pixmap() is not None and not win.training.preview.pixmap().isNull()
    accept(win.open_action("enhance", {"model": "denoiser", "image": "raw"}))
    settle(qtbot, win)
    assert win.volume_name == "enhanced" and win.session["enhanced"].data.dtype == np.float32
    assert win.messages == []
    assert "enhanced = enhance(denoiser, raw)" in win.macro.text()


def test_a_plugin_action_is_in_the_menu_its_decorator_names(win):
    """The example plugin (examples/plugin, installed by the test command) shows like a built-in."""
    menus = {a.text(): a.menu() for a in win.menuBar().actions() if a.menu() is not None}
    entries = {a.data().get("action"): a for a in menus["Process"].actions() if isinstance(a.data(), dict)}
    assert "unsharp_mask" in entries and "calibrate" in entries
    assert entries["unsharp_mask"].toolTip().startswith("Sharpen each slice")


def test_merging_instance_ids_from_the_menu_records_a_line_that_replays_the_same(qtbot, win, scan, tmp_path):
    """Labels from another tool (a class per nucleus, no sidecar) become a foreground/background truth
    with Segment > merge_classes; the recorded line replays headless to the same labels."""
    from PySide6.QtGui import QAction

    path, _ = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    ids = np.zeros(SHAPE, np.uint8)
    ids[4:9, 5:12, 5:12], ids[15:20, 14:22, 3:9] = 1, 2
    import tifffile

    tifffile.imwrite(tmp_path / "ids.tif", ids)  # as Fiji or StarDist write them: no class names
    win.set_recording(True)
    win.run_action("load_labels", str(tmp_path / "ids.tif"), target="ids")
    settle(qtbot, win)
    assert win.session["ids"].class_names == ["class1", "class2"]
    assert any(a.text() == "merge_classes…" for a in win.findChildren(QAction))  # in the menu
    dlg = win.open_action("merge_classes", {"into": "nucleus", "unlabelled": "background"})
    assert dlg.values()["labels"] is win.session["ids"]
    dlg.fields["classes"].setText("class1, class2")  # names typed as a user types them: no quotes, no brackets
    assert dlg.values()["classes"] == ["class1", "class2"]
    dlg.fields["classes"].setText('["class1", "class2"]')  # or as the macro writes them
    assert dlg.values()["classes"] == ["class1", "class2"]
    dlg.fields["classes"].setText("")
    assert dlg.fields["into"].placeholderText() == "text"  # not Python's "str"
    accept(dlg)
    settle(qtbot, win)
    merged = win.session["merged"]
    assert merged.class_names == ["background", "nucleus"] and win.messages == []
    assert np.array_equal(np.asarray(merged.data), np.where(ids > 0, 2, 1))
    win.set_recording(False)
    assert 'merged = merge_classes(ids, "nucleus", unlabelled="background")' in win.macro.text()
    (tmp_path / "m.dfm").write_text(win.macro.text() + 'save(merged, "merged_replay.tif")\n')  # scan: ids.tif
    out = subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "run", str(tmp_path / "m.dfm"), "--out",
                          str(tmp_path / "replay")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    replay = io.read_labels(tmp_path / "replay" / "merged_replay.tif")
    assert replay.class_names == ["background", "nucleus"]
    assert np.array_equal(np.asarray(replay.data), np.asarray(merged.data))
