"""Save and restore a working session (``.dfsession``): the data (by reference), the layers, the view and
the macro, so a day's work can be picked up where it was left.

The file is JSON. Objects read from files and unchanged since are stored as the load that made them (the
file is not copied); computed or painted objects are saved beside it in ``<name>_data/`` (volumes and
labels as TIFF, models as ``.dfmodel``, tables as CSV) and loaded from there. Restoring runs the loads
through the session, so a recording started afterwards still records where the scan came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from damselfly.engine import Labels, Table
from damselfly.engine.io import _files as io
from damselfly.engine.segmentation import _model as model_io
from damselfly.engine.segmentation._model import Model

FORMAT = "damselfly-session"
LOADERS = {"load", "load_labels", "load_model"}


class SessionFileMixin:
    """Save / restore of :class:`~damselfly.app.window.MainWindow`'s work."""

    def session_state(self, path: Path) -> dict:
        """The JSON document of the session; computed and painted objects are written beside ``path``."""
        data_dir = path.with_name(path.stem + "_data")
        objects = []
        for name, obj in self.session.objects.items():
            src = self.session.sources.get(obj)
            if src is not None and src.action in LOADERS and not getattr(obj, "metadata", {}).get("modified"):
                args = {k: src.resolved.get(k, v) for k, v in src.args.items()}
                objects.append({"name": name, "action": src.action, "args": args})
                continue
            data_dir.mkdir(parents=True, exist_ok=True)
            if isinstance(obj, Model):
                file = model_io.save_model(obj, data_dir / f"{name}{model_io.SUFFIX}")
                objects.append({"name": name, "action": "load_model", "args": {"path": _beside(file, path)}})
            elif isinstance(obj, Table):
                file = io.write_table(obj, data_dir / f"{name}.csv")
                objects.append({"name": name, "table": _beside(file, path)})
            else:
                file = io.write_volume(obj, data_dir / f"{name}{io.asset_suffix(obj)}")
                objects.append({"name": name, "action": "load_labels" if isinstance(obj, Labels) else "load",
                                "args": {"path": _beside(file, path)}})
        c = self.canvas
        view = {"volume": self.volume_name, "labels": self.labels_name, "axis": c.axis, "index": c.index,
                "window": list(c.window), "zoom": c.zoom, "pan": [c.pan.x(), c.pan.y()],
                "cursor": list(c.cursor) if c.cursor else None, "hidden_classes": sorted(c.hidden_classes),
                "overlay_alpha": c.overlay_alpha, "outline": c.outline}
        macro = {"text": self.macro.text(), "path": str(self.macro.path) if self.macro.path else None}
        return {"format": FORMAT, "version": 1, "objects": objects, "view": view, "macro": macro}

    def unsaved_work(self) -> list[str]:
        """What quitting now would lose: the macro's unsaved changes, painted labels not saved."""
        return (["the macro"] if self.macro.modified else []) + [f"painted labels '{n}'" for n in self.unsaved_painted()]

    def unsaved_painted(self) -> list[str]:
        """Label layers painted since they were last saved (by a ``save`` or in a session file)."""
        return [n for n, o in self.session.objects.items() if isinstance(o, Labels) and o.metadata.get("modified")
                and o.metadata.get("edits", 1) != o.metadata.get("saved_edits")]

    def mark_saved(self, obj) -> None:
        """``obj`` was written to a file: its painting so far is no longer at risk."""
        if isinstance(obj, Labels):
            obj.metadata["saved_edits"] = obj.metadata.get("edits", 1)

    def quit_on_signal(self, signum: int = 15) -> None:
        """SIGTERM (``timeout``, a scheduler, a logout) or Ctrl-C in the app's terminal: quit as Quit does,
        without a question nobody is there to answer; unsaved work goes to a recovery session
        (:func:`.prefs.recovery_path`) that the next start offers to restore."""
        from . import prefs

        self.canvas.end_stroke()
        lost = self.unsaved_work()
        if lost:
            try:
                self.save_session(prefs.recovery_path())
                print(f"damselfly app: signal {signum}: saved {', '.join(lost)} to {prefs.recovery_path()}; "
                      f"the next start offers it", file=sys.stderr)
            except Exception as e:  # noqa: BLE001 - quitting must not fail; say what was not saved
                print(f"damselfly app: signal {signum}: could not save {', '.join(lost)}: {e}", file=sys.stderr)
        self._quit_without_asking = True
        self.close()

    def offer_recovery(self) -> bool:
        """At start: a recovery session left by a signal is offered; restored (True) or set aside."""
        from . import prefs

        path = prefs.recovery_path()
        if not path.exists():
            return False
        if self.ask(f"Damselfly was ended by a signal with unsaved work; it was saved in {path}. Restore it?"):
            ok = self.restore_session(path)
            path.rename(path.with_name("recovery-restored.dfsession"))
            return ok
        path.rename(path.with_name("recovery-declined.dfsession"))  # kept, but not offered again
        return False

    def save_session(self, path: Path) -> Path:
        """Write the session to ``path`` (``.dfsession``), atomically."""
        path = Path(path).resolve()
        io.write_text(path, json.dumps(self.session_state(path), indent=2) + "\n")
        for obj in self.session.objects.values():
            self.mark_saved(obj)
        return path

    def restore_session(self, path: Path) -> bool:
        """Load a session saved by :meth:`save_session`: objects in the worker thread, then the view and
        the macro. A clear message if the file is not a session or a referenced file is gone."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError("not a Damselfly session")
            objects, view, macro = doc["objects"], _checked_view(doc["view"]), doc["macro"]
            if not isinstance(objects, list) or not isinstance(macro, dict):
                raise ValueError("'objects' must be a list and 'macro' an object")
        except RecursionError:
            self.show_error(f"{path}: cannot restore the session: its JSON is nested too deep")
            return False
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.show_error(f"{path}: cannot restore the session: {e}")
            return False

        def here(p) -> str:
            """A path of the session file: relative ones lie beside it (not in the app's working folder)."""
            p = Path(p)
            return str(p if p.is_absolute() else path.parent / p)

        def job():
            for o in objects:
                if "table" in o:
                    self.session.add(o["name"], io.read_table(here(o["table"])))
                else:
                    args = dict(o["args"])
                    if isinstance(args.get("path"), str):
                        args["path"] = here(args["path"])
                    self.session.run(o["action"], **args, target=o["name"])

        def apply(_result):
            self.refresh_data()
            for key in ("volume", "labels"):
                if view.get(key) in self.session.objects:
                    self.select(view[key])
            c = self.canvas
            self._set_axis(view["axis"])
            c.hidden_classes = set(view["hidden_classes"])
            c.overlay_alpha, c.outline = view["overlay_alpha"], view["outline"]
            c.cursor = view["cursor"]
            self.set_slice(view["index"])
            self._window_from_histogram(*(view["window"] or c.window))
            c.zoom = view["zoom"]
            from PySide6.QtCore import QPointF

            c.pan = QPointF(*view["pan"])
            self._refresh_classes()
            self.macro.set_text(macro.get("text", ""))
            if macro.get("path") and Path(macro["path"]).exists():
                self.macro.path = Path(macro["path"])
                self.macro.base_dir = self.macro.path.parent
                self.macro.saved_text = Path(macro["path"]).read_text(encoding="utf-8")
                self.macro.title_changed.emit(self.macro.title())
            c.update()

        self._pending = ("restore session", apply)
        return self._start("restore session", job)

    def _ask_save_session(self) -> None:
        self.save_as("Save session", self.last_dir / "work.dfsession", "Damselfly sessions (*.dfsession)",
                     self.save_session)

    def _ask_restore_session(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Open session", str(self.last_dir),
                                              "Damselfly sessions (*.dfsession)")
        if path and self.keep_work("opening a session"):
            self.restore_session(Path(path))


def _checked_view(view) -> dict:
    """A session's view, every field checked and given its type before anything is restored (a bad field
    names itself; the session is never left half restored)."""
    import math

    if not isinstance(view, dict):
        raise ValueError("'view' must be an object")

    def number(key, default, lo=-math.inf, hi=math.inf, kind=float):
        v = view.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"view field '{key}' must be a number from {lo} to {hi}, got {v!r}")
        return kind(v)

    def numbers(key, default, n, kind=float):
        v = view.get(key, default)
        if v is None and default is None:
            return None
        if not isinstance(v, list) or len(v) != n or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            raise ValueError(f"view field '{key}' must be {n} numbers, got {v!r}")
        return tuple(kind(x) for x in v)

    axis = view.get("axis", "z")
    if axis not in ("z", "y", "x"):
        raise ValueError(f"view field 'axis' must be z, y or x, got {axis!r}")
    hidden = view.get("hidden_classes", [])
    if not isinstance(hidden, list) or not all(isinstance(k, int) and 0 <= k < 2 ** 16 for k in hidden):
        raise ValueError(f"view field 'hidden_classes' must be class indices, got {hidden!r}")
    return {"volume": view.get("volume"), "labels": view.get("labels"), "axis": axis,
            "index": number("index", 0, 0, 2 ** 31 - 1, int), "window": numbers("window", None, 2),
            "zoom": number("zoom", 1.0, 1e-3, 1e3), "pan": numbers("pan", [0.0, 0.0], 2),
            "cursor": numbers("cursor", None, 3, int), "hidden_classes": hidden,
            "overlay_alpha": number("overlay_alpha", 0.45, 0.0, 1.0), "outline": bool(view.get("outline"))}


def _beside(file: Path, session: Path) -> str:
    """A file the session wrote beside itself, relative to it (the session and its data move together)."""
    return Path(file).resolve().relative_to(session.resolve().parent).as_posix()
