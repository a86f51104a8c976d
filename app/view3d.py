"""The 3-D view: a pyvistaqt plotter drawn by the engine's scene code (the same ``SceneRenderer`` that
renders snapshots and movies headless), camera presets, and its camera as snapshot arguments."""

from __future__ import annotations

import math
import threading

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from damselfly.engine.render import _scene as R

#: A first draft of the 3-D view at this fraction of the detail, shown at once; the full detail follows.
DRAFT = 0.25
#: name -> (azimuth, elevation) in the scene's camera convention
PRESETS = {"iso": (30.0, 20.0), "front": (0.0, 0.0), "side": (90.0, 0.0), "top": (0.0, 90.0)}


class View3D(QWidget):
    """The scene is prepared (level of detail, surfaces: :func:`~damselfly.engine.render._scene.prepare_scene`) in a
    thread, so the window never waits for it; only making the VTK actors runs on the GUI thread. A quick
    draft (``DRAFT`` of the detail) is shown first, then the full detail replaces it, keeping the camera.
    A newer scene supersedes one still being prepared. ``failed(message)`` when a scene cannot be
    drawn; the view's status line says it too."""

    built = Signal(int, object, bool)  # generation, prepared scene (or None, or an error), final
    failed = Signal(str)

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
        self.status = QLabel("")
        bar.addWidget(self.status)
        lay.addLayout(bar)
        self._generation = 0
        self._drafted = -1  # the generation whose draft is shown
        self._building: threading.Thread | None = None
        self.built.connect(self._on_built)
        self.renderer: R.SceneRenderer | None = None
        self.view = R.View(*PRESETS["iso"])
        self.plane: tuple[str, float] | None = None  # the slice view's plane, drawn in 3-D when set
        self.highlighted: tuple[float, ...] | None = None  # the box framing a chosen object

    @property
    def building(self) -> bool:
        """Whether a scene is being prepared."""
        return self._building is not None and self._building.is_alive()

    def show_scene(self, volume=None, labels=None, hidden: set[int] | frozenset = frozenset()) -> None:
        """Draw ``volume`` and ``labels`` (either may be ``None``; labels with no class painted yet are
        left out) with the engine's scene code, prepared in a thread: every class but the background
        (:meth:`~damselfly.engine.render._scene.Scene.shown_classes`) and the ``hidden`` class indices."""
        self._generation += 1
        gen = self._generation
        if volume is None and labels is None:
            self._clear()
            return
        if volume is not None and labels is not None and tuple(volume.shape[:3]) != tuple(labels.shape[:3]):
            labels = None
        size = (max(16, self.plotter.width()), max(16, self.plotter.height()))
        self.status.setText("building the 3-D view…")

        def emit(prepared, final: bool) -> None:
            try:
                self.built.emit(gen, prepared, final)
            except RuntimeError:  # the window closed meanwhile: nobody to draw it for
                pass

        def body():
            try:
                lab = labels if labels is not None and _any_painted(labels) else None
                if volume is None and lab is None:
                    emit(None, True)
                    return
                scene = R.Scene(volume=volume, labels=lab, scale_bar=False)
                if lab is not None and hidden:
                    shown = [c.name for c in lab.classes if c.name in scene.shown_classes() and c.index not in hidden]
                    if not shown and volume is None:
                        emit(None, True)
                        return
                    scene = R.Scene(volume=volume, labels=lab if shown else None, classes=shown or None,
                                    scale_bar=False)
                draft = R.prepare_scene(scene, size, DRAFT)
                coarser = draft.scene is not scene or (
                    lab is not None and np.prod(lab.shape[:3]) > R.SURFACE_VOXELS * DRAFT ** 3)
                emit(draft, not coarser)
                if coarser and gen == self._generation:
                    emit(R.prepare_scene(scene, size), True)  # then the full detail
            except Exception as e:  # a scene that cannot be drawn is a message, not a crash
                emit(e, True)

        self._building = threading.Thread(target=body, name="damselfly: 3-D scene", daemon=True)
        self._building.start()

    def _on_built(self, gen: int, prepared, final: bool) -> None:
        if gen != self._generation:
            return  # superseded by a newer scene
        camera = self._camera() if self.renderer is not None and self._drafted == gen else None
        self._drafted = gen
        self.status.setText("" if final else "refining the 3-D view…")
        self._clear()
        if prepared is None:
            return
        if isinstance(prepared, Exception):
            self._fail(prepared)
            return
        try:
            self.renderer = R.SceneRenderer(prepared.scene, prepared.size, plotter=self.plotter, prepared=prepared)
        except Exception as e:
            self._fail(e)
            return
        self._apply()
        if self.highlighted is not None:
            self.highlight(self.highlighted)
        if camera is not None:  # the refined scene keeps the camera the user has moved meanwhile
            cam = self.plotter.camera
            cam.position, cam.focal_point, cam.up, cam.parallel_scale = camera
            self.plotter.render()

    def _fail(self, error: Exception) -> None:
        """Say in the view's own status line what could not be drawn (never a box: people paint meanwhile)."""
        message = f"3-D view: {error}"
        self.status.setText(message.splitlines()[0][:120])
        self.status.setToolTip(message)
        self.failed.emit(message)

    def _camera(self):
        cam = self.plotter.camera
        return cam.position, cam.focal_point, cam.up, cam.parallel_scale

    def _clear(self) -> None:
        self.plotter.clear()
        self.renderer = None
        self.plotter.render()

    def _apply(self) -> None:
        if self.renderer is not None:
            slices = {self.plane[0]: self.plane[1]} if self.plane else {}
            self.renderer.apply(R.View(self.view.azimuth, self.view.elevation, slices=slices))
            self.plotter.render()

    def highlight(self, bounds: tuple[float, ...] | None) -> None:
        """Frame a box of world ``bounds`` (x0, x1, y0, y1, z0, z1) in yellow (an object chosen in a
        table), or none; it stays while the scene is rebuilt."""
        self.highlighted = bounds
        self.plotter.remove_actor("highlight", render=False)
        if bounds is not None and self.renderer is not None:
            import pyvista as pv

            self.plotter.add_mesh(pv.Box(bounds), style="wireframe", color="yellow", line_width=3,
                                  name="highlight", pickable=False, reset_camera=False)
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
        self._generation += 1  # a scene still being prepared is dropped
        self.plotter.close()


def _any_painted(labels, slab: int = 16) -> bool:
    """Whether any voxel has a class, read slab by slab (stops at the first)."""
    return any(np.any(labels.data[z:z + slab]) for z in range(0, labels.shape[0], slab))
