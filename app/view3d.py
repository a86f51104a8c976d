"""The 3-D view: a pyvistaqt plotter drawn by the engine's scene code (the same ``SceneRenderer`` that
renders snapshots and movies headless), camera presets, and its camera as snapshot arguments."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from damselfly.engine import render as R

#: name -> (azimuth, elevation) in the scene's camera convention
PRESETS = {"iso": (30.0, 20.0), "front": (0.0, 0.0), "side": (90.0, 0.0), "top": (0.0, 90.0)}


class View3D(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        from pyvistaqt import QtInteractor

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        # auto_update=False: no timer redrawing 5 times a second while nothing changes (it took a core);
        # the view renders when the camera moves (VTK's interactor) and when _apply changes the scene
        self.plotter = QtInteractor(self, auto_update=False)
        lay.addWidget(self.plotter.interactor, 1)
        bar = QHBoxLayout()
        self.preset_buttons = {}
        for name in PRESETS:
            b = QPushButton(name)
            b.clicked.connect(lambda _c=False, n=name: self.preset(n))
            bar.addWidget(b)
            self.preset_buttons[name] = b
        bar.addStretch(1)
        lay.addLayout(bar)
        self.renderer: R.SceneRenderer | None = None
        self.view = R.View(*PRESETS["iso"])
        self.plane: tuple[str, float] | None = None  # the slice view's plane, drawn in 3-D when set

    def show_scene(self, volume=None, labels=None) -> None:
        """Draw ``volume`` and ``labels`` (either may be ``None``) with the engine's scene code."""
        self.plotter.clear()
        self.renderer = None
        if volume is None and labels is None:
            self.plotter.render()
            return
        if volume is not None and labels is not None and tuple(volume.shape[:3]) != tuple(labels.shape[:3]):
            labels = None
        scene = R.Scene(volume=volume, labels=labels, scale_bar=False)
        size = (max(16, self.plotter.width()), max(16, self.plotter.height()))
        self.renderer = R.SceneRenderer(scene, size, plotter=self.plotter)
        self._apply()

    def _apply(self) -> None:
        if self.renderer is not None:
            slices = {self.plane[0]: self.plane[1]} if self.plane else {}
            self.renderer.apply(R.View(self.view.azimuth, self.view.elevation, slices=slices))
            self.plotter.render()

    def preset(self, name: str) -> None:
        self.view = R.View(*PRESETS[name])
        self._apply()

    def set_plane(self, axis: str | None, frac: float = 0.5) -> None:
        """Show the slice view's plane (world ``axis`` at fraction ``frac``) in 3-D, or none."""
        self.plane = (axis, float(frac)) if axis else None
        self._apply()

    def camera_angles(self) -> tuple[float, float, float]:
        """(azimuth, elevation, zoom) of the camera as the user left it, in the scene's convention
        (z up), so that a snapshot action reproduces the view."""
        if self.renderer is None:
            return self.view.azimuth, self.view.elevation, 1.0
        cam = self.plotter.camera
        d = np.asarray(cam.position, float) - np.asarray(cam.focal_point, float)
        d /= np.linalg.norm(d) or 1.0
        az = math.degrees(math.atan2(d[1], d[0]))
        el = math.degrees(math.asin(max(-1.0, min(1.0, d[2]))))
        zoom = self.renderer.radius * 1.05 / max(cam.parallel_scale, 1e-9)
        return round(az, 1), round(el, 1), round(zoom, 2)

    def close_view(self) -> None:
        self.plotter.close()
