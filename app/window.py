"""The main window. Thin: menus and toolbars come from the action registry, every action runs through
the session (so the recorder sees it), long work runs in the worker thread, and what a person makes by
hand (painted labels, boxes) becomes action arguments.

Every menu and toolbar entry carries ``data()`` of either ``{"action": name}`` (a registered action:
recorded) or ``{"view": reason}`` (a pure view or painting operation: nothing to record, or recorded
through the objects it edits). A test walks them all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QKeySequence
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from damselfly.engine import DamselflyError, Labels, Session, Settings, Table, Volume, make_classes
from damselfly.engine.data import LabelClass
from damselfly.engine.model import Model
from damselfly.engine.registry import object_classes
from damselfly.macros.batch import run_batch
from damselfly.macros.checker import check
from damselfly.macros.interpreter import execute
from damselfly.macros.parser import parse
from damselfly.macros.recorder import Recorder

from .macro_panel import MacroPanel
from .params import ParamDialog
from .slices import SliceCanvas
from .training import TrainingDialog
from .worker import Worker

CATEGORY_ORDER = ["File", "Process", "Segment", "Measure", "Render"]
MODEL_SUFFIX = ".dfmodel"


def _num_edit() -> QLineEdit:
    e = QLineEdit()
    e.setMaximumWidth(90)
    return e


def _describe(obj) -> str:
    if isinstance(obj, Labels):
        return f"Labels {'×'.join(map(str, obj.shape))} ({', '.join(obj.class_names)})"
    if isinstance(obj, Volume):
        return f"Volume {'×'.join(map(str, obj.shape))} {obj.data.dtype}"
    if isinstance(obj, Model):
        return f"Model ({', '.join(obj.class_names)})"
    if isinstance(obj, Table):
        return "Table"
    return type(obj).__name__


class MainWindow(QMainWindow):
    def __init__(self, base_dir: Path | None = None, out_dir: Path | None = None, device: str = "auto",
                 with_3d: bool = True):
        super().__init__()
        self.setWindowTitle("Damselfly")
        base = Path(base_dir or Path.cwd()).resolve()
        out = Path(out_dir or base / "damselfly-out").resolve()
        self.worker = Worker(self)
        # a file chosen in a dialog is an explicit choice: outputs may go anywhere (inputs stay protected)
        self.session = Session(Settings(device=device, base_dir=base, out_dir=out, allow_outside=True),
                               self.worker.reporter)
        self.session.subscribe(lambda ev: self.worker.named.emit("action", {"event": ev}))
        self.recorder: Recorder | None = None
        self.macro_dir = out / "macro"
        self.boxes: list[list[int]] = []
        self.messages: list[str] = []  # every error shown, for the log and tests
        self.last_result = None
        self.training: TrainingDialog | None = None
        self.volume_name: str | None = None
        self.labels_name: str | None = None
        self._build(with_3d)
        self.worker.progress.connect(self._on_progress)
        self.worker.named.connect(self._on_named)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.stopped.connect(self._on_stopped)
        self.worker.busy_changed.connect(self._on_busy)
        self.setAcceptDrops(True)
        self.resize(1400, 860)

    # ------------------------------------------------------------------------------------------ UI
    def _build(self, with_3d: bool) -> None:
        # slice view with its controls
        self.canvas = SliceCanvas()
        self.canvas.painted.connect(self._on_painted)
        self.canvas.box_drawn.connect(self._on_box)
        self.canvas.moved.connect(lambda t: self.statusBar().showMessage(t))
        slice_host = QWidget()
        sl = QVBoxLayout(slice_host)
        sl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.axis_box = QComboBox()
        for a, name in (("z", "axial (z)"), ("y", "coronal (y)"), ("x", "sagittal (x)")):
            self.axis_box.addItem(name, a)
        self.axis_box.currentIndexChanged.connect(lambda _i: self._set_axis(self.axis_box.currentData()))
        self.slider = QSlider(Qt.Horizontal)
        self.slider.valueChanged.connect(self.canvas.set_index)
        self.slider.valueChanged.connect(lambda _v: self._sync_plane() if self.plane_action.isChecked() else None)
        self.slice_label = QLabel("0")
        self.slider.valueChanged.connect(lambda v: self.slice_label.setText(str(v)))
        row.addWidget(self.axis_box)
        row.addWidget(self.slider, 1)
        row.addWidget(self.slice_label)
        sl.addLayout(row)
        sl.addWidget(self.canvas, 1)
        wl = QHBoxLayout()
        self.low_edit, self.high_edit = _num_edit(), _num_edit()
        self.low_edit.editingFinished.connect(self._set_window)
        self.high_edit.editingFinished.connect(self._set_window)
        wl.addWidget(QLabel("window"))
        wl.addWidget(self.low_edit)
        wl.addWidget(self.high_edit)
        wl.addStretch(1)
        sl.addLayout(wl)

        self.view3d = None
        if with_3d:
            from .view3d import View3D

            self.view3d = View3D()
        split = QSplitter()
        split.addWidget(slice_host)
        if self.view3d is not None:
            split.addWidget(self.view3d)
        self.setCentralWidget(split)

        # data panel
        self.data_list = QListWidget()
        self.data_list.itemSelectionChanged.connect(self._on_select)
        dock = QDockWidget("Data", self)
        dock.setObjectName("data")
        dock.setWidget(self.data_list)
        self.addDockWidget(Qt.LeftDockWidgetArea, dock)

        # painting panel: classes, brush
        paint = QWidget()
        pl = QVBoxLayout(paint)
        self.class_box = QComboBox()
        self.class_box.currentIndexChanged.connect(self._on_class)
        pl.addWidget(QLabel("class"))
        pl.addWidget(self.class_box)
        brow = QHBoxLayout()
        for text, fn in (("add", self.add_class), ("rename", self.rename_class), ("colour", self.recolour_class)):
            b = QPushButton(text)
            b.clicked.connect(lambda _c=False, f=fn: f())
            brow.addWidget(b)
        pl.addLayout(brow)
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 100)
        self.brush_spin.setValue(self.canvas.brush)
        self.brush_spin.valueChanged.connect(lambda v: setattr(self.canvas, "brush", v))
        pl.addWidget(QLabel("brush size"))
        pl.addWidget(self.brush_spin)
        pl.addStretch(1)
        pdock = QDockWidget("Paint", self)
        pdock.setObjectName("paint")
        pdock.setWidget(paint)
        self.addDockWidget(Qt.LeftDockWidgetArea, pdock)

        # macro panel
        self.macro = MacroPanel(self.session.settings.base_dir)
        self.macro.check_options = {"out_dir": self.session.settings.out_dir, "allow_outside": True}
        self.macro.record_toggled.connect(self.set_recording)
        self.macro.run_requested.connect(self.run_macro_text)
        self.macro.batch_requested.connect(self._ask_batch)
        self.macro.stop_requested.connect(self.stop)
        mdock = QDockWidget("Macro", self)
        mdock.setObjectName("macro")
        mdock.setWidget(self.macro)
        self.addDockWidget(Qt.RightDockWidgetArea, mdock)
        self.batch_table = QTableWidget(0, 4)
        self.batch_table.setHorizontalHeaderLabels(["scan", "status", "seconds", "error"])
        bdock = QDockWidget("Batch results", self)
        bdock.setObjectName("batch")
        bdock.setWidget(self.batch_table)
        self.addDockWidget(Qt.RightDockWidgetArea, bdock)
        bdock.hide()
        self.batch_dock = bdock

        # progress + stop in the status bar
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.stop_button)
        self._build_menus()

    def _qaction(self, text: str, data: dict, slot, menu=None, shortcut=None, checkable=False) -> QAction:
        a = QAction(text, self)
        a.setData(data)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.setCheckable(checkable)
        a.triggered.connect(lambda _c=False: slot())
        if menu is not None:
            menu.addAction(a)
        return a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        specs = {s.name: s for s in self.session.registry.all()}
        menus = {}
        for cat in CATEGORY_ORDER + sorted({s.category for s in specs.values()} - set(CATEGORY_ORDER)):
            menus[cat] = mb.addMenu(cat)
        self.action_entries: dict[str, QAction] = {}
        file_menu = menus["File"]
        for spec in sorted(specs.values(), key=lambda s: s.name):
            a = self._qaction(spec.title, {"action": spec.name}, lambda n=spec.name: self.open_action(n),
                              menus[spec.category])
            a.setToolTip(spec.summary)
            a.setStatusTip(spec.summary)
            self.action_entries[spec.name] = a
        file_menu.addSeparator()
        self._qaction("Open macro…", {"view": "opens a macro in the editor"}, self._ask_open_macro, file_menu)
        self._qaction("Save macro as…", {"view": "writes the editor's text"}, self._ask_save_macro, file_menu)
        file_menu.addSeparator()
        self._qaction("Quit", {"view": "closes the window"}, self.close, file_menu, "Ctrl+Q")

        seg = menus["Segment"]
        seg.addSeparator()
        self._qaction("Predict current slice into labels", {"view": "painting aid: writes the model's "
                      "prediction into the label layer, which is recorded as a file when used"},
                      self.predict_slice, seg)

        edit = mb.addMenu("Paint")
        self._qaction("New label layer…", {"view": "makes an empty label layer to paint (recorded as a "
                      "file when an action uses it)"}, self._ask_new_layer, edit)
        self._qaction("Undo", {"view": "painting"}, self.canvas.undo, edit, "Ctrl+Z")
        self._qaction("Redo", {"view": "painting"}, self.canvas.redo, edit, "Ctrl+Shift+Z")
        self._qaction("Fill slice", {"view": "painting"}, self.canvas.fill_slice, edit, "Ctrl+F")
        edit.addSeparator()
        self._qaction("Add class…", {"view": "painting"}, self.add_class, edit)
        self._qaction("Rename class…", {"view": "painting"}, self.rename_class, edit)
        self._qaction("Recolour class…", {"view": "painting"}, self.recolour_class, edit)
        edit.addSeparator()
        group = QActionGroup(self)
        self.tool_actions = {}
        for tool, key in (("navigate", "N"), ("brush", "B"), ("eraser", "E"), ("box", "R")):
            a = self._qaction(tool.capitalize(), {"view": "slice tool"}, lambda t=tool: self.set_tool(t), edit,
                              key, checkable=True)
            group.addAction(a)
            self.tool_actions[tool] = a
        self.tool_actions["navigate"].setChecked(True)

        view = mb.addMenu("View")
        for a in ("z", "y", "x"):
            self._qaction(f"Slice axis {a}", {"view": "slice axis"}, lambda ax=a: self._set_axis(ax), view)
        self._qaction("Update 3-D view", {"view": "redraws the 3-D view"}, self.update_3d, view, "Ctrl+U")
        self.plane_action = self._qaction("Slice plane in 3-D", {"view": "shows the slice view's plane in 3-D"},
                                          self._sync_plane, view, checkable=True)
        for name in ("iso", "front", "side", "top"):
            self._qaction(f"Camera: {name}", {"view": "camera preset"},
                          lambda n=name: self.view3d and self.view3d.preset(n), view)
        self._qaction("Snapshot of this view…", {"action": "snapshot"}, self.snapshot_of_view, view)

        macro = mb.addMenu("Macro")
        self.record_action = self._qaction("Record", {"view": "starts/stops the recorder"},
                                           lambda: self.macro.record_button.toggle(), macro, checkable=True)
        self._qaction("Run macro", {"view": "runs the editor's macro (its actions are the macro's)"},
                      lambda: self.run_macro_text(self.macro.text()), macro, "F5")
        self._qaction("Run on files…", {"view": "batch run of the editor's macro"},
                      lambda: self._ask_batch(self.macro.text()), macro)
        self._qaction("Stop", {"view": "stops the running work"}, self.stop, macro, "Esc")

        tb = self.addToolBar("Actions")
        tb.setObjectName("actions")
        for spec in sorted((s for s in specs.values() if s.presentation.toolbar is not None),
                           key=lambda s: s.presentation.toolbar):
            tb.addAction(self.action_entries[spec.name])
        tb.addSeparator()
        for tool in ("brush", "eraser", "box", "navigate"):
            tb.addAction(self.tool_actions[tool])

    # ------------------------------------------------------------------------------ data / views
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
        if isinstance(obj, Labels):
            if self.canvas.volume is not None and tuple(obj.shape) != tuple(self.canvas.volume.shape[:3]):
                self.show_error(f"'{name}' has shape {obj.shape}, the shown volume {self.canvas.volume.shape}")
                return
            self.labels_name = name
            self.canvas.set_labels(obj)
            self._refresh_classes()
        elif isinstance(obj, Volume):
            self.volume_name = name
            self.canvas.set_volume(obj)
            if self.canvas.labels is not None and tuple(self.canvas.labels.shape) != tuple(obj.shape[:3]):
                self.labels_name = None
                self.canvas.set_labels(None)
                self._refresh_classes()
            lo, hi = self.canvas.window
            self.low_edit.setText(f"{lo:.4g}")
            self.high_edit.setText(f"{hi:.4g}")
        self._sync_slider()
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
        self.canvas.set_axis(axis)
        i = self.axis_box.findData(axis)
        if i != self.axis_box.currentIndex():
            self.axis_box.setCurrentIndex(i)
        self._sync_slider()

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

    def _set_window(self) -> None:
        try:
            lo, hi = float(self.low_edit.text()), float(self.high_edit.text())
        except ValueError:
            return
        if hi > lo:
            self.canvas.window = (lo, hi)
            self.canvas.update()

    def update_3d(self) -> None:
        if self.view3d is None:
            return
        vol = self.session.objects.get(self.volume_name) if self.volume_name else None
        lab = self.session.objects.get(self.labels_name) if self.labels_name else None
        try:
            self.view3d.show_scene(vol, lab if lab is not None and np.any(lab.data) else None)
        except Exception as e:  # a scene that cannot be drawn is a message, not a crash
            self.show_error(f"3-D view: {e}")

    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.tool_actions[tool].setChecked(True)

    # ------------------------------------------------------------------------------ painting
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

    def _refresh_classes(self) -> None:
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

    def rename_class(self, new: str | None = None) -> None:
        lab = self._layer()
        if lab is None or not lab.classes:
            return
        k = self.canvas.current_class
        old = next(c for c in lab.classes if c.index == k)
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
        lab = self._layer()
        if lab is None or not lab.classes:
            return
        k = self.canvas.current_class
        old = next(c for c in lab.classes if c.index == k)
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

    def _on_box(self, box: list) -> None:
        self.boxes.append(box)
        del self.boxes[:-8]
        self.statusBar().showMessage(f"box {box} (offered to crop, two_point calibration and the training preview)")

    def predict_slice(self) -> None:
        """Segment-and-correct: the newest model's prediction of the current axial slice goes into the
        label layer (only that slice), to be corrected with the brush."""
        from damselfly.engine.inference import model_inputs, predict_slice

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
        volumes = [o for o in self.session.objects.values() if isinstance(o, Volume) and not isinstance(o, Labels)]
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

        self._pending = put
        self._start("predict slice", lambda: predict_slice(model, images, z, device=device))

    # ------------------------------------------------------------------------------ actions
    def _defaults_for(self, spec) -> dict:
        """Sensible pre-filled arguments: the shown volume and label layer, the newest model."""
        pre = {}
        objs = self.session.objects
        vol = self.volume_name if self.volume_name in objs else None
        lab = self.labels_name if self.labels_name in objs else None
        models = [n for n, o in objs.items() if isinstance(o, Model)]
        camera = dict(zip(("azimuth", "elevation", "zoom"), self.view3d.camera_angles())) if self.view3d else {}
        for p in spec.params:
            cls = object_classes(p.annotation)
            if spec.role(p.name) == "camera" and p.name in camera:
                pre[p.name] = camera[p.name]
            if not p.required and spec.role(p.name) != "shown_labels":
                continue
            shown = {Labels: lab, Volume: vol, Model: models[-1] if models else None}
            for c in cls:  # the annotation's first type that is on show: ``Volume | Labels`` prefers the volume
                if shown.get(c) is not None:
                    pre[p.name] = shown[c]
                    break
        return pre

    def open_action(self, name: str, preset: dict | None = None, show: bool = True) -> ParamDialog:
        """The action's parameter dialog, pre-filled; accepting it runs the action."""
        spec = self.session.registry.get(name)
        pre = self._defaults_for(spec)
        pre.update(preset or {})
        dlg = ParamDialog(spec, dict(self.session.objects), pre, self.session.unique_name(spec.result_name),
                          self.boxes, self)
        dlg.accepted.connect(lambda: self.run_action(name, target=dlg.result_name(), **dlg.values()))
        if show:
            dlg.open()
        return dlg

    def run_action(self, name: str, *args, target: str | None = None, **kwargs) -> bool:
        """Run a registered action through the session in the worker thread (recorded if recording)."""
        spec = self.session.registry.get(name)
        if spec.presentation.monitor == "training":
            self._open_training()
        return self._start(name, lambda: self.session.run(spec, *args, target=target, **kwargs))

    def snapshot_of_view(self) -> None:
        if self.volume_name is None:
            self.show_error("open a volume first")
            return
        self.open_action("snapshot")  # camera roles are pre-filled from this view

    def _is_training(self, label: str) -> bool:
        """Whether the finished job was an action the training monitor follows."""
        return (self.training is not None and label in {s.name for s in self.session.registry.all()}
                and self.session.registry.get(label).presentation.monitor == "training")

    def _open_training(self) -> None:
        self.training = TrainingDialog(self)
        self.training.stop_requested.connect(self.stop)
        self.training.save_requested.connect(self._save_trained)
        self.training.show()

    def _save_trained(self) -> None:
        models = [n for n, o in self.session.objects.items() if isinstance(o, Model)]
        if models:
            self.open_action("save_model", {"model": models[-1], "path": f"{models[-1]}{MODEL_SUFFIX}"})

    def stop(self) -> None:
        self.worker.stop()

    def _start(self, label: str, fn) -> bool:
        if not self.worker.start(label, fn):
            self.show_error("busy: wait for the running work to finish, or press Stop")
            return False
        self.progress.setRange(0, 0)
        self.progress.setFormat(label)
        self.progress.show()
        return True

    # ------------------------------------------------------------------------------ worker signals
    def _on_busy(self, busy: bool) -> None:
        self.stop_button.setEnabled(busy)
        self.macro.set_busy(busy)
        if not busy:
            self.progress.hide()

    def _on_progress(self, message: str, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        else:
            self.progress.setRange(0, 0)
        self.progress.setFormat(f"{message[:40]} %p%")
        self.statusBar().showMessage(message)

    def _on_named(self, name: str, data: dict) -> None:
        if name == "epoch" and self.training is not None:
            self.training.on_epoch(data)
        elif name == "batch_item":
            self._add_batch_row(data["item"])
        elif name == "action":
            ev = data["event"]
            self.refresh_data()
            if self.recorder is not None:
                self.macro.set_text(self.recorder.text())
            res = ev.result
            if ev.target and isinstance(res, Labels) and (self.canvas.volume is None or
                                                           tuple(res.shape) == tuple(self.canvas.volume.shape[:3])):
                self.select(ev.target)
                self.update_3d()
            elif ev.target and isinstance(res, Volume) and not isinstance(res, Labels):
                self.select(ev.target)
                if self.canvas.volume is res and ev.action == "load":
                    self.canvas.set_axis(self.canvas.axis)
                    self._sync_slider()
                self.update_3d()

    def _on_done(self, label: str, result) -> None:
        self.last_result = result
        put = getattr(self, "_pending", None)
        if label == "predict slice" and put is not None:
            self._pending = None
            put(result)
        if self._is_training(label):
            self.training.finished_training("finished: Save model… to keep it")
        self.statusBar().showMessage(f"{label}: done", 5000)

    def _on_failed(self, label: str, message: str) -> None:
        self.show_error(f"{label} failed:\n{message}")
        if self._is_training(label):
            self.training.finished_training("failed")

    def _on_stopped(self, label: str, message: str) -> None:
        self.statusBar().showMessage(f"{label}: {message}", 8000)
        self.refresh_data()
        if self._is_training(label):
            self.training.finished_training(f"stopped: {message}")

    def show_error(self, message: str) -> None:
        """A message box that names the file and line (never a crash); kept in ``messages``."""
        self.messages.append(message)
        self.statusBar().showMessage(message.splitlines()[0], 10000)
        box = QMessageBox(QMessageBox.Warning, "Damselfly", message, QMessageBox.Ok, self)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.open()
        self._last_box = box

    # ------------------------------------------------------------------------------ recording
    def set_recording(self, on: bool) -> None:
        if on and self.recorder is None:
            self.macro_dir.mkdir(parents=True, exist_ok=True)
            self.recorder = Recorder(self.session, macro_dir=self.macro_dir, comment="recorded in Damselfly")
            self.macro.path = None
            self.macro.base_dir = self.macro_dir
            self.macro.set_text(self.recorder.text())
        elif not on and self.recorder is not None:
            self.recorder.stop()
            self.macro.set_text(self.recorder.text())
            self.recorder = None
        self.record_action.setChecked(on)
        if self.macro.record_button.isChecked() != on:
            self.macro.record_button.setChecked(on)

    def save_macro(self, path: Path) -> Path:
        """Write the editor's macro to ``path``; the recorded assets (painted labels) go beside it."""
        path = Path(path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.macro.text(), encoding="utf-8")
        assets = self.macro_dir / "assets"
        if assets.is_dir() and path.parent != self.macro_dir.resolve():
            shutil.copytree(assets, path.parent / "assets", dirs_exist_ok=True)
        self.macro.path = path
        self.macro.base_dir = path.parent
        return path

    def _ask_save_macro(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save macro", str(self.macro_dir / "recorded.dfm"),
                                              "Damselfly macros (*.dfm)")
        if path:
            self.save_macro(Path(path if path.endswith(".dfm") else path + ".dfm"))

    def _ask_open_macro(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open macro", str(self.session.settings.base_dir),
                                              "Damselfly macros (*.dfm)")
        if path:
            self.macro.open(Path(path))

    def run_macro_text(self, text: str) -> bool:
        """Check the editor's macro, then run it in this session (results appear in the data panel)."""
        name = str(self.macro.path) if self.macro.path else "<editor>"
        diags = self.macro.check_now()
        if any(d.severity == "error" for d in diags):
            self.show_error("the macro has errors:\n" + "\n".join(d.format() for d in diags))
            return False
        macro = parse(text, name)
        res = check(macro, base_dir=self.macro.base_dir, **self.macro.check_options)
        settings = self.session.settings

        def job():
            old = settings.base_dir
            settings.base_dir = Path(self.macro.base_dir)
            try:
                return execute(macro, self.session, res.params)
            finally:
                settings.base_dir = old

        return self._start("macro", job)

    def _ask_batch(self, text: str) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Scans to run the macro on", str(self.session.settings.base_dir))
        if not files:
            return
        out = QFileDialog.getExistingDirectory(self, "Output folder", str(self.session.settings.out_dir))
        if out:
            self.run_batch(files, Path(out))

    def run_batch(self, files: list[str], out_dir: Path) -> bool:
        """Run the editor's macro once per file into ``out_dir/<stem>/``; results fill the batch table."""
        path = self.macro.path
        if path is None or self.macro.text() != path.read_text(encoding="utf-8"):
            path = self.save_macro(self.macro_dir / "batch.dfm")
        self.batch_table.setRowCount(0)
        self.batch_dock.show()
        self.batch_results = []

        def on_item(r):
            self.worker.named.emit("batch_item", {"item": r})

        return self._start("batch", lambda: run_batch(path, list(files), out_dir=out_dir, on_item=on_item,
                                                      device=self.session.settings.device,
                                                      reporter=self.worker.reporter))

    def _add_batch_row(self, r) -> None:
        self.batch_results.append(r)
        row = self.batch_table.rowCount()
        self.batch_table.insertRow(row)
        for col, v in enumerate((Path(r.item).name, r.status, f"{r.seconds:.1f}", (r.error or "").splitlines()[0]
                                 if r.error else "")):
            self.batch_table.setItem(row, col, QTableWidgetItem(v))

    # ------------------------------------------------------------------------------ files
    def open_files(self, paths: list[str]) -> bool:
        """What File > Open and drag and drop do: macros to the editor; models, labels and volumes into
        the session through their load actions (so they are recorded), in one background job."""
        calls = []
        for path in paths:
            p = Path(path)
            if p.suffix == ".dfm":
                self.macro.open(p)
            elif p.name.endswith(MODEL_SUFFIX):
                calls.append(("load_model", str(p), "model"))
            elif Path(str(p) + ".json").exists() or "label" in p.name.lower():
                calls.append(("load_labels", str(p), "labels"))
            else:
                calls.append(("load", str(p), "raw"))
        if not calls:
            return False

        def job():
            for action, path, base in calls:
                self.session.run(action, path, target=self.session.unique_name(base))

        return self._start("open", job)

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        self.open_files([u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()])

    def closeEvent(self, ev) -> None:
        self.worker.stop()
        self.worker.wait(5)
        if self.view3d is not None:
            self.view3d.close_view()
        super().closeEvent(ev)
