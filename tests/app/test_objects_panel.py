"""The objects of a segmentation in the app (issue 32): label and measure from the menus (recorded), the
table sorts by a column's values, a click on a row goes to that object."""

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from .test_app import accept, settle


def test_measure_objects_sort_and_go_to_one(qtbot, win, scan):
    path, truth = scan
    win.set_recording(True)
    win.open_files([str(path)])
    settle(qtbot, win)
    win.run_action("load_labels", str(_truth_file(truth, path)), target="truth")
    settle(qtbot, win)
    accept(win.open_action("label_objects", {"labels": "truth", "class": "pore"}))
    settle(qtbot, win)
    accept(win.open_action("measure_objects", {"objects": "objects"}))
    settle(qtbot, win)
    view = win.table_dock.view
    headers = [view.horizontalHeaderItem(i).text() for i in range(view.columnCount())]
    assert headers[:3] == ["id", "voxels", "volume"] and view.rowCount() == win.session["objects"].metadata["objects"]
    vol = headers.index("volume")
    view.sortItems(vol, Qt.DescendingOrder)  # what a click on the header does
    sizes = [float(view.item(r, vol).value) for r in range(view.rowCount())]
    assert sizes == sorted(sizes, reverse=True)  # by value, not by text
    biggest = win.table_dock.shown.rows()[view.item(0, 0).row]
    rect = view.visualItemRect(view.item(0, 0))
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    z = (biggest["bbox_z0"] + biggest["bbox_z1"] - 1) // 2
    assert win.canvas.axis == "z" and win.canvas.index == z and win.canvas.cursor[0] == z
    objects = np.asarray(win.session["objects"].data)
    assert objects[win.canvas.cursor] == biggest["id"] or (objects[z] == biggest["id"]).any()
    # framed in the 3-D view: a yellow box around the object's voxels, in world (x, y, z) units
    sp = np.asarray(win.canvas.volume.spacing)[::-1]
    box = win.view3d.plotter.actors["highlight"].GetBounds()
    lo = np.array([biggest["bbox_x0"], biggest["bbox_y0"], biggest["bbox_z0"]]) * sp
    hi = np.array([biggest["bbox_x1"], biggest["bbox_y1"], biggest["bbox_z1"]]) * sp
    org = np.asarray(win.canvas.volume.origin)[::-1]
    assert np.allclose(box[::2], org + lo - sp / 2) and np.allclose(box[1::2], org + hi - sp / 2)
    # a column's histogram from its header's menu: the action runs (recorded), its picture docks
    menu = win.table_dock.header_menu("equivalent_diameter")
    menu.actions()[0].trigger()
    settle(qtbot, win)
    assert win.messages == [], win.messages
    assert win.plot_dock.isVisible() and win.plot_dock.path.endswith("table_equivalent_diameter_histogram.png")
    assert not win.plot_dock.label.pixmap().isNull()
    assert not win.table_dock.header_menu("touches_border").actions()[0].isEnabled()
    # Render > Report of this session: a page of what the session saved, opened in the browser
    opened = []
    win.open_in_browser = opened.append
    accept(win.open_action("report", {"path": "session_report.html"}))
    settle(qtbot, win)
    assert win.messages == [] and len(opened) == 1 and opened[0].name == "session_report.html"
    assert "table_equivalent_diameter_histogram.png" in opened[0].read_text()
    render = next(m.menu() for m in win.menuBar().actions() if m.text().replace("&", "") == "Render")
    assert "Report of this session…" in [a.text() for a in render.actions()]
    text = win.macro.text()
    assert 'objects = label_objects(truth, class="pore")' in text and "measure_objects(objects)" in text
    assert 'equivalent_diameter_histogram = histogram(table, path="table_equivalent_diameter_histogram.png")' in text
    assert win.messages == []


def _truth_file(truth, path):
    from damselfly.engine.io import _files as io

    return io.write_volume(truth, path.parent / "truth.tif")
