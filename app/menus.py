"""The menus and the toolbar of the main window, built from the action registry's presentation metadata
(menu, title, toolbar position) plus the window's own view and painting operations."""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence

CATEGORY_ORDER = ["File", "Process", "Segment", "Measure", "Render"]


#: Keys the slice view handles itself (no menu entry).
from . import prefs  # noqa: E402
from .params import plain  # noqa: E402

CANVAS_KEYS = [("Up / Down", "next / previous slice"), ("Page Up / Page Down", "10 slices"),
               ("Mouse wheel", "next / previous slice"), ("Ctrl + wheel, + / -", "zoom"),
               ("Drag (navigate tool) or middle button", "pan"), ("Home", "fit the slice to the view"),
               ("[ / ]", "smaller / larger brush"), ("1 .. 9", "paint with that class")]


class MenusMixin:
    """Builds the menu bar and toolbar of :class:`~damselfly.app.window.MainWindow`."""

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in prefs.recent():
            a = self.recent_menu.addAction(path, lambda p=path: self.open_files([p]))
            a.setData({"view": "opens a recent file through its load action"})

    def shortcuts_text(self) -> str:
        """Every shortcut: the menu entries that have one, then the slice view's keys."""
        from PySide6.QtGui import QKeySequence

        rows = sorted({(a.shortcut().toString(QKeySequence.NativeText), a.text().replace("&", ""))
                       for a in self.findChildren(QAction) if not a.shortcut().isEmpty()})
        return "\n".join(f"{k}\t{t}" for k, t in rows + CANVAS_KEYS)

    def show_shortcuts(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Information, "Keyboard shortcuts", self.shortcuts_text(), QMessageBox.Ok, self)
        box.open()
        self._last_box = box

    def _build_canvas_keys(self) -> None:
        """The painting keys (``1``..``9`` a class, ``[``/``]`` the brush) as window shortcuts: they work
        whenever the slice view is on screen, whichever widget has the focus (a slider, the data panel);
        a text field still gets the digits it is typed (Qt gives editors printable keys first)."""
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QKeySequence, QShortcut

        keys = [(str(k), lambda k=k: self._on_class_key(k)) for k in range(1, 10)]
        keys += [("[", lambda: self._on_brush_step(-1)), ("]", lambda: self._on_brush_step(1))]
        self.canvas_shortcuts = []
        for key, slot in keys:
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.WindowShortcut)
            sc.activated.connect(lambda s=slot: self.canvas.isVisible() and s())
            self.canvas_shortcuts.append(sc)

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
            a = self._qaction(spec.title, {"action": spec.name}, lambda n=spec.name: self.start_action(n),
                              menus[spec.category])
            a.setToolTip(plain(spec.summary))
            a.setStatusTip(plain(spec.summary))
            self.action_entries[spec.name] = a
        file_menu.addSeparator()
        self._qaction("Open session…", {"view": "restores saved work: data, layers, view, macro"},
                      self._ask_restore_session, file_menu)
        self._qaction("Save session…", {"view": "saves the work: data by reference, layers, view, macro"},
                      self._ask_save_session, file_menu)
        self.recent_menu = file_menu.addMenu("Open recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._qaction("Open macro…", {"view": "opens a macro in the editor"}, self._ask_open_macro, file_menu)
        self._qaction("Save macro", {"view": "writes the editor's text to its file"}, self.save_macro_now, file_menu,
                      "Ctrl+S")
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
        self.dark_action = self._qaction("Dark theme", {"view": "the app's colours"},
                                         lambda: prefs.apply_theme(self.dark_action.isChecked()), view, checkable=True)

        macro = mb.addMenu("Macro")
        self.record_action = self._qaction("Record", {"view": "starts/stops the recorder"},
                                           lambda: self.macro.record_button.toggle(), macro, checkable=True)
        self._qaction("Run macro", {"view": "runs the editor's macro (its actions are the macro's)"},
                      lambda: self.run_macro_text(self.macro.text()), macro, "F5")
        self._qaction("Run on files…", {"view": "batch run of the editor's macro"},
                      lambda: self._ask_batch(self.macro.text()), macro)
        self._qaction("Save as macro for new scans…", {"view": "writes the last recording with its trained "
                      "models as assets, applied instead of trained"}, self._ask_save_for_new_scans, macro)
        self._qaction("Stop", {"view": "stops the running work"}, self.stop, macro, "Esc")

        help_menu = mb.addMenu("Help")
        self._qaction("Keyboard shortcuts…", {"view": "lists the shortcuts"}, self.show_shortcuts, help_menu, "F1")

        self._build_canvas_keys()

        tb = self.addToolBar("Actions")
        tb.setObjectName("actions")
        for spec in sorted((s for s in specs.values() if s.presentation.toolbar is not None),
                           key=lambda s: s.presentation.toolbar):
            tb.addAction(self.action_entries[spec.name])
        tb.addSeparator()
        for tool in ("brush", "eraser", "box", "navigate"):
            tb.addAction(self.tool_actions[tool])
