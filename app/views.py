"""The data panel and the views of the main window: the session's objects listed, the shown volume and
label layer, the slice slider and axis, window/level, the 3-D view (drawn in the worker thread's
results, never on a long job in the GUI thread) and the slice tools."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidgetItem

from damselfly.engine import Labels, Table, Volume
from damselfly.engine.io import overview
from damselfly.engine.segmentation._model import Model

from .histogram import fmt_value
from .slices import PREVIEW_VOXELS
from .tables import table_of


def _describe(obj) -> str:
    """One line about a session object for the data panel."""
    if isinstance(obj, Labels):
        return f"Labels {'×'.join(map(str, obj.shape))} ({', '.join(obj.class_names)})"
    if isinstance(obj, Volume):
        return f"Volume {'×'.join(map(str, obj.shape))} {obj.data.dtype}"
    if isinstance(obj, Model):
        return f"Model ({', '.join(obj.class_names)})"
    if isinstance(obj, Table):
        return "Table"
    return type(obj).__name__


class DataViewsMixin:
    """The data panel and views of :class:`~damselfly.app.window.MainWindow`."""

    def refresh_data(self) -> None:
        keep = self.data_list.currentItem().data(Qt.UserRole) if self.data_list.currentItem() else None
        self.data_list.blockSignals(True)
        self.data_list.clear()
        for name, obj in self.session.objects.items():
            item = QListWidgetItem(f"{name} — {_describe(obj)}")
            item.setData(Qt.UserRole, name)
            self.data_list.addItem(item)
            if name == keep:
                self.data_list.setCurrentItem(item)
        self.data_list.blockSignals(False)

    def select(self, name: str) -> None:
        """Show object ``name``: a volume in the slice and 3-D views, labels as the paint layer."""
        obj = self.session.objects[name]
        if table_of(obj) is not None:
            self.table_dock.show_table(table_of(obj), name)
        if isinstance(obj, Labels):
            if self.canvas.volume is not None and tuple(obj.shape) != tuple(self.canvas.volume.shape[:3]):
                self.show_error(f"'{name}' has shape {obj.shape}, the shown volume {self.canvas.volume.shape}")
                return
            self.labels_name = name
            self.canvas.set_labels(obj)
            self._refresh_classes()
        elif isinstance(obj, Volume) and obj.metadata.get("display") == "overlay":
            if self.canvas.volume is not None and tuple(obj.shape[:3]) == tuple(self.canvas.volume.shape[:3]):
                self.canvas.heat = obj  # drawn over the scan (uncertainty: where to paint next)
            else:
                self.show_error(f"'{name}' has shape {obj.shape}, the shown volume {self.canvas.volume.shape}"
                                if self.canvas.volume is not None else "open the scan first")
        elif isinstance(obj, Volume):
            self.volume_name = name
            self.canvas.set_volume(obj)
            if self.canvas.labels is not None and tuple(self.canvas.labels.shape) != tuple(obj.shape[:3]):
                self.labels_name = None
                self.canvas.set_labels(None)
                self._refresh_classes()
            integer = obj.data.dtype.kind in "iub"
            self.histogram.set_data(overview(obj, PREVIEW_VOXELS), integer)
            self._window_from_histogram(*self.canvas.window)
        self._sync_slider()
        self.canvas.update()

    def _data_menu(self, pos) -> None:
        """Right click on the data panel: rename, save or delete the object."""
        from PySide6.QtWidgets import QMenu

        item = self.data_list.itemAt(pos)
        if item is None:
            return
        name = item.data(Qt.UserRole)
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename_object(name))
        if isinstance(self.session[name], Model):
            menu.addAction("Save…", lambda: self.open_action("save_model", {"model": name}))
        else:
            menu.addAction("Save…", lambda: self.open_action("save", {"obj": name}))
        menu.addAction("Delete", lambda: self.delete_object(name))
        menu.popup(self.data_list.mapToGlobal(pos))
        self._data_menu_popup = menu

    def rename_object(self, name: str, new: str | None = None) -> bool:
        """Rename a session object (a new name must be a macro name, not taken)."""
        import re

        from PySide6.QtWidgets import QInputDialog

        if new is None:
            new, ok = QInputDialog.getText(self, "Rename", f"new name for '{name}'", text=name)
            if not ok:
                return False
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new or "") or new in self.session.objects:
            self.show_error(f"cannot rename '{name}' to '{new}': use a new name of letters, digits and _")
            return False
        self.session.objects = {new if k == name else k: v for k, v in self.session.objects.items()}
        self.volume_name = new if self.volume_name == name else self.volume_name
        self.labels_name = new if self.labels_name == name else self.labels_name
        self.refresh_data()
        return True

    def delete_object(self, name: str) -> None:
        """Remove an object from the session (files are not touched)."""
        obj = self.session.objects.pop(name, None)
        if obj is self.canvas.labels:
            self.canvas.set_labels(None)
            self.labels_name = None
            self._refresh_classes()
        if obj is self.canvas.volume:
            self.canvas.set_volume(None)
            self.volume_name = None
        self.refresh_data()
        self.canvas.update()

    def _on_select(self) -> None:
        item = self.data_list.currentItem()
        if item is not None:
            self.select(item.data(Qt.UserRole))

    def _sync_slider(self) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, self.canvas.depth - 1))
        self.slider.setValue(self.canvas.index)
        self.slider.blockSignals(False)
        self.slice_label.setText(str(self.canvas.index))

    def _set_axis(self, axis: str) -> None:
        if axis != self.canvas.axis:
            self.canvas.set_axis(axis)  # emits axis_changed -> _on_canvas_axis
        self._on_canvas_axis(axis)

    def _on_canvas_axis(self, axis: str) -> None:
        """The canvas shows another axis (the axis box, or undo going back to an edited plane)."""
        i = self.axis_box.findData(axis)
        if i != self.axis_box.currentIndex():
            self.axis_box.blockSignals(True)
            self.axis_box.setCurrentIndex(i)
            self.axis_box.blockSignals(False)
        self._sync_slider()

    def _on_canvas_index(self, index: int) -> None:
        """One slice index: whatever moved the canvas (wheel, keys, undo), the slider follows."""
        if self.slider.value() != index:
            self.slider.setValue(index)
        self.slice_label.setText(str(index))

    def _on_brush_step(self, step: int) -> None:
        self.brush_spin.setValue(self.brush_spin.value() + step)

    def go_to_object(self, row: dict) -> None:
        """A row of an object table chosen: show the axial slice through the object's middle with the
        linked cursor on it (rows without a bounding box are not objects: nothing happens)."""
        keys = [f"bbox_{a}" for a in ("z0", "y0", "x0", "z1", "y1", "x1")]
        if self.canvas.volume is None or not all(k in row for k in keys):
            return
        z0, y0, x0, z1, y1, x1 = (int(row[k]) for k in keys)
        z, y, x = (z0 + z1 - 1) // 2, (y0 + y1 - 1) // 2, (x0 + x1 - 1) // 2
        if self.canvas.axis != "z":
            self._set_axis("z")
        self.set_slice(z)
        self.canvas.set_cursor((y, x))
        if self.view3d is not None:  # framed in 3-D: world (x, y, z), voxel edges half a voxel out
            sp, org = np.asarray(self.canvas.volume.spacing, float), np.asarray(self.canvas.volume.origin, float)
            lo = org + (np.array([z0, y0, x0]) - 0.5) * sp
            hi = org + (np.array([z1, y1, x1]) - 0.5) * sp
            self.view3d.highlight((lo[2], hi[2], lo[1], hi[1], lo[0], hi[0]))
        self.statusBar().showMessage(f"object {row.get('id', '')}: z {z}, y {y}, x {x}", 8000)

    def histogram_of(self, table: str, column: str) -> None:
        """A column's histogram asked for in the table dock: the ``histogram`` action (recorded like any
        other); its picture then shows in the plot dock."""
        if table not in self.session.objects:
            return
        self.run_action("histogram", table=self.session.objects[table], column=column, path=f"{table}_{column}_histogram.png",
                        target=self.session.unique_name(f"{column}_histogram"))

    def _on_class_key(self, k: int) -> None:
        if self.canvas.labels is not None and k <= len(self.canvas.labels.classes):
            self.canvas.current_class = k
            self._refresh_classes()

    def _sync_plane(self) -> None:
        if self.view3d is None:
            return
        if not self.plane_action.isChecked() or self.canvas.shape is None:
            self.view3d.set_plane(None)
            return
        # slice view index axis -> world axis of the scene (z, y, x index order = world z, y, x)
        self.view3d.set_plane(self.canvas.axis, self.canvas.index / max(1, self.canvas.depth - 1))

    def set_slice(self, index: int) -> None:
        self.slider.setValue(index)
        self.canvas.set_index(index)

    def _window_from_histogram(self, lo: float, hi: float) -> None:
        """A window dragged on the histogram or the slice (right button), or set on loading."""
        integer = self.histogram.integer
        self.canvas.window = (lo, hi)
        self.histogram.set_window(lo, hi)
        self.low_edit.setText(fmt_value(lo, integer))
        self.high_edit.setText(fmt_value(hi, integer))
        self.canvas.update()

    def _set_window(self) -> None:
        try:
            lo, hi = float(self.low_edit.text()), float(self.high_edit.text())
        except ValueError:
            return
        if hi > lo:
            self.canvas.window = (lo, hi)
            self.histogram.set_window(lo, hi)
            self.canvas.update()

    def update_3d(self) -> None:
        if self.view3d is None:
            return
        vol = self.session.objects.get(self.volume_name) if self.volume_name else None
        lab = self.session.objects.get(self.labels_name) if self.labels_name else None
        hidden = set(self.canvas.hidden_classes) if lab is self.canvas.labels else set()
        self.view3d.show_scene(vol, lab, hidden)  # prepared in a thread; its status line says what goes wrong

    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.tool_actions[tool].setChecked(True)
