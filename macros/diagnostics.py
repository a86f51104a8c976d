"""Diagnostics: errors that point at a file, line and column, printed compiler-style::

    casting.dfm:7:8: error: unknown action 'calibrat'; did you mean 'calibrate'?
        cal = calibrat(raw)
              ^~~~~~~~
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from damselfly.engine.core.errors import DamselflyError

#: Characters of a long source line shown on each side of a diagnostic's column.
WINDOW = 80
#: Diagnostics an error message spells out (``check`` lists them all).
MAX_SHOWN = 50


@dataclass
class Diagnostic:
    path: str
    line: int          # 1-based; 0 when the problem is not at a line (e.g. a --set value)
    column: int        # 1-based
    message: str
    source_line: str = ""
    length: int = 1
    severity: str = "error"
    code: str = ""     # what kind of problem, where a tool treats one kind apart ("unused")

    def format(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}" if self.line else self.path
        out = f"{where}: {self.severity}: {self.message}"
        if self.line and self.source_line:
            text = self.source_line.rstrip("\r\n")
            col = max(1, self.column)
            if len(text) > 2 * WINDOW:  # a long line: the part around the column (output stays linear)
                start = max(0, col - 1 - WINDOW)
                text = ("…" if start else "") + text[start:col - 1 + WINDOW] + ("…" if col - 1 + WINDOW < len(text) else "")
                col = col - start + (1 if start else 0)
            out += f"\n    {text}\n    {' ' * (col - 1)}^{'~' * max(0, min(self.length, len(text) - col + 1) - 1)}"
        return out

    def __str__(self) -> str:
        return self.format()


class MacroError(DamselflyError):
    """One or more diagnostics; ``str()`` prints them all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        shown = [d.format() for d in self.diagnostics[:MAX_SHOWN]]
        if len(self.diagnostics) > MAX_SHOWN:
            shown.append(f"... and {len(self.diagnostics) - MAX_SHOWN} more")
        super().__init__("\n".join(shown))


@lru_cache(maxsize=4)
def _lines(source: str) -> list[str]:
    return source.splitlines()


def source_line(source: str, line: int) -> str:
    """Line ``line`` (1-based) of ``source``; the split is cached, so many diagnostics cost linear time."""
    lines = _lines(source)
    return lines[line - 1] if 0 < line <= len(lines) else ""


def at(macro_or_source, path: str | None, node, message: str, length: int | None = None) -> Diagnostic:
    """A diagnostic at ``node`` (anything with ``line``/``column``; ``None`` for the whole file)."""
    source = getattr(macro_or_source, "source", macro_or_source) or ""
    line = getattr(node, "line", 0) or 0
    col = getattr(node, "column", 0) or 0
    if length is None:
        end = getattr(node, "end_column", 0) or 0
        length = max(1, end - col) if end > col else 1
    return Diagnostic(path or "<macro>", line, col, message, source_line(source, line), length)
