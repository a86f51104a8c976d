"""Damselfly's desktop app (PySide6 + pyvistaqt). Thin: widgets collect parameters and call engine
actions through the session; the recorder turns what the user does into a macro.

    damselfly app [MACRO]
"""

from __future__ import annotations


def main(macro: str | None = None) -> int:
    """Open the main window (with ``macro`` in the editor) and run the Qt event loop."""
    import sys
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from .window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Damselfly")
    base = Path(macro).resolve().parent if macro else Path.cwd()
    win = MainWindow(base_dir=base)
    if macro:
        if not Path(macro).is_file():
            print(f"error: no such macro file: {macro}", file=sys.stderr)
            return 1
        win.macro.open(Path(macro))
    win.show()
    return app.exec()
