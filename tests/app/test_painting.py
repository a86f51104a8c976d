"""Painting is never interrupted (issue 30): sparse dabs of two classes on non-adjacent slices of a grains
scan after calibrate, the 3-D view following them; a stroke ends whenever its release cannot arrive; the
class keys work wherever the focus is; the 3-D view shows every class but the background."""

import warnings

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from .test_app import accept, settle, stroke


def _open_and_calibrate(qtbot, w, grains):
    path, truth = grains
    w.open_files([str(path)])
    settle(qtbot, w)
    accept(w.open_action("calibrate"))
    settle(qtbot, w)
    w.select("raw")
    w.new_label_layer(["air", "ice"])
    w.set_tool("brush")
    w.brush_spin.setValue(3)
    return truth


def _dab_classes(qtbot, w, truth, z, n=4):
    """``n`` single-click dabs of each class on slice ``z``, each inside its class."""
    w.set_slice(z)
    for k, name in ((1, "air"), (2, "ice")):
        w.set_class(name)
        inside = np.asarray(truth.data[z]) == k
        from scipy import ndimage

        rr, cc = np.nonzero(ndimage.binary_erosion(inside, iterations=3))
        for i in np.linspace(0, len(rr) - 1, n).astype(int):
            stroke(qtbot, w.canvas, [(rr[i], cc[i])])


def _boxes(w):
    """The message boxes ``w`` shows."""
    return [b for b in QApplication.topLevelWidgets() if isinstance(b, QMessageBox) and b.isVisible()
            and b.parentWidget() is w]


def _activate(qtbot, w):
    """Make ``w`` the active window (Xvfb has no window manager to do it when earlier tests' windows linger)."""
    w.raise_()
    w.activateWindow()
    with warnings.catch_warnings():  # deprecated in Qt 6, but the one way to do it without a window manager
        warnings.simplefilter("ignore", DeprecationWarning)
        QApplication.setActiveWindow(w)
    qtbot.waitUntil(w.isActiveWindow)


def _move(canvas, rc, buttons):
    """A mouse move to plane voxel ``rc`` with ``buttons`` held (a move after a lost release has none)."""
    pos = QPointF(canvas.to_widget(rc[0] + 0.5, rc[1] + 0.5))
    ev = QMouseEvent(QMouseEvent.MouseMove, pos, canvas.mapToGlobal(pos), Qt.NoButton, buttons, Qt.NoModifier)
    QApplication.sendEvent(canvas, ev)


def test_sparse_dabs_after_calibrate_draw_both_classes_in_3d_and_never_a_box(qtbot, win, grains):
    truth = _open_and_calibrate(qtbot, win, grains)
    for z in (4, 12, 20, 28):  # non-adjacent slices
        _dab_classes(qtbot, win, truth, z)
        win.update_3d()
        settle(qtbot, win)
        assert _boxes(win) == [] and win.messages == []
    painted = win.session["painted"].data
    assert set(np.unique(painted)) == {0, 1, 2} and sorted(set(np.nonzero(painted)[0])) == [4, 12, 20, 28]
    # the specks of paint are drawn (no "No surface found"), both classes: neither surrounds the scan
    assert sorted(win.view3d.renderer.class_actors) == ["air", "ice"] and win.view_notes == []
    # the class check boxes act on the 3-D view too
    item = win.class_list.item(1)
    item.setCheckState(Qt.Unchecked)
    win.update_3d()
    settle(qtbot, win)
    assert sorted(win.view3d.renderer.class_actors) == ["air"]


def test_a_3d_view_that_cannot_draw_says_so_in_its_status_line_not_in_a_box(qtbot, win, grains, monkeypatch):
    from damselfly.engine.render import _scene as render

    truth = _open_and_calibrate(qtbot, win, grains)

    def broken(*_a, **_k):
        raise render.RenderError("No surface found at the given iso value.")

    monkeypatch.setattr(render, "prepare_scene", broken)
    _dab_classes(qtbot, win, truth, 10, n=2)
    win.update_3d()
    settle(qtbot, win)
    assert _boxes(win) == [] and win.messages == []
    assert "No surface found" in win.view3d.status.text() and "No surface found" in win.view_notes[-1]
    assert set(np.unique(win.session["painted"].data)) == {0, 1, 2}  # painting went on


def test_a_stroke_ends_when_its_release_is_lost(qtbot, win, grains):
    truth = _open_and_calibrate(qtbot, win, grains)
    win.set_slice(8)
    c = win.canvas
    air = np.argwhere(np.asarray(truth.data[8]) == 1)
    a, b = air[0], air[-1]
    # 1. a window opens between press and release: the stroke ends, the next moves paint nothing
    QTest.mousePress(c, Qt.LeftButton, Qt.NoModifier, c.to_widget(a[0] + 0.5, a[1] + 0.5).toPoint())
    win.show_error("something happened")
    before = np.count_nonzero(win.session["painted"].data)
    _move(c, b, Qt.LeftButton)
    assert np.count_nonzero(win.session["painted"].data) == before
    QTest.mouseRelease(c, Qt.LeftButton, Qt.NoModifier, c.to_widget(b[0] + 0.5, b[1] + 0.5).toPoint())
    win._last_box.close()
    # 2. the release went to another window: the first move without a button ends the stroke
    QTest.mousePress(c, Qt.LeftButton, Qt.NoModifier, c.to_widget(a[0] + 0.5, a[1] + 0.5).toPoint())
    before = np.count_nonzero(win.session["painted"].data)
    _move(c, b, Qt.NoButton)
    _move(c, (b[0], b[1] - 5), Qt.NoButton)
    assert np.count_nonzero(win.session["painted"].data) == before and not c._stroke
    QTest.mouseRelease(c, Qt.LeftButton, Qt.NoModifier, c.to_widget(b[0] + 0.5, b[1] + 0.5).toPoint())
    # 3. the canvas loses the focus mid-stroke
    _activate(qtbot, win)
    c.setFocus()
    qtbot.waitUntil(c.hasFocus)
    QTest.mousePress(c, Qt.LeftButton, Qt.NoModifier, c.to_widget(a[0] + 0.5, a[1] + 0.5).toPoint())
    assert c._stroke
    win.slider.setFocus()
    QApplication.processEvents()
    assert not c._stroke
    QTest.mouseRelease(c, Qt.LeftButton, Qt.NoModifier, c.to_widget(a[0] + 0.5, a[1] + 0.5).toPoint())
    # an undo goes back one dab, on this slice
    n = len(c.undo_stack)
    assert c.undo() and len(c.undo_stack) == n - 1 and c.index == 8


def test_class_keys_work_wherever_the_focus_is_but_text_fields_keep_their_digits(qtbot, win, grains):
    _open_and_calibrate(qtbot, win, grains)
    _activate(qtbot, win)  # shortcuts go to the active window, as on a desktop
    win.slider.setFocus()
    QTest.keyClick(win.slider, "2")
    assert win.canvas.current_class == 2 and win.class_box.currentData() == 2
    win.data_list.setFocus()
    QTest.keyClick(win.data_list, "1")
    assert win.canvas.current_class == 1
    size = win.brush_spin.value()
    QTest.keyClick(win.slider, "]")
    assert win.brush_spin.value() == size + 1
    editor = win.macro.editor
    editor.setFocus()
    QTest.keyClicks(editor, "2")
    assert win.canvas.current_class == 1 and "2" in editor.toPlainText()
