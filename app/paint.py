"""Painting in the main window: label layers, classes (add, rename, recolour), boxes, and
segment-and-correct (the newest model's prediction of the current slice into the label layer)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog,
    QInputDialog,
)

from damselfly.engine import DamselflyError, Labels, Volume, make_classes
from damselfly.engine.core.data import LabelClass
from damselfly.engine.segmentation._model import Model


class PaintMixin:
    """The paint controller of :class:`~damselfly.app.window.MainWindow`."""

    def new_label_layer(self, names: list[str], name: str = "painted") -> Labels:
        """An empty label layer over the shown volume, held by the session (not an action: it is
        saved beside the macro when an action uses it)."""
        vol = self.canvas.volume
        if vol is None:
            raise ValueError("open a volume first")
        layer = vol.as_labels(np.zeros(vol.shape[:3], np.uint8), make_classes(names), name=name, metadata={})
        name = self.session.unique_name(name)
        self.session.add(name, layer)
        self.refresh_data()
        self.select(name)
        return layer

    def _ask_new_layer(self) -> None:
        if self.canvas.volume is None:
            self.show_error("open a volume first (File > Open volume…)")
            return
        text, ok = QInputDialog.getText(self, "New label layer", "classes (comma separated)", text="air, metal, pore")
        if ok:
            names = [t.strip() for t in text.split(",") if t.strip()]
            if names:
                self.new_label_layer(names)

    def _layer(self) -> Labels | None:
        if self.canvas.labels is None:
            self.show_error("no label layer: Paint > New label layer…, or open labels")
        return self.canvas.labels

    def _build_layer_panel(self, layout) -> None:
        """The label layer's display: shown or not, opacity, outline mode, and per class visibility
        (check boxes) and opacity (the slider acts on the selected class)."""
        from PySide6.QtWidgets import QCheckBox, QLabel, QListWidget, QSlider

        c = self.canvas
        self.labels_check = QCheckBox("show labels")
        self.labels_check.setChecked(True)
        self.labels_check.toggled.connect(lambda on: (setattr(c, "labels_visible", on), c.update()))
        self.outline_check = QCheckBox("outline")
        self.outline_check.toggled.connect(lambda on: (setattr(c, "outline", on), c.update()))
        self.opacity_slider = QSlider(Qt.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(round(c.overlay_alpha * 100)))
        self.opacity_slider.valueChanged.connect(lambda v: (setattr(c, "overlay_alpha", v / 100), c.update()))
        self.class_list = QListWidget()
        self.class_list.setMaximumHeight(120)
        self.class_list.itemChanged.connect(self._on_class_shown)
        self.class_list.currentItemChanged.connect(lambda *_: self._sync_class_opacity())
        self.class_opacity_slider = QSlider(Qt.Horizontal)
        self.class_opacity_slider.setRange(0, 100)
        self.class_opacity_slider.setValue(100)
        self.class_opacity_slider.valueChanged.connect(self._on_class_opacity)
        for w in (QLabel("layers"), self.labels_check, self.outline_check, QLabel("label opacity"),
                  self.opacity_slider, QLabel("classes (tick to show)"), self.class_list,
                  QLabel("selected class opacity"), self.class_opacity_slider):
            layout.addWidget(w)

    def _on_class_shown(self, item) -> None:
        k = item.data(Qt.UserRole)
        (self.canvas.hidden_classes.discard if item.checkState() == Qt.Checked else self.canvas.hidden_classes.add)(k)
        self.canvas.update()
        self._3d_timer.start()  # the 3-D view shows the ticked classes too

    def _sync_class_opacity(self) -> None:
        item = self.class_list.currentItem()
        if item is not None:
            self.class_opacity_slider.blockSignals(True)
            self.class_opacity_slider.setValue(int(round(self.canvas.class_opacity.get(item.data(Qt.UserRole), 1.0) * 100)))
            self.class_opacity_slider.blockSignals(False)

    def _on_class_opacity(self, v: int) -> None:
        item = self.class_list.currentItem()
        if item is not None:
            self.canvas.class_opacity[item.data(Qt.UserRole)] = v / 100
            self.canvas.update()

    def _refresh_class_list(self) -> None:
        from PySide6.QtWidgets import QListWidgetItem

        self.class_list.blockSignals(True)
        self.class_list.clear()
        lab = self.canvas.labels
        for c in lab.classes if lab is not None else []:
            item = QListWidgetItem(f"{c.index}: {c.name}")
            item.setData(Qt.UserRole, c.index)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked if c.index in self.canvas.hidden_classes else Qt.Checked)
            item.setData(Qt.DecorationRole, QColor(*c.color[:3]))
            self.class_list.addItem(item)
        self.class_list.blockSignals(False)

    def _refresh_classes(self) -> None:
        self._refresh_class_list()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        lab = self.canvas.labels
        for c in lab.classes if lab is not None else []:
            self.class_box.addItem(f"{c.index}: {c.name}", c.index)
            self.class_box.setItemData(self.class_box.count() - 1, QColor(*c.color[:3]), Qt.DecorationRole)
        self.class_box.blockSignals(False)
        if lab is not None and lab.classes:
            i = max(0, self.class_box.findData(self.canvas.current_class))
            self.class_box.setCurrentIndex(i)
            self.canvas.current_class = self.class_box.currentData()

    def _on_class(self, _i) -> None:
        if self.class_box.currentData() is not None:
            self.canvas.current_class = int(self.class_box.currentData())

    def set_class(self, name: str) -> None:
        self.canvas.current_class = self.canvas.labels.class_index(name)
        self._refresh_classes()

    def add_class(self, name: str | None = None, color=None) -> None:
        lab = self._layer()
        if lab is None:
            return
        if name is None:
            name, ok = QInputDialog.getText(self, "Add class", "name")
            if not ok or not name.strip():
                return
        name = name.strip()
        if name in lab.class_names:
            self.show_error(f"there is a class '{name}' already")
            return
        extra = make_classes(lab.class_names + [name])[-1]
        lab.classes = list(lab.classes) + [LabelClass(extra.index, name, tuple(color) if color else extra.color)]
        self.canvas.current_class = extra.index
        self._refresh_classes()
        self.refresh_data()

    def _current_class(self):
        """``(layer, index, class)`` of the class being painted, or ``None`` without a layer or classes."""
        lab = self._layer()
        if lab is None or not lab.classes:
            return None
        k = self.canvas.current_class
        return lab, k, next(c for c in lab.classes if c.index == k)

    def rename_class(self, new: str | None = None) -> None:
        if (current := self._current_class()) is None:
            return
        lab, k, old = current
        if new is None:
            new, ok = QInputDialog.getText(self, "Rename class", f"new name for '{old.name}'", text=old.name)
            if not ok:
                return
        new = new.strip()
        if not new or new in lab.class_names:
            self.show_error(f"cannot rename '{old.name}' to '{new}'")
            return
        lab.classes = [LabelClass(c.index, new, c.color) if c.index == k else c for c in lab.classes]
        self._refresh_classes()
        self.refresh_data()

    def recolour_class(self, color=None) -> None:
        if (current := self._current_class()) is None:
            return
        lab, k, old = current
        if color is None:
            q = QColorDialog.getColor(QColor(*old.color[:3]), self, f"Colour of '{old.name}'")
            if not q.isValid():
                return
            color = (q.red(), q.green(), q.blue(), 255)
        color = tuple(int(v) for v in color) + ((255,) if len(color) == 3 else ())
        lab.classes = [LabelClass(c.index, c.name, color) if c.index == k else c for c in lab.classes]
        self._refresh_classes()
        self.canvas.update()

    def _on_painted(self) -> None:
        self.canvas.update()
        lab = self.canvas.labels
        if self.view3d is not None and lab is not None:  # the 3-D view follows the painting, at most every 1.5 s
            if not self._3d_timer.isActive():
                self._3d_timer.start()

    def _on_box(self, box: list) -> None:
        self.boxes.append(box)
        del self.boxes[:-8]
        self.statusBar().showMessage(f"box {box} (offered to crop, two_point calibration and the training preview)")

    def predict_slice(self) -> None:
        """Segment-and-correct: the newest model's prediction of the current axial slice goes into the
        label layer (only that slice), to be corrected with the brush."""
        from damselfly.engine.segmentation._inference import model_inputs, predict_slice

        lab, vol = self._layer(), self.canvas.volume
        models = [o for o in self.session.objects.values() if isinstance(o, Model)]
        if lab is None or vol is None:
            return
        if not models:
            self.show_error("no model yet: train one on a few painted slices first")
            return
        model = models[-1]
        if self.canvas.axis != "z":
            self.show_error("predict a slice on the axial (z) view: the model works on z slices")
            return
        if model.class_names != lab.class_names[:len(model.class_names)]:
            self.show_error(f"the model's classes {model.class_names} differ from the layer's {lab.class_names}")
            return
        z = self.canvas.index
        volumes = [o for o in self.session.objects.values() if isinstance(o, Volume)]  # Labels are no Volume
        try:
            images = model_inputs(model, volumes, vol)
        except DamselflyError as e:
            self.show_error(str(e))
            return
        self.canvas.push_undo()
        device = self.session.context().device

        def put(result):
            lab.data[z] = result
            self.canvas.update()

        self._pending = ("predict slice", put)
        self._start("predict slice", lambda: predict_slice(model, images, z, device=device))
