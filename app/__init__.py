"""Damselfly's desktop app (PySide6 + pyvistaqt). Thin: widgets collect parameters and call engine
actions through the session; the recorder turns what the user does into a macro.

    damselfly app [FILE...]
"""

from __future__ import annotations


def main(*paths: str) -> int:
    """Open the main window and run the Qt event loop. Each of ``paths`` is opened by what it holds
    (:func:`damselfly.engine.io.content_kind`): a macro into the editor; a scan, labels or a model into
    the session through their load actions (so a recording sees them)."""
    import sys
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from .window import MainWindow

    missing = [p for p in paths if p and not Path(p).exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Damselfly")
    first = next((Path(p) for p in paths if p), None)
    base = first.resolve().parent if first is not None else Path.cwd()
    win = MainWindow(base_dir=base)
    if paths:
        win.open_files([p for p in paths if p])
    win.show()
    return app.exec()
