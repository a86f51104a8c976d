"""The slice view: one plane of a volume (axial / coronal / sagittal, with a slider), window/level, the
label layer as a coloured overlay, and the hand tools that make training data: brush, eraser, fill
slice, a box tool, undo/redo. Painting edits the label layer's array in place; the recorder saves the
layer beside the macro when an action uses it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

from damselfly.engine import Labels, Volume
from damselfly.engine.io import overview

#: world axis -> index axis of a (z, y, x) array
AXIS_INDEX = {"z": 0, "y": 1, "x": 2}
TOOLS = ("navigate", "brush", "eraser", "box")

#: Grey values read for a window or a histogram at most (from a pyramid level where there is one).
PREVIEW_VOXELS = 2 ** 20


def plane(data: np.ndarray, axis: str, index: int) -> np.ndarray:
    """The 2-D plane of ``data`` at ``index`` along ``axis``: a view (basic slicing; ``np.take`` would copy),
    so painting on coronal and sagittal planes writes through."""
    sl = [slice(None)] * 3
    sl[AXIS_INDEX[axis]] = index
    return data[tuple(sl)]


class SliceCanvas(QWidget):
    """Draws the current plane and handles the mouse tools. Signals: ``painted()`` after a stroke,
    ``box_drawn(list)`` with ``[z0, y0, x0, z1, y1, x1]`` (half-open) after a box, ``moved(str)``
    with the voxel under the mouse and its value, ``index_changed(int)`` and ``axis_changed(str)``
    whenever the shown plane changes (slider, wheel, keys, undo: one slice index for all of them),
    ``brush_step(int)`` and ``class_key(int)`` for the keys ``[``/``]`` and ``1``..``9``."""

    painted = Signal()
    box_drawn = Signal(list)
    moved = Signal(str)
    index_changed = Signal(int)
    window_dragged = Signal(float, float)
    axis_changed = Signal(str)
    brush_step = Signal(int)
    class_key = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(200, 200)
        self.setMouseTracking(True)
        self.volume: Volume | None = None
        self.labels: Labels | None = None
        self.axis = "z"
        self.index = 0
        self.window = (0.0, 1.0)
        self.tool = "navigate"
        self.brush = 3
        self.current_class = 1
        self.overlay_alpha = 0.45   # the label layer's opacity over the grey values
        self.labels_visible = True
        self.hidden_classes: set[int] = set()
        self.class_opacity: dict[int, float] = {}  # class index -> factor on overlay_alpha
        self.outline = False        # draw only the borders of class regions
        self.heat: Volume | None = None  # a 0..1 map drawn over the picture (uncertainty), or None
        self.undo_stack: list[tuple[str, int, np.ndarray]] = []
        self.redo_stack: list[tuple[str, int, np.ndarray]] = []
        self._box_start: QPointF | None = None
        self.setFocusPolicy(Qt.StrongFocus)
        self.zoom = 1.0               # 1 = the plane fitted to the widget
        self.pan = QPointF(0.0, 0.0)  # widget pixels
        self._pan_from: QPointF | None = None
        self._level_from = None
        self.cursor: tuple[int, int, int] | None = None  # the linked cursor (z, y, x)
        self._box_now: QPointF | None = None
        self._stroke = False
        self._last_rc = (0, 0)

    # -- data -----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...] | None:
        src = self.volume if self.volume is not None else self.labels
        return None if src is None else tuple(src.shape[:3])

    @property
    def depth(self) -> int:
        return self.shape[AXIS_INDEX[self.axis]] if self.shape else 1

    def set_volume(self, vol: Volume | None) -> None:
        self.volume = vol
        if vol is not None:
            d = overview(vol, PREVIEW_VOXELS).astype(np.float32)  # a pyramid level or a few slices, never the whole scan
            lo, hi = (float(v) for v in np.nanpercentile(d, [0.5, 99.5]))
            self.window = (lo, hi if hi > lo else lo + 1.0)
        self.index = min(self.index, self.depth - 1) if self.shape else 0
        self.update()

    def set_labels(self, lab: Labels | None) -> None:
        self.labels = lab
        self.undo_stack.clear()
        self.redo_stack.clear()
        self.update()

    def set_axis(self, axis: str) -> None:
        changed = axis != self.axis
        self.axis = axis
        if changed:
            self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)  # another plane: fit it
            self.axis_changed.emit(axis)
        self.set_index(self.cursor[AXIS_INDEX[axis]] if self.cursor is not None else self.depth // 2)
        self.update()

    def set_index(self, i: int) -> None:
        new = int(min(max(i, 0), max(self.depth - 1, 0)))
        changed = new != self.index
        self.index = new
        self.update()
        if changed:
            self.index_changed.emit(new)

    # -- geometry -------------------------------------------------------------------------------
    def _plane_shape_and_spacing(self):
        k = AXIS_INDEX[self.axis]
        dims = [d for d in range(3) if d != k]
        src = self.volume if self.volume is not None else self.labels
        sp = src.spacing
        return (self.shape[dims[0]], self.shape[dims[1]]), (sp[dims[0]], sp[dims[1]])

    def _target(self) -> QRectF:
        """Where the plane is drawn: fitted to the widget with the voxel spacing's aspect ratio, then
        zoomed about the centre and panned."""
        (h, w), (sy, sx) = self._plane_shape_and_spacing()
        pw, ph = w * sx, h * sy
        scale = min(self.width() / pw, self.height() / ph) * self.zoom
        dw, dh = pw * scale, ph * scale
        return QRectF((self.width() - dw) / 2 + self.pan.x(), (self.height() - dh) / 2 + self.pan.y(), dw, dh)

    def zoom_at(self, factor: float, at: QPointF | None = None) -> None:
        """Zoom by ``factor`` (1/8 .. 64 of the fitted size), keeping the point under ``at`` in place."""
        if self.shape is None:
            return
        at = at if at is not None else QPointF(self.width() / 2, self.height() / 2)
        t0 = self._target()
        u, v = (at.x() - t0.left()) / t0.width(), (at.y() - t0.top()) / t0.height()
        self.zoom = float(min(64.0, max(0.125, self.zoom * factor)))
        t1 = self._target()
        self.pan += at - QPointF(t1.left() + u * t1.width(), t1.top() + v * t1.height())
        self.update()

    def reset_view(self) -> None:
        """Fit the plane to the widget again."""
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    @property
    def z_up(self) -> bool:
        """Coronal and sagittal planes are drawn with z up, as in the 3-D view (their rows are z)."""
        return self.axis != "z"

    def to_voxel(self, pos: QPointF) -> tuple[int, int] | None:
        """Widget position -> (row, column) of the plane's array, or ``None`` outside it."""
        if self.shape is None:
            return None
        (h, w), _ = self._plane_shape_and_spacing()
        t = self._target()
        r = int(np.floor((pos.y() - t.top()) / t.height() * h))
        c = int(np.floor((pos.x() - t.left()) / t.width() * w))
        if self.z_up:
            r = h - 1 - r
        return (r, c) if 0 <= r < h and 0 <= c < w else None

    def to_widget(self, r: float, c: float) -> QPointF:
        """(row, column) of the plane's array (fractions allowed: ``r + 0.5`` is a voxel's centre) ->
        widget position."""
        (h, w), _ = self._plane_shape_and_spacing()
        t = self._target()
        rr = h - r if self.z_up else r
        return QPointF(t.left() + c / w * t.width(), t.top() + rr / h * t.height())

    def set_cursor(self, rc: tuple[int, int]) -> None:
        """Put the linked cursor at plane position ``rc`` of the shown slice (Shift + click): changing
        the axis then shows the cursor's slice, with a crosshair at it."""
        k = AXIS_INDEX[self.axis]
        dims = [d for d in range(3) if d != k]
        zyx = [0, 0, 0]
        zyx[k] = self.index
        zyx[dims[0]], zyx[dims[1]] = rc
        self.cursor = tuple(zyx)
        self.update()

    # -- drawing --------------------------------------------------------------------------------
    def image(self) -> np.ndarray | None:
        """The current plane as an RGB uint8 array: windowed grey values with the label overlay."""
        if self.shape is None:
            return None
        if self.volume is not None:
            g = np.asarray(plane(self.volume.data, self.axis, self.index), dtype=np.float32)
            lo, hi = self.window
            g = np.clip((np.nan_to_num(g) - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
            rgb = np.repeat(g[..., None], 3, axis=2)
        else:
            (h, w), _ = self._plane_shape_and_spacing()
            rgb = np.zeros((h, w, 3), np.uint8)
        if self.labels is not None and self.labels_visible:
            lab = np.asarray(plane(self.labels.data, self.axis, self.index))
            n = max(256, int(lab.max()) + 1)
            colors = np.zeros((n, 3), np.float32)
            alpha = np.zeros(n, np.float32)  # per class: 0 hides it
            base = self.overlay_alpha if self.volume is not None else 1.0
            for c in self.labels.classes:
                colors[c.index] = c.color[:3]
                alpha[c.index] = 0.0 if c.index in self.hidden_classes else base * self.class_opacity.get(c.index, 1.0)
            on = lab > 0
            if self.outline:  # only the borders of each class region
                edge = np.zeros_like(on)
                edge[:-1] |= lab[:-1] != lab[1:]
                edge[1:] |= lab[1:] != lab[:-1]
                edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
                edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
                on &= edge
            a = alpha[lab[on]][:, None]
            rgb = rgb.astype(np.float32)
            rgb[on] = (1 - a) * rgb[on] + a * colors[lab[on]]
            rgb = rgb.astype(np.uint8)
        if self.heat is not None and tuple(self.heat.shape[:3]) == tuple(self.shape or ()):
            # a 0..1 map over the picture (the model's uncertainty: where to paint next), in orange
            h = np.clip(np.nan_to_num(np.asarray(plane(self.heat.data, self.axis, self.index), np.float32)), 0, 1)
            a = (0.7 * h)[..., None]
            rgb = ((1 - a) * rgb + a * np.array([255, 140, 0], np.float32)).astype(np.uint8)
        return np.ascontiguousarray(rgb)

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(22, 24, 30))
        img = self.image()
        if img is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "Open a scan (File > Open volume, or drop a file here)")
            return
        h, w = img.shape[:2]
        if self.z_up:
            img = np.ascontiguousarray(img[::-1])
        qimg = QImage(img.data, w, h, 3 * w, QImage.Format_RGB888)
        p.drawImage(self._target(), qimg)
        if self.cursor is not None:  # the crosshair of the linked cursor
            k = AXIS_INDEX[self.axis]
            r, c = (self.cursor[d] for d in range(3) if d != k)
            at = self.to_widget(r + 0.5, c + 0.5)
            p.setPen(QPen(QColor(0, 220, 255), 1))
            p.drawLine(QPointF(0, at.y()), QPointF(self.width(), at.y()))
            p.drawLine(QPointF(at.x(), 0), QPointF(at.x(), self.height()))
        if self._box_start is not None and self._box_now is not None:
            p.setPen(QPen(QColor(255, 220, 0), 1.5, Qt.DashLine))
            p.drawRect(QRectF(self._box_start, self._box_now).normalized())

    # -- tools ----------------------------------------------------------------------------------
    def _dab(self, rc: tuple[int, int]) -> None:
        lab = plane(self.labels.data, self.axis, self.index)
        r0, c0 = rc
        rad = max(0, int(self.brush) - 1)
        rr, cc = np.ogrid[-rad:rad + 1, -rad:rad + 1]
        disc = rr * rr + cc * cc <= rad * rad + rad
        r1, c1 = max(0, r0 - rad), max(0, c0 - rad)
        r2, c2 = min(lab.shape[0], r0 + rad + 1), min(lab.shape[1], c0 + rad + 1)
        d = disc[r1 - (r0 - rad):r2 - (r0 - rad), c1 - (c0 - rad):c2 - (c0 - rad)]
        value = 0 if self.tool == "eraser" else self.current_class
        lab[r1:r2, c1:c2][d] = value

    def push_undo(self) -> None:
        """Remember the current plane of the label layer (before a stroke or a fill); the layer is now
        ``modified`` (a recording saves its content rather than reloading its file)."""
        self.labels.metadata["modified"] = True
        self.labels.metadata["edits"] = self.labels.metadata.get("edits", 0) + 1  # unsaved until a save
        self.undo_stack.append((self.axis, self.index, plane(self.labels.data, self.axis, self.index).copy()))
        del self.undo_stack[:-50]
        self.redo_stack.clear()

    def _swap(self, src: list, dst: list) -> bool:
        if not src or self.labels is None:
            return False
        axis, index, arr = src.pop()
        view = plane(self.labels.data, axis, index)
        dst.append((axis, index, view.copy()))
        view[...] = arr
        if axis != self.axis:
            self.axis = axis
            self.axis_changed.emit(axis)
        moved = index != self.index
        self.set_index(index)
        if moved:
            self.moved.emit(f"undo/redo: back to the edited plane, {axis} = {index}")
        self.update()
        self.painted.emit()
        return True

    def undo(self) -> bool:
        return self._swap(self.undo_stack, self.redo_stack)

    def redo(self) -> bool:
        return self._swap(self.redo_stack, self.undo_stack)

    def fill_slice(self) -> None:
        """Give every unpainted voxel of the current plane the current class."""
        if self.labels is None:
            return
        self.push_undo()
        view = plane(self.labels.data, self.axis, self.index)
        view[view == 0] = self.current_class
        self.update()
        self.painted.emit()

    def paint_at(self, points: list[tuple[int, int]], erase: bool = False) -> None:
        """One stroke through plane coordinates ``points`` (row, column): what the mouse does."""
        if self.labels is None:
            return
        tool = self.tool
        self.tool = "eraser" if erase else "brush"
        self.push_undo()
        for rc in points:
            self._dab(rc)
        self.tool = tool
        self.update()
        self.painted.emit()

    def box_from(self, a: tuple[int, int], b: tuple[int, int]) -> list[int]:
        """``[z0, y0, x0, z1, y1, x1]`` of the rectangle a..b (inclusive) on the current plane."""
        k = AXIS_INDEX[self.axis]
        dims = [d for d in range(3) if d != k]
        lo, hi = [0, 0, 0], [0, 0, 0]
        lo[k], hi[k] = self.index, self.index + 1
        for d, u, v in zip(dims, a, b):
            lo[d], hi[d] = min(u, v), max(u, v) + 1
        return lo + hi

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.LeftButton and ev.modifiers() & Qt.ShiftModifier:
            rc = self.to_voxel(ev.position())
            if rc is not None:
                self.set_cursor(rc)
            return
        if ev.button() == Qt.RightButton and self.volume is not None:
            self._level_from = (ev.position(), self.window)  # drag: right/left = level, up/down = width
            return
        if ev.button() == Qt.MiddleButton or (self.tool == "navigate" and ev.button() == Qt.LeftButton):
            self._pan_from = ev.position()  # drag to pan
            return
        rc = self.to_voxel(ev.position())
        if rc is None:
            return
        if self.tool in ("brush", "eraser") and self.labels is not None:
            self.push_undo()
            self._stroke = True
            self._last_rc = rc
            self._dab(rc)
            self.update()
        elif self.tool == "box":
            self._box_start = self._box_now = ev.position()

    def end_stroke(self) -> None:
        """End whatever the mouse was doing (a stroke, a pan, a level drag, a box): on release, and also
        when the canvas loses focus or another window opens, so a release that never arrives cannot
        leave the brush down. A stroke that ends emits ``painted()``."""
        self._level_from = self._pan_from = None
        if self._box_start is not None:
            self._box_start = self._box_now = None
            self.update()
        if self._stroke:
            self._stroke = False
            self.painted.emit()

    def focusOutEvent(self, ev) -> None:
        self.end_stroke()
        super().focusOutEvent(ev)

    def mouseMoveEvent(self, ev) -> None:
        if (self._stroke or self._pan_from is not None) and not ev.buttons() & (Qt.LeftButton | Qt.MiddleButton):
            self.end_stroke()  # the release went elsewhere (a window opened meanwhile): the stroke is over
        if self._level_from is not None and not ev.buttons() & Qt.RightButton:
            self.end_stroke()
        if self._level_from is not None:
            start, (lo, hi) = self._level_from
            d = ev.position() - start
            width = max((hi - lo) * (2.0 ** (-d.y() / 100.0)), 1e-6)
            centre = (lo + hi) / 2 + d.x() / max(1, self.width()) * (hi - lo)
            self.window = (centre - width / 2, centre + width / 2)
            self.window_dragged.emit(*self.window)
            self.update()
            return
        if self._pan_from is not None:
            self.pan += ev.position() - self._pan_from
            self._pan_from = ev.position()
            self.update()
            return
        rc = self.to_voxel(ev.position())
        if rc is not None:
            self.moved.emit(self._describe(rc))
        if self._stroke and rc is not None:
            # a fast drag jumps several voxels between events: paint the segment in between
            (r0, c0), (r1, c1) = self._last_rc, rc
            n = max(abs(r1 - r0), abs(c1 - c0), 1)
            for t in range(1, n + 1):
                self._dab((round(r0 + (r1 - r0) * t / n), round(c0 + (c1 - c0) * t / n)))
            self._last_rc = rc
            self.update()
        elif self._box_start is not None:
            self._box_now = ev.position()
            self.update()

    def mouseReleaseEvent(self, ev) -> None:
        if self._level_from is not None:
            self._level_from = None
        elif self._pan_from is not None:
            self._pan_from = None
        elif self._stroke:
            self.end_stroke()
        elif self._box_start is not None:
            a = self.to_voxel(self._box_start)
            b = self.to_voxel(ev.position())
            self._box_start = self._box_now = None
            self.update()
            if a is not None and b is not None:
                self.box_drawn.emit(self.box_from(a, b))

    def wheelEvent(self, ev) -> None:
        """The wheel steps slices; with Ctrl it zooms about the mouse."""
        up = ev.angleDelta().y() > 0
        if ev.modifiers() & Qt.ControlModifier:
            self.zoom_at(1.25 if up else 0.8, ev.position())
            return
        self.set_index(self.index + (1 if up else -1))
        self.moved.emit(f"{self.axis} = {self.index}")

    def keyPressEvent(self, ev) -> None:
        """Up/Down and Page Up/Down step through slices (10 at a time with Page), ``[``/``]`` change the
        brush size, ``1``..``9`` pick a class, ``+``/``-`` zoom, Home fits the plane again."""
        key, text = ev.key(), ev.text()
        steps = {Qt.Key_Up: 1, Qt.Key_Down: -1, Qt.Key_PageUp: 10, Qt.Key_PageDown: -10}
        if key == Qt.Key_Home:
            self.reset_view()
        elif text in ("+", "="):
            self.zoom_at(1.25)
        elif text == "-":
            self.zoom_at(0.8)
        elif key in steps:
            self.set_index(self.index + steps[key])
            self.moved.emit(f"{self.axis} = {self.index}")
        elif text in ("[", "]"):
            self.brush_step.emit(-1 if text == "[" else 1)
        elif text.isdigit() and text != "0":
            self.class_key.emit(int(text))
        else:
            super().keyPressEvent(ev)

    def _describe(self, rc) -> str:
        k = AXIS_INDEX[self.axis]
        dims = [d for d in range(3) if d != k]
        zyx = [0, 0, 0]
        zyx[k] = self.index
        zyx[dims[0]], zyx[dims[1]] = rc
        text = f"z {zyx[0]}  y {zyx[1]}  x {zyx[2]}"
        if self.volume is not None:
            v = self.volume.data[tuple(zyx)]
            text += f"  value {int(v)}" if self.volume.data.dtype.kind in "iub" else f"  value {float(v):.4g}"
        if self.labels is not None:
            i = int(self.labels.data[tuple(zyx)])
            names = {c.index: c.name for c in self.labels.classes}
            text += f"  label {names.get(i, '-') if i else '-'}"
        return text
