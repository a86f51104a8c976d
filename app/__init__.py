"""Damselfly's desktop app (PySide6 + pyvistaqt). Thin: widgets collect parameters and call engine
actions through the session; the recorder turns what the user does into a macro.

    damselfly app [FILE...]
"""

from __future__ import annotations


def main(*paths: str) -> int:
    """Open the main window and run the Qt event loop. Each of ``paths`` is opened by what it holds
    (:func:`damselfly.engine.io._files.content_kind`): a macro into the editor; a scan, labels or a model into
    the session through their load actions (so a recording sees them)."""
    import sys
    from pathlib import Path

    signals = _quit_on_signals()  # first: a signal while Qt starts must not raise inside a Qt callback
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .window import MainWindow

    missing = [p for p in paths if p and not Path(p).exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    missing_lib = _missing_x_library()
    if missing_lib:
        print(f"error: the desktop app needs the system library {missing_lib[0]}; install it with: "
              f"sudo apt-get install {missing_lib[1]}  (Debian/Ubuntu; `bash setup.sh test` installs every X "
              f"library the app needs)", file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Damselfly")
    first = next((Path(p) for p in paths if p), None)
    base = first.resolve().parent if first is not None else Path.cwd()
    win = MainWindow(base_dir=base)
    if paths:
        win.open_files([p for p in paths if p])
    win.show()
    signals.window = win
    win._signal_timer = QTimer(win)  # Python runs signal handlers only when it has control: give it some
    win._signal_timer.timeout.connect(lambda: None)
    win._signal_timer.start(200)
    for signum in signals.pending:  # arrived while the window was being made
        QTimer.singleShot(0, lambda s=signum: win.quit_on_signal(s))
    QTimer.singleShot(0, win.offer_recovery)
    return app.exec()


class _Signals:
    """SIGTERM and SIGINT (Ctrl-C) quit the app as Quit does (:meth:`MainWindow.quit_on_signal`); those
    that arrive before the window exists wait in ``pending``."""

    def __init__(self):
        self.window = None
        self.pending: list[int] = []

    def __call__(self, signum, _frame) -> None:
        from PySide6.QtCore import QTimer

        if self.window is None:
            self.pending.append(signum)
        else:
            QTimer.singleShot(0, lambda: self.window.quit_on_signal(signum))


def _quit_on_signals() -> _Signals:
    import signal

    handler = _Signals()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return handler


#: The X libraries Qt's xcb platform plugin loads that a minimal Linux lacks: (library, Debian package).
X_LIBRARIES = [("xcb-cursor", "libxcb-cursor0"), ("xkbcommon-x11", "libxkbcommon-x11-0"),
               ("xcb-icccm", "libxcb-icccm4"), ("xcb-keysyms", "libxcb-keysyms1"),
               ("xcb-render-util", "libxcb-render-util0"), ("xcb-image", "libxcb-image0"),
               ("xcb-shape", "libxcb-shape0"), ("xcb-randr", "libxcb-randr0"), ("xcb-xkb", "libxcb-xkb1")]


def _missing_x_library() -> tuple[str, str] | None:
    """The first X library Qt will need on this Linux display and not find, as (library, package); Qt
    itself would stop with a line about ``xcb-cursor0`` and an abort. None elsewhere, or when all are there."""
    import ctypes.util
    import os
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb" \
            or not os.environ.get("DISPLAY"):
        return None
    for lib, package in X_LIBRARIES:
        if ctypes.util.find_library(lib) is None:
            return f"lib{lib}", package
    return None
