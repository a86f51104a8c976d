"""Window/level with a histogram: the grey-value histogram of the shown volume (a sample of its slices)
with the window drawn over it; dragging moves the nearer edge of the window."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QWidget


def fmt_value(v: float, integer: bool) -> str:
    """A grey value as the user reads it: integers for integer data."""
    return str(int(round(v))) if integer else f"{v:.4g}"


class Histogram(QWidget):
    """``window_changed(low, high)`` when the user drags an edge."""

    window_changed = Signal(float, float)

    def __init__(self, parent=None, bins: int = 128):
        super().__init__(parent)
        self.setMinimumSize(160, 36)
        self.bins = bins
        self.counts = np.zeros(bins)
        self.lo = self.hi = 0.0         # the histogram's range
        self.window = (0.0, 1.0)
        self.integer = False
        self._dragging: int | None = None  # 0: low edge, 1: high edge

    def set_data(self, sample: np.ndarray, integer: bool) -> None:
        """The histogram of ``sample`` between its 0.1 and 99.9 percentiles."""
        s = np.asarray(sample, dtype=np.float64).ravel()
        s = s[np.isfinite(s)]
        if not s.size:
            return
        self.lo, self.hi = (float(v) for v in np.percentile(s, [0.1, 99.9]))
        if self.hi <= self.lo:
            self.hi = self.lo + 1.0
        self.counts, _ = np.histogram(s, bins=self.bins, range=(self.lo, self.hi))
        self.integer = integer
        self.update()

    def set_window(self, lo: float, hi: float) -> None:
        self.window = (lo, hi)
        self.update()

    def value_at(self, x: float) -> float:
        return self.lo + (self.hi - self.lo) * min(1.0, max(0.0, x / max(1, self.width())))

    def x_of(self, v: float) -> float:
        return (v - self.lo) / max(self.hi - self.lo, 1e-12) * self.width()

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 32, 40))
        h, w = self.height(), self.width()
        top = max(1.0, float(np.log1p(self.counts).max()))
        bw = w / self.bins
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(150, 150, 160))
        for i, c in enumerate(np.log1p(self.counts)):
            bh = c / top * (h - 4)
            p.drawRect(QRectF(i * bw, h - bh, bw, bh))
        a, b = (min(max(self.x_of(v), -1.0), w + 1.0) for v in self.window)
        p.setBrush(QColor(255, 220, 0, 50))
        p.drawRect(QRectF(a, 0, b - a, h))
        p.setPen(QColor(255, 220, 0))
        p.drawLine(int(a), 0, int(a), h)
        p.drawLine(int(b), 0, int(b), h)

    def mousePressEvent(self, ev) -> None:
        x = ev.position().x()
        a, b = (self.x_of(v) for v in self.window)
        self._dragging = 0 if abs(x - a) <= abs(x - b) else 1
        self.mouseMoveEvent(ev)

    def mouseMoveEvent(self, ev) -> None:
        if self._dragging is None:
            return
        v = self.value_at(ev.position().x())
        lo, hi = self.window
        step = (self.hi - self.lo) / 1000
        lo, hi = (min(v, hi - step), hi) if self._dragging == 0 else (lo, max(v, lo + step))
        if self.integer:
            lo, hi = float(round(lo)), float(max(round(hi), round(lo) + 1))
        self.set_window(lo, hi)
        self.window_changed.emit(lo, hi)

    def mouseReleaseEvent(self, _ev) -> None:
        self._dragging = None
