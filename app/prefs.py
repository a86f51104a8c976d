"""What the app remembers between sessions (recent files) and how it looks (the dark theme).

Preferences live in ``$DAMSELFLY_CONFIG_DIR`` (default ``~/.config/damselfly``) as ``prefs.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from damselfly.engine.io._files import write_text

MAX_RECENT = 10


def config_dir() -> Path:
    return Path(os.environ.get("DAMSELFLY_CONFIG_DIR") or Path.home() / ".config" / "damselfly")


def load() -> dict:
    try:
        prefs = json.loads((config_dir() / "prefs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return prefs if isinstance(prefs, dict) else {}


def save(prefs: dict) -> None:
    try:
        write_text(config_dir() / "prefs.json", json.dumps(prefs, indent=2) + "\n")
    except Exception:  # noqa: BLE001 - preferences are a convenience; never fail the app for them
        pass


def default_out_dir() -> Path:
    """Where the app writes outputs unless told otherwise: ``$DAMSELFLY_OUT_DIR``, else
    ``~/damselfly-out`` (never inside the folder of the raw data, which may be read-only or shared)."""
    return Path(os.environ.get("DAMSELFLY_OUT_DIR") or Path.home() / "damselfly-out")


def recovery_path() -> Path:
    """Where the work of an app ended by a signal (SIGTERM, Ctrl-C in its terminal) is saved as a session,
    offered at the next start."""
    return config_dir() / "recovery" / "recovery.dfsession"


def add_recent(path: str) -> list[str]:
    """Put ``path`` first in the recent files; returns the list."""
    prefs = load()
    recent = [p for p in prefs.get("recent", []) if isinstance(p, str) and p != str(path)]
    prefs["recent"] = [str(path)] + recent[:MAX_RECENT - 1]
    save(prefs)
    return prefs["recent"]


def recent() -> list[str]:
    """Recent files that still exist, newest first."""
    return [p for p in load().get("recent", []) if isinstance(p, str) and Path(p).exists()]


def apply_theme(dark: bool) -> None:
    """Qt's Fusion style with a dark palette, or the platform's default look."""
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if dark:
        app.setStyle("Fusion")
        pal = QPalette()
        for role, color in ((QPalette.Window, (45, 47, 54)), (QPalette.WindowText, (220, 220, 224)),
                            (QPalette.Base, (30, 32, 38)), (QPalette.AlternateBase, (45, 47, 54)),
                            (QPalette.Text, (220, 220, 224)), (QPalette.Button, (52, 54, 62)),
                            (QPalette.ButtonText, (220, 220, 224)), (QPalette.Highlight, (60, 120, 200)),
                            (QPalette.HighlightedText, (255, 255, 255)), (QPalette.ToolTipBase, (30, 32, 38)),
                            (QPalette.ToolTipText, (220, 220, 224))):
            pal.setColor(role, QColor(*color))
        app.setPalette(pal)
    else:
        app.setPalette(app.style().standardPalette())
    prefs = load()
    prefs["dark"] = bool(dark)
    save(prefs)
