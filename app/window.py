"""The main window. Thin: menus and toolbars come from the action registry, every action runs through
the session (so the recorder sees it), long work runs in the worker thread, and what a person makes by
hand (painted labels, boxes) becomes action arguments.

Every menu and toolbar entry carries ``data()`` of either ``{"action": name}`` (a registered action:
recorded) or ``{"view": reason}`` (a pure view or painting operation: nothing to record, or recorded
through the objects it edits). A test walks them all.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from damselfly.engine import DamselflyError, Labels, Session, Settings, Table, Volume
from damselfly.engine.io import _files as io
from damselfly.engine.registry import object_classes, takes_object_list
from damselfly.engine.segmentation._model import Model
from damselfly.macros.recorder import Recorder

from .histogram import Histogram
from .macro_control import MacroMixin
from .macro_panel import MacroPanel
from .menus import MenusMixin
from .paint import PaintMixin
from .params import ParamDialog
from .session_file import SessionFileMixin
from .slices import SliceCanvas
from .tables import PlotDock, TableDock, table_of
from .training import TrainingDialog
from .views import DataViewsMixin
from .worker import Worker

MODEL_SUFFIX = ".dfmodel"


def _num_edit() -> QLineEdit:
    e = QLineEdit()
    e.setMaximumWidth(90)
    return e


class MainWindow(MenusMixin, DataViewsMixin, PaintMixin, MacroMixin, SessionFileMixin, QMainWindow):
    """Damselfly's main window: the data panel, slice and 3-D views, and the docks; menus, the data panel
    and views, painting and macros live in their mixins (:mod:`.menus`, :mod:`.views`, :mod:`.paint`,
    :mod:`.macro_control`)."""

    def __init__(self, base_dir: Path | None = None, out_dir: Path | None = None, device: str = "auto",
                 with_3d: bool = True):
        super().__init__()
        self.setWindowTitle("Damselfly")
        base = Path(base_dir or Path.cwd()).resolve()
        from . import prefs

        out = Path(out_dir or prefs.default_out_dir()).resolve()  # never inside the raw-data folder
        self.worker = Worker(self)
        # a file chosen in a dialog is an explicit choice: outputs may go anywhere (inputs stay protected)
        self.session = Session(Settings(device=device, base_dir=base, out_dir=out, allow_outside=True),
                               self.worker.reporter)
        self.session.subscribe(lambda ev: self.worker.named.emit("action", {"event": ev}))
        self.recent: list[str] = []  # result names, newest last
        self.session.subscribe(lambda ev: ev.target and self.recent.append(ev.target))
        self.last_dir = base  # where file choosers start
        self._3d_timer = QTimer(self)  # the 3-D view follows painting at most every 1.5 s
        self._3d_timer.setSingleShot(True)
        self._3d_timer.setInterval(1500)
        self._3d_timer.timeout.connect(self.update_3d)
        self.recorder: Recorder | None = None
        self.macro_dir = out / "macro"
        self.boxes: list[list[int]] = []
        self.messages: list[str] = []  # every error shown, for the log and tests
        self.view_notes: list[str] = []  # what the 3-D view could not draw (its status line says it)
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
        from PySide6.QtWidgets import QApplication

        # a window opening (a dialog, a message, another application) ends a stroke: its release is lost
        QApplication.instance().focusWindowChanged.connect(self._on_focus_window)

    def _on_focus_window(self, _window) -> None:
        self.canvas.end_stroke()

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
        self.canvas.index_changed.connect(self._on_canvas_index)
        self.canvas.axis_changed.connect(self._on_canvas_axis)
        self.canvas.brush_step.connect(self._on_brush_step)
        self.canvas.class_key.connect(self._on_class_key)
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
        self.histogram = Histogram()
        self.histogram.window_changed.connect(self._window_from_histogram)
        self.canvas.window_dragged.connect(self._window_from_histogram)
        wl.addWidget(QLabel("window"))
        wl.addWidget(self.low_edit)
        wl.addWidget(self.histogram, 1)
        wl.addWidget(self.high_edit)
        sl.addLayout(wl)

        self.view3d = None
        if with_3d:
            from .view3d import View3D

            self.view3d = View3D()
            self.view3d.failed.connect(self._on_3d_failed)
        split = QSplitter()
        split.addWidget(slice_host)
        if self.view3d is not None:
            split.addWidget(self.view3d)
        self.setCentralWidget(split)

        # data panel
        self.data_list = QListWidget()
        self.data_list.itemSelectionChanged.connect(self._on_select)
        self.data_list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.data_list.customContextMenuRequested.connect(self._data_menu)
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
        self._build_layer_panel(pl)
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
        self.macro.title_changed.connect(mdock.setWindowTitle)
        self.macro_dock = mdock
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
        self.table_dock = TableDock(self)
        self.table_dock.row_chosen.connect(self.go_to_object)
        self.table_dock.histogram_requested.connect(self.histogram_of)
        self.addDockWidget(Qt.RightDockWidgetArea, self.table_dock)
        self.table_dock.hide()
        self.plot_dock = PlotDock(self)
        self.addDockWidget(Qt.RightDockWidgetArea, self.plot_dock)
        self.plot_dock.hide()

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

    # ------------------------------------------------------------------------------ actions
    def _defaults_for(self, spec) -> dict:
        """Sensible pre-filled arguments: the shown volume and label layer, the newest model."""
        pre = {}
        objs = self.session.objects
        vol = self.volume_name if self.volume_name in objs else None
        lab = self.labels_name if self.labels_name in objs else None
        models = [n for n, o in objs.items() if isinstance(o, Model)]
        camera = dict(zip(("azimuth", "elevation", "zoom"), self.view3d.camera_angles())) if self.view3d else {}
        if self.view3d is not None and self.view3d.plane:  # the slice plane shown in 3-D, where it is
            camera.update(slices=[self.view3d.plane[0]], positions=[round(self.view3d.plane[1], 4)])
        for p in spec.params:
            cls = object_classes(p.annotation)
            if spec.role(p.name) == "camera" and p.name in camera:
                pre[p.name] = camera[p.name]
            if not p.required and spec.role(p.name) != "shown_labels":
                continue
            if spec.role(p.name) == "newest":
                newest = [n for n in reversed(self.recent) if n in objs and isinstance(objs[n], cls)]
                if newest:
                    pre[p.name] = newest[0]
                    continue
            shown = {Labels: lab, Volume: vol, Model: models[-1] if models else None}
            for c in cls:  # the annotation's first type that is on show: ``Volume | Labels`` prefers the volume
                if shown.get(c) is not None:
                    pre[p.name] = shown[c]
                    break
        pre.update(self._model_images(spec, pre))
        return pre

    def _model_images(self, spec, pre: dict) -> dict:
        """For an action given a model that takes several input volumes (``infer`` after a two-channel
        ``train``): its images argument ticked with those volumes, in the model's order."""
        from damselfly.engine.segmentation._inference import model_inputs

        objs = self.session.objects
        model = next((objs[v] for v in pre.values() if isinstance(v, str) and isinstance(objs.get(v), Model)), None)
        lists = [p for p in spec.params if p.required and takes_object_list(p.annotation) and
                 Volume in object_classes(p.annotation)]
        if model is None or model.n_inputs < 2 or not lists:
            return {}
        key = {id(o): k for k, o in objs.items()}
        vols = [o for o in objs.values() if isinstance(o, Volume)]  # Labels are no Volume
        try:
            names = [key[id(v)] for v in model_inputs(model, vols)]
        except DamselflyError:
            return {}  # not all of them are loaded: the user ticks them
        return {lists[0].name: names}

    def start_action(self, name: str) -> None:
        """What a menu entry does: a loader (its only required argument a file to read) goes straight to
        a file chooser starting in the last folder; any other action opens its parameter dialog."""
        spec = self.session.registry.get(name)
        required = [p for p in spec.params if p.required]
        if len(required) == 1 and required[0].path_kind == "input":
            path = self.choose_file(spec.title.rstrip("…"), self.last_dir)
            if path:
                self.last_dir = Path(path).parent
                self.run_action(name, path, target=self.session.unique_name(spec.result_name))
            return
        self.open_action(name)

    def choose_file(self, title: str, start: Path) -> str | None:
        """A file chooser (tests replace it)."""
        path, _ = QFileDialog.getOpenFileName(self, title, str(start))
        return path or None

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
        """Run a registered action through the session in the worker thread (recorded if recording).
        Output names may hold templates of the first scan opened, as in a macro: ``{scan.stem}_seg.tif``."""
        spec = self.session.registry.get(name)
        try:
            kwargs = self._expand_outputs(spec, kwargs)
        except DamselflyError as e:
            self.show_error(str(e))
            return False
        if spec.presentation.monitor == "training":
            epochs = kwargs.get("epochs", spec.param("epochs").default if spec.has_param("epochs") else None)
            self._open_training(epochs if isinstance(epochs, int) else None)
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

    def _open_training(self, epochs: int | None = None) -> None:
        self.training = TrainingDialog(self, epochs)
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
        elif name == "scored" and self.training is not None:
            self.training.on_scored(data)
        elif name == "batch_item":
            self._add_batch_row(data["item"])
        elif name == "action":
            ev = data["event"]
            if ev.action == "save":
                self.mark_saved(ev.args.get("obj"))
            self.refresh_data()
            if self.recorder is not None:
                self.macro.set_text(self.recorder.text())
            res = ev.result
            if ev.target and table_of(res) is not None:
                self.table_dock.show_table(table_of(res), ev.target)
            if isinstance(res, Table) and res.metadata.get("plot"):
                self.plot_dock.show_png(res.metadata["plot"])
            if ev.action == "report" and ev.resolved.get("path"):
                self.open_in_browser(Path(ev.resolved["path"]))
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
        if self.recorder is not None:  # the recorder hears an action in the worker thread, maybe after "action"
            self.macro.set_text(self.recorder.text())
        pending = getattr(self, "_pending", None)  # (label, what to do with the job's result on this thread)
        if pending is not None and pending[0] == label:
            self._pending = None
            pending[1](result)
        if self._is_training(label):
            auto = isinstance(result, Model) and result.config.get("comparison", {}).get("auto")
            kept = f"kept the {result.config['arch']} (held-out Dice above); " if auto else ""
            self.training.finished_training(f"finished: {kept}Save model… to keep it")
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

    def _on_3d_failed(self, message: str) -> None:
        """What the 3-D view cannot draw is said in its own status line (and the log), never in a box
        that would interrupt painting."""
        self.view_notes.append(message)
        self.statusBar().showMessage(message.splitlines()[0], 10000)

    def show_error(self, message: str) -> None:
        """A message box that names the file and line (never a crash); kept in ``messages``. A stroke in
        progress ends first: the box takes the mouse."""
        self.canvas.end_stroke()
        self.messages.append(message)
        self.statusBar().showMessage(message.splitlines()[0], 10000)
        box = QMessageBox(QMessageBox.Warning, "Damselfly", message, QMessageBox.Ok, self)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.open()
        self._last_box = box

    # ------------------------------------------------------------------------------ files
    def open_files(self, paths: list[str]) -> bool:
        """What File > Open and drag and drop do: macros to the editor; models, labels and volumes into
        the session through their load actions (so they are recorded), in one background job."""
        from . import prefs

        for path in paths:
            prefs.add_recent(str(Path(path).resolve()))
        calls = []
        loaders = {"model": ("load_model", "model"), "labels": ("load_labels", "labels"), "volume": ("load", "raw")}
        for path in paths:
            kind = io.content_kind(path)
            if kind == "macro":
                self.macro.open(Path(path))
            else:
                calls.append((loaders[kind][0], str(path), loaders[kind][1]))
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
        if not getattr(self, "_quit_without_asking", False) and not self.keep_work("quitting"):
            ev.ignore()
            return
        self.worker.stop()
        self.worker.wait(5)
        if self.view3d is not None:
            self.view3d.close_view()
        super().closeEvent(ev)
