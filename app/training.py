"""The training dialog: loss and val_loss per epoch, plotted live; the preview region's prediction after
each epoch; Stop (training keeps its best model); Save model."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class LossPlot(QWidget):
    """A small line plot of ``loss`` and ``val_loss`` against the epoch."""

    COLORS = {"loss": QColor(97, 175, 239), "val_loss": QColor(229, 192, 123)}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.empty_text = ""  # said in the plot while it has no epoch (e.g. no network was trained)
        self.setMinimumSize(360, 200)

    def add(self, row: dict) -> None:
        if self.rows and int(row.get("epoch", 0)) <= int(self.rows[-1].get("epoch", 0)):
            self.rows = []  # a new training (train(arch="auto") trains once per held-out fold)
        self.rows.append(row)
        self.update()

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(int(r["epoch"]), float(r[key])) for r in self.rows
                if r.get(key) is not None and math.isfinite(float(r[key]))]

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), QColor(30, 32, 38))
        m = 36
        w, h = self.width() - 2 * m, self.height() - 2 * m
        p.setPen(QColor(150, 150, 150))
        p.drawRect(m, m, w, h)
        allv = [v for k in self.COLORS for _, v in self.series(k)]
        p.drawText(m, m - 8, "loss (blue), val_loss (yellow) per epoch")
        if not allv:
            p.drawText(self.rect().adjusted(m, m, -m, -m), Qt.AlignCenter | Qt.TextWordWrap, self.empty_text)
            return
        ep = [e for k in self.COLORS for e, _ in self.series(k)]
        e0, e1 = min(ep), max(max(ep), min(ep) + 1)
        lo, hi = 0.0, max(allv) * 1.05 or 1.0
        p.drawText(4, m + 10, f"{hi:.2f}")
        p.drawText(4, m + h, "0")
        p.drawText(m + w - 40, m + h + 16, f"epoch {e1}")

        def pt(e, v):
            return QPointF(m + (e - e0) / (e1 - e0) * w, m + h - (v - lo) / (hi - lo) * h)

        for key, color in self.COLORS.items():
            s = self.series(key)
            if not s:
                continue
            path = QPainterPath(pt(*s[0]))
            for e, v in s[1:]:
                path.lineTo(pt(e, v))
            p.setPen(QPen(color, 2))
            p.drawPath(path)
            for e, v in s:
                p.drawEllipse(pt(e, v), 2.5, 2.5)


def duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 5 s"``, ``"1 h 2 min"``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class TrainingDialog(QDialog):
    """Follows one training run. Signals: ``stop_requested()``, ``save_requested()``."""

    stop_requested = Signal()
    save_requested = Signal()

    def __init__(self, parent=None, epochs: int | None = None):
        super().__init__(parent)
        self.epochs = epochs  # the most epochs this run will take (early stopping may end it sooner)
        self.setWindowTitle("Training")
        self.setModal(False)
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.plot = LossPlot()
        top.addWidget(self.plot, 2)
        self.preview = QLabel("preview region:\n(give train a preview box\nto see its prediction here)")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumSize(200, 200)
        top.addWidget(self.preview, 1)
        lay.addLayout(top)
        self.scores = QLabel("")  # train(arch="auto"): each method's Dice on the held-out painted slices
        self.scores.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.scores.setWordWrap(True)  # a long line wraps; it does not widen the dialog past the screen
        lay.addWidget(self.scores)
        self.status = QLabel("starting…")
        lay.addWidget(self.status)
        bar = QHBoxLayout()
        self.stop_button = QPushButton("■ Stop (keep the best model)")
        self.stop_button.clicked.connect(self.stop_requested.emit)
        self.save_button = QPushButton("Save model…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_requested.emit)
        bar.addWidget(self.stop_button)
        bar.addStretch(1)
        bar.addWidget(self.save_button)
        lay.addLayout(bar)
        self.resize(720, 360)

    def on_epoch(self, row: dict) -> None:
        self.plot.add(row)
        epoch = int(row.get("epoch", 0))
        text = f"epoch {epoch}" + (f"/{self.epochs}" if self.epochs else "")
        text += f": loss {float(row.get('loss', float('nan'))):.4f}"
        if row.get("val_loss") is not None:
            text += f", val_loss {float(row['val_loss']):.4f}"
        if self.epochs and epoch < self.epochs:
            per = sum(float(r.get("seconds", 0.0)) for r in self.plot.rows) / max(1, len(self.plot.rows))
            text += f"; at most {duration(per * (self.epochs - epoch))} left"
        self.status.setText(text)
        png = row.get("preview")
        if png:
            pix = QPixmap(str(png))
            if not pix.isNull():
                self.preview.setPixmap(pix.scaled(self.preview.size(), Qt.KeepAspectRatio, Qt.FastTransformation))

    def on_scored(self, data: dict) -> None:
        """A method scored on the painted slices held out in turn (``train(arch="auto")``): its Dice per
        class, shown as soon as it is known (the forest's within seconds)."""
        dice = ", ".join(f"{k} {v:.3f}" for k, v in data.get("dice", {}).items())
        folds = data.get("folds") or []
        n = sum(len(f) for f in folds)
        line = (f"{data.get('method')}: held-out Dice {dice} (mean {float(data.get('mean_dice', float('nan'))):.3f}; "
                f"{n} painted slice{'s' if n != 1 else ''} held out in turn; "
                f"{duration(float(data.get('seconds', 0)))})")
        if data.get("beat") is not None and not folds:  # the forest left the network no room: not trained
            line = (f"{data.get('method')}: not trained (the forest's held-out mean Dice {data['beat']:.3f} leaves "
                    f"no room to beat it by more than {data.get('margin')}; the forest was kept)")
            self.plot.empty_text = "no network was trained (the forest has no epochs)"
            self.plot.update()
        elif len(folds) < data.get("of", len(folds)):  # stopped early: it could not be kept whatever it scored
            line = (f"{line}; stopped after {len(folds)} of {data['of']} folds: even right on the rest "
                    f"it could not beat the forest by the margin")
        self.scores.setText("\n".join(filter(None, [self.scores.text(), line])))

    def finished_training(self, message: str) -> None:
        self.status.setText(message)
        self.stop_button.setEnabled(False)
        self.save_button.setEnabled(True)
