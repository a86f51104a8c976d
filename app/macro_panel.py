"""The macro panel: the recorded macro, live, in canonical text; an editor with syntax highlighting and
the checker running as you type (errors underlined at their line and column, listed below); Record,
Run, Stop, Run on files..., Open and Save.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QRegularExpression, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QPlainTextEdit, QPushButton, QTextEdit, QVBoxLayout, QWidget

from damselfly.engine.builtin import all_actions
from damselfly.macros.checker import check
from damselfly.macros.diagnostics import Diagnostic, MacroError
from damselfly.macros.parser import parse


def _fmt(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    f = QTextCharFormat()
    f.setForeground(QColor(color))
    if bold:
        f.setFontWeight(QFont.Bold)
    f.setFontItalic(italic)
    return f


class MacroHighlighter(QSyntaxHighlighter):
    """Keywords, action names, strings with their ``{templates}``, numbers, comments."""

    def __init__(self, doc):
        super().__init__(doc)
        actions = "|".join(sorted((a.name for a in all_actions()), key=len, reverse=True))
        self.rules = [
            (QRegularExpression(r"\b(version|param)\b"), _fmt("#c678dd", bold=True)),
            (QRegularExpression(rf"\b({actions})(?=\s*\()"), _fmt("#61afef", bold=True)),
            (QRegularExpression(r"\b(true|false|none)\b"), _fmt("#d19a66")),
            (QRegularExpression(r"\b-?\d+(\.\d+)?([eE][-+]?\d+)?\b"), _fmt("#d19a66")),
            (QRegularExpression(r"\b[a-zA-Z_]\w*(?=\s*=[^=])"), _fmt("#e5c07b")),
            (QRegularExpression(r'"([^"\\]|\\.)*"'), _fmt("#98c379")),
            (QRegularExpression(r"\{[a-zA-Z_][\w.]*\}"), _fmt("#56b6c2", bold=True)),
        ]
        self.comment = _fmt("#7f848e", italic=True)

    def highlightBlock(self, text: str) -> None:
        for rx, fmt in self.rules:
            it = rx.globalMatch(text)
            while it.hasNext():
                m = it.next()
                self.setFormat(m.capturedStart(), m.capturedLength(), fmt)
        # a comment starts at a # outside a string
        in_str = False
        for i, ch in enumerate(text):
            if ch == '"' and (i == 0 or text[i - 1] != "\\"):
                in_str = not in_str
            elif ch == "#" and not in_str:
                self.setFormat(i, len(text) - i, self.comment)
                break


class MacroPanel(QWidget):
    """Signals: ``run_requested(text)``, ``batch_requested(text)``, ``stop_requested()``,
    ``record_toggled(bool)``."""

    run_requested = Signal(str)
    batch_requested = Signal(str)
    stop_requested = Signal()
    record_toggled = Signal(bool)
    title_changed = Signal(str)

    def __init__(self, base_dir: Path, parent=None):
        super().__init__(parent)
        self.base_dir = Path(base_dir)
        self.check_options: dict = {}  # the run settings the checker assumes (output folder, confinement)
        self.path: Path | None = None
        self.saved_text = ""  # the text as it was last opened or saved
        self.diagnostics: list[Diagnostic] = []
        self.recording = False  # set by the window while the recorder writes this text
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        bar = QHBoxLayout()
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._on_record)
        self.run_button = QPushButton("▶ Run")
        self.run_button.clicked.connect(lambda: self.run_requested.emit(self.text()))
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_requested.emit)
        self.batch_button = QPushButton("Run on files…")
        self.batch_button.clicked.connect(lambda: self.batch_requested.emit(self.text()))
        for b in (self.record_button, self.run_button, self.stop_button, self.batch_button):
            bar.addWidget(b)
        bar.addStretch(1)
        lay.addLayout(bar)
        self.editor = QPlainTextEdit()
        font = QFont("DejaVu Sans Mono")
        font.setStyleHint(QFont.Monospace)
        self.editor.setFont(font)
        self.editor.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.editor.setPlaceholderText("Press Record and work: every action appears here as a macro line.\n"
                                       "Or write a macro by hand; it is checked as you type.")
        self.highlighter = MacroHighlighter(self.editor.document())
        lay.addWidget(self.editor, 3)
        self.problems = QListWidget()
        self.problems.setMaximumHeight(90)
        self.problems.itemActivated.connect(self._goto_problem)
        lay.addWidget(self.problems, 1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.check_now)
        self.editor.textChanged.connect(self._timer.start)
        self.editor.textChanged.connect(lambda: self.title_changed.emit(self.title()))

    # -- text -----------------------------------------------------------------------------------
    def text(self) -> str:
        return self.editor.toPlainText()

    @property
    def modified(self) -> bool:
        """Whether the text differs from what was last opened or saved (an empty editor is not)."""
        return self.text() != self.saved_text and bool(self.text().strip())

    def title(self) -> str:
        """``Macro — name.dfm*``: the file's name and a mark while there are unsaved changes."""
        name = self.path.name if self.path else "unsaved"
        return f"Macro — {name}{'*' if self.modified else ''}"

    def mark_saved(self, path: Path | None = None) -> None:
        if path is not None:
            self.path = Path(path).resolve()
            self.base_dir = self.path.parent
        self.saved_text = self.text()
        self.title_changed.emit(self.title())

    def set_text(self, text: str) -> None:
        if text != self.text():
            self.editor.setPlainText(text)
            self.editor.moveCursor(QTextCursor.End)

    def open(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.base_dir = self.path.parent
        self.set_text(self.path.read_text(encoding="utf-8"))
        self.mark_saved()
        self.check_now()

    # -- checking -------------------------------------------------------------------------------
    def check_now(self) -> list[Diagnostic]:
        """Parse and check the text; underline and list the problems. Returns them."""
        text = self.text()
        name = str(self.path) if self.path else "<editor>"
        diags: list[Diagnostic] = []
        if text.strip():
            try:
                macro = parse(text, name)
                diags = check(macro, base_dir=self.base_dir, **self.check_options).diagnostics
            except MacroError as e:
                diags = e.diagnostics
        if self.recording:  # a result just made is not used yet while recording: no noise about it
            diags = [d for d in diags if d.code != "unused"]
        self.diagnostics = diags
        self.problems.clear()
        sels = []
        for d in diags:
            where = f"{d.line}:{d.column}: " if d.line else ""
            self.problems.addItem(f"{where}{d.severity}: {d.message}")
            if not d.line:
                continue
            block = self.editor.document().findBlockByNumber(d.line - 1)
            if not block.isValid():
                continue
            sel = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setUnderlineStyle(QTextCharFormat.WaveUnderline)
            fmt.setUnderlineColor(QColor("#e06c75") if d.severity == "error" else QColor("#e5c07b"))
            fmt.setToolTip(d.message)
            sel.format = fmt
            cur = QTextCursor(block)
            col = max(0, d.column - 1)
            cur.setPosition(block.position() + min(col, max(0, block.length() - 1)))
            cur.setPosition(block.position() + min(col + max(1, d.length), max(0, block.length() - 1)),
                            QTextCursor.KeepAnchor)
            sel.cursor = cur
            sels.append(sel)
            line_sel = QTextEdit.ExtraSelection()
            line_sel.format.setBackground(QColor(224, 108, 117, 40))
            line_sel.format.setProperty(QTextFormat.FullWidthSelection, True)
            line_sel.cursor = QTextCursor(block)
            sels.append(line_sel)
        self.editor.setExtraSelections(sels)
        if not diags and text.strip():
            self.problems.addItem("✓ no problems")
        return diags

    def _goto_problem(self, item) -> None:
        m = re.match(r"(\d+):(\d+):", item.text())
        if m:
            block = self.editor.document().findBlockByNumber(int(m.group(1)) - 1)
            cur = QTextCursor(block)
            cur.movePosition(QTextCursor.Right, QTextCursor.MoveAnchor, int(m.group(2)) - 1)
            self.editor.setTextCursor(cur)
            self.editor.setFocus(Qt.OtherFocusReason)

    # -- state ----------------------------------------------------------------------------------
    def _on_record(self, on: bool) -> None:
        self.record_button.setText("■ Stop recording" if on else "● Record")
        self.editor.setReadOnly(on)
        self.run_button.setEnabled(not on)
        self.batch_button.setEnabled(not on)
        self.record_toggled.emit(on)

    def set_busy(self, busy: bool) -> None:
        recording = self.record_button.isChecked()
        self.run_button.setEnabled(not busy and not recording)
        self.batch_button.setEnabled(not busy and not recording)
        self.stop_button.setEnabled(busy)
