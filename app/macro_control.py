"""Macros in the main window: recording, saving with assets, running the editor's text in the session,
and batches over chosen files with a results table."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtWidgets import (
    QFileDialog,
    QTableWidgetItem,
)

from damselfly.engine import DamselflyError
from damselfly.macros.batch import run_batch
from damselfly.macros.checker import check
from damselfly.macros.interpreter import execute
from damselfly.macros.parser import parse
from damselfly.macros.recorder import Recorder


class MacroMixin:
    """The macro-and-batch controller of :class:`~damselfly.app.window.MainWindow`."""

    def keep_work(self, doing: str) -> bool:
        """Before ``doing`` something that replaces the editor's text or ends the session: offer to save
        unsaved changes. ``False`` means the user cancelled."""
        painted = self.unsaved_painted()
        if not self.macro.modified and not (painted and doing == "quitting"):
            return True
        what = []
        if self.macro.modified:
            what.append(f"the macro ({self.macro.path.name if self.macro.path else 'never saved'})")
        if painted and doing == "quitting":
            what.append(f"painting not saved since it was made ({', '.join(repr(n) for n in painted)}; "
                        f"File > Save… keeps {'it' if len(painted) == 1 else 'them'})")
        answer = self.ask_save(f"Unsaved changes before {doing}: {' and '.join(what)}.")
        if answer == "save" and self.macro.modified:
            return self.save_macro_now()
        return answer != "cancel"

    def ask_save(self, question: str) -> str:
        """``"save"``, ``"discard"`` or ``"cancel"``; tests replace it."""
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox.question(self, "Damselfly", question + " Save the macro?",
                                   QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(box, "cancel")

    def save_macro_now(self) -> bool:
        """Ctrl+S: save the macro to its file, or ask where when it has none. ``False`` if not saved."""
        if self.macro.path is not None:
            self.save_macro(self.macro.path)
            return True
        path = self._choose_macro_path()
        if path is None:
            return False
        self.save_macro(path)
        return True

    def _choose_macro_path(self) -> Path | None:
        """Where to save the macro (a save dialog; ``.dfm`` added when the name lacks it)."""
        path, _ = QFileDialog.getSaveFileName(self, "Save macro", str(self.macro_dir / "recorded.dfm"),
                                              "Damselfly macros (*.dfm)")
        return Path(path if path.endswith(".dfm") else path + ".dfm") if path else None

    def set_recording(self, on: bool) -> None:
        if on and self.recorder is None and not self.keep_work("recording a new macro"):
            self.record_action.setChecked(False)
            self.macro.record_button.blockSignals(True)
            self.macro.record_button.setChecked(False)
            self.macro.record_button.blockSignals(False)
            return
        if on and self.recorder is None:
            self.macro_dir.mkdir(parents=True, exist_ok=True)
            self.recorder = Recorder(self.session, macro_dir=self.macro_dir, comment="recorded in Damselfly")
            self.macro.path = None
            self.macro.base_dir = self.macro_dir
            self.macro.recording = True
            self.macro.set_text(self.recorder.text())
        elif not on and self.recorder is not None:
            self.recorder.stop()
            self.macro.recording = False
            self.last_recording = self.recorder
            unsaved = self.recorder.unsaved()
            if unsaved and self.ask(f"The recording computes {', '.join(unsaved)} but never saves "
                                    f"{'it' if len(unsaved) == 1 else 'them'}. Add save statements?"):
                self.recorder.add_saves(unsaved)
            self.macro.set_text(self.recorder.text())
            self.recorder = None
            trains = _trains(self.last_recording)
            if trains and self.ask("Save the recording as it is (painted labels and kept models as assets "
                                   "beside it, to replay on this scan)?"):
                self._ask_save_macro()
            if trains and self.ask(
                    "The recording trains a model. Save a macro for new scans too (the trained model as an "
                    "asset, applied to each new scan, and every segmentation and table saved)?"):
                self._ask_save_for_new_scans()
        self.record_action.setChecked(on)
        if self.macro.record_button.isChecked() != on:
            self.macro.record_button.setChecked(on)

    def ask(self, question: str) -> bool:
        """A yes/no question (Yes is the default); tests replace it."""
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "Damselfly", question, QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes

    def scan_path(self) -> str | None:
        """The first scan opened in this session (what a recording makes ``param scan``)."""
        return next((ev.resolved.get("path") for ev in self.session.sources.values() if ev.action == "load"), None)

    def _expand_outputs(self, spec, kwargs: dict) -> dict:
        """Output paths with templates expanded for this session's scan (``{scan}``, ``{scan.stem}``...);
        the recorder turns the scan's stem back into the template."""
        from damselfly.macros.templates import expand, template_names

        out = dict(kwargs)
        for p in spec.params:
            value = out.get(p.name)
            if p.path_kind != "output" or not isinstance(value, str) or not template_names(value):
                continue
            scan = self.scan_path()
            try:
                out[p.name] = expand(value, {"scan": scan} if scan else {})
            except KeyError as e:
                raise DamselflyError(f"{p.name} {value!r}: the template {{{e.args[0]}}} names nothing the app knows "
                                     f"(it knows {{scan}}, {{scan.stem}}... of the first scan opened"
                                     f"{'' if scan else ', and none is open yet'})") from None
        return out

    def save_macro_for_new_scans(self, path: Path) -> Path:
        """Write the last recording as a macro for new scans (:meth:`Recorder.for_new_scans`): its trained
        models go to ``assets/`` beside it; the editor shows it."""
        from damselfly.macros.formatter import format_macro

        rec = self.recorder or getattr(self, "last_recording", None)
        if rec is None:
            raise DamselflyError("record a session first (Macro > Record)")
        text = format_macro(rec.for_new_scans())
        self.macro.set_text(text)
        out = self.save_macro(path)
        if rec.saved_for_new_scans:
            self.statusBar().showMessage(f"The macro for new scans saves {', '.join(rec.saved_for_new_scans)} of "
                                         f"every scan (the recording computed but did not save them)", 15000)
        return out

    def save_as(self, title: str, default: Path, kinds: str, write) -> None:
        """Ask where to save, then ``write(path)``; an error is a message, never a crash."""
        path, _ = QFileDialog.getSaveFileName(self, title, str(default), kinds)
        if path:
            try:
                write(Path(path))
            except DamselflyError as e:
                self.show_error(str(e))

    def _ask_save_for_new_scans(self) -> None:
        self.save_as("Save macro for new scans", self.macro_dir / "for_new_scans.dfm", "Damselfly macros (*.dfm)",
                     self.save_macro_for_new_scans)

    def save_macro(self, path: Path) -> Path:
        """Write the editor's macro to ``path``; the recorded assets (painted labels) go beside it."""
        path = Path(path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.macro.text(), encoding="utf-8")
        assets = self.macro_dir / "assets"
        if assets.is_dir() and path.parent != self.macro_dir.resolve():
            shutil.copytree(assets, path.parent / "assets", dirs_exist_ok=True)
        self.macro.mark_saved(path)
        return path

    def _ask_save_macro(self) -> None:
        path = self._choose_macro_path()
        if path is not None:
            self.save_macro(path)

    def _ask_open_macro(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open macro", str(self.session.settings.base_dir),
                                              "Damselfly macros (*.dfm)")
        if path and self.keep_work("opening another macro"):
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
        path, base = self.macro.path, Path(self.macro.base_dir)
        edited = path is None or self.macro.text() != path.read_text(encoding="utf-8")
        if edited:  # run what the editor shows, from the macro's own folder; the user's file is not touched
            import tempfile

            fd, name = tempfile.mkstemp(prefix="damselfly-batch-", suffix=".dfm")
            os.close(fd)
            path = Path(name)
            path.write_text(self.macro.text(), encoding="utf-8")
        self.batch_table.setRowCount(0)
        self.batch_dock.show()
        self.batch_results = []

        def on_item(r):
            self.worker.named.emit("batch_item", {"item": r})

        def job():
            try:
                return run_batch(path, list(files), out_dir=out_dir, on_item=on_item, base_dir=base,
                                 device=self.session.settings.device, reporter=self.worker.reporter)
            finally:
                if edited:
                    path.unlink(missing_ok=True)

        started = self._start("batch", job)
        if started:  # the job's end reaches this thread later, as a signal
            self._pending = ("batch", lambda _results: self._open_summary(out_dir))
        return started

    def _open_summary(self, out_dir: Path) -> None:
        """A finished batch shows its summary page (in the browser) and says where it is."""
        page = Path(out_dir) / "summary.html"
        if page.exists():
            self.open_in_browser(page)
            self.statusBar().showMessage(f"batch summary: {page}", 10000)

    def open_in_browser(self, page: Path) -> None:
        """Open a report or summary page in the system's browser (tests replace this)."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        QDesktopServices.openUrl(QUrl.fromLocalFile(str(page)))

    def _add_batch_row(self, r) -> None:
        self.batch_results.append(r)
        row = self.batch_table.rowCount()
        self.batch_table.insertRow(row)
        for col, v in enumerate((Path(r.item).name, r.status, f"{r.seconds:.1f}", (r.error or "").splitlines()[0]
                                 if r.error else "")):
            self.batch_table.setItem(row, col, QTableWidgetItem(v))


def _trains(rec) -> bool:
    """Whether a recording trains a model (or loads one it kept as an asset)."""
    for st in rec.body:
        call = getattr(st, "call", None)
        if call is not None and (call.action == "train" or call.action == "load_model" and call.args and
                                 str(getattr(call.args[0].value, "value", "")).startswith("assets/")):
            return True
    return False
