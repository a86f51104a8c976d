"""3-D scenes, snapshots and movies, drawn the same way in the app's 3-D view and headless.

A :class:`Scene` says *what* is drawn: a grey-value volume (volume rendering with a window/level ramp
and a colour map), the classes of a segmentation as smooth surfaces (marching cubes per class, light
Taubin smoothing) in their colours, optional orthogonal slice planes, a scale bar in physical units and
a caption. A :class:`Timeline` says *how it moves*: tracks of segments (camera orbit, zoom, a sweeping
slice plane, a clipping plane, per-class opacity fades), each with an easing. :meth:`Timeline.state`
gives the view at a time ``t`` from ``t`` alone, so any frame can be previewed and a long movie rendered
in pieces (:mod:`damselfly.engine.render._timeline`). :class:`SceneRenderer` draws a state with pyvista
(off-screen: VTK picks EGL or OSMesa, or an X server when there is one); ``render_movie`` in
:mod:`damselfly.engine.render._movie` streams frames to MP4, GIF or PNGs.

Geometry: world coordinates are physical, x along the volume's last axis, z along its first
(``origin + index * spacing``), so a 0.05 mm voxel is drawn 0.05 mm wide. The camera is orthographic,
so the scale bar is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.data import Labels, Table, Volume
from ..core.errors import ParameterError
from ._surfaces import MAX_TRIANGLES, SURFACE_VOXELS, class_surface, mask_surface, surface_step  # noqa: F401
from ._timeline import AXES, EASINGS, TRACKS, Segment, Timeline, View, _ease, simple_timeline  # noqa: F401

MAX_SIZE = 4096  # pixels per side (4K is 3840 x 2160)
VOLUME_VOXELS = 2 ** 27  # grey voxels drawn at most (the volume texture: 256 MiB of uint16)


class RenderError(RuntimeError):
    """A frame could not be drawn: no OpenGL for off-screen rendering, or the renderer reported an error
    (a layer it could not draw, e.g. a volume texture it could not allocate)."""


NO_GL_HELP = ("3-D rendering needs OpenGL, and none could be started off-screen. Install Mesa's EGL or "
              "OSMesa libraries (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri, or libosmesa6), "
              "or run under an X server (xvfb-run -a damselfly ...).")


# -------------------------------------------------------------------------------------------- scene

#: A class covering at least this fraction of the image border surrounds the object: the background.
SURROUNDING = 0.9


@dataclass
class Scene:
    """What is drawn. ``volume`` is volume-rendered; ``labels`` become surfaces (classes named in
    ``classes``, default: every class but the background, i.e. a class named "background" or the one
    that surrounds the object, covering at least ``SURROUNDING`` of the image border: the air around a
    part; in a sample cut out of a material, or in a few painted dabs, every class is drawn); ``opacity`` per shown class (default: 0.25 for classes filling more than a tenth of the
    volume, so what lies inside them shows, else 1); ``window`` = (low, high) grey values of the ramp (default: the
    0.5 and 99.5 percentiles); ``slices`` = world axes with a plane through the middle;
    ``volume_opacity`` scales the grey ramp (default 0.08 alone, 0.02 under class surfaces, so that
    their colours are not washed out by the grey values in front of them)."""

    volume: Volume | None = None
    labels: Labels | None = None
    classes: list[str] | None = None
    opacity: list[float] | None = None
    window: tuple[float, float] | None = None
    cmap: str = "gray"
    volume_opacity: float | None = None
    slices: tuple[str, ...] = ()
    caption: str = ""
    scale_bar: bool = True
    background: tuple[int, int, int] = (22, 24, 30)
    color_by: str | None = None
    table: Table | None = None

    def __post_init__(self):
        if self.volume is None and self.labels is None:
            raise ParameterError("a scene needs a volume or labels to draw")
        self.values, self.value_title = None, ""
        if self.color_by is not None:  # objects coloured by id or a column: see render_objects
            from ._objects import object_values

            if self.labels is None:
                raise ParameterError("color_by colours objects: give them as labels=...")
            self.values, self.value_title = object_values(self.labels, self.color_by, self.table)
            self.opacity = self.opacity or [1.0]
        if self.volume_opacity is None:
            self.volume_opacity = 0.08 if self.labels is None else 0.02
        if self.volume is not None and self.labels is not None:
            self.volume.check_same_geometry(self.labels)
        for a in self.slices:
            if a not in AXES:
                raise ParameterError(f"slices are along x, y or z, got {a!r}")
        if self.labels is not None:
            shown = self.shown_classes()
            if self.opacity is None:  # large classes translucent, so what lies inside them shows
                d = np.asarray(self.labels.data[::2, ::2, ::2])  # a sample: the data may be on disk
                frac = np.bincount(d.ravel(), minlength=len(self.labels.classes) + 1)
                frac = frac / max(1, frac.sum())
                self.opacity = [0.25 if frac[self.labels.class_index(n)] > 0.1 else 1.0 for n in shown]
            if len(self.opacity) != len(shown):
                raise ParameterError(f"opacity has {len(self.opacity)} value(s) for {len(shown)} shown "
                                     f"class(es) ({', '.join(shown)})")

    @property
    def geometry(self) -> Volume:
        return self.volume if self.volume is not None else self.labels

    def shown_classes(self) -> list[str]:
        lab = self.labels
        if lab is None:
            return []
        if self.classes is not None:
            for name in self.classes:
                lab.class_index(name)  # a clear error for an unknown class
            return list(self.classes)
        d, n = lab.data, lab.shape
        faces = [d[0], d[n[0] - 1], d[:, 0], d[:, n[1] - 1], d[:, :, 0], d[:, :, n[2] - 1]]  # no full read
        border = np.concatenate([np.asarray(f).ravel() for f in faces])
        counts = np.bincount(border, minlength=len(lab.classes) + 1)
        hidden = {int(np.argmax(counts[1:]) + 1)} if counts[1:].max() >= SURROUNDING * border.size else set()
        hidden |= {c.index for c in lab.classes if c.name.lower() == "background"}
        if len(lab.classes) == 1:
            hidden = set()
        return [c.name for c in lab.classes if c.index not in hidden]

    def hashes(self) -> dict:
        out = {}
        for key in ("volume", "labels"):
            obj = getattr(self, key)
            if obj is not None:
                out[key] = {"name": obj.name, "source": str(obj.source) if obj.source else None,
                            "sha256": obj.hash()}
        return out


def _headless_egl() -> None:
    """Without an X display, draw with EGL straight away: VTK would first try X and print a coloured
    "bad X server connection" warning into the command line's output before falling back to EGL."""
    import os
    import sys

    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def _colouring(mesh, color, scene: Scene) -> dict:
    """``add_mesh`` arguments: a class in its colour, or objects by the values of their vertices (ids in
    distinct colours; a column through viridis with a colour bar titled with its unit)."""
    if "value" not in mesh.point_data:
        return {"color": [v / 255 for v in color[:3]], "show_scalar_bar": False}
    if scene.color_by == "id":
        from ._objects import ID_COLOURS

        mesh.point_data["value"] = np.where(np.isnan(mesh.point_data["value"]), np.nan,
                                            (mesh.point_data["value"] - 1) % 20)
        return {"scalars": "value", "cmap": ID_COLOURS, "clim": (0, 19), "n_colors": 20,
                "show_scalar_bar": False, "nan_color": "gray"}
    shown = scene.values[1:][np.isfinite(scene.values[1:])]
    lo, hi = (float(shown.min()), float(shown.max())) if shown.size else (0.0, 1.0)
    return {"scalars": "value", "cmap": "viridis", "clim": (lo, hi if hi > lo else lo + 1), "nan_color": "gray",
            "show_scalar_bar": True, "scalar_bar_args": {"title": scene.value_title, "color": "white",
                                                         "vertical": True, "position_x": 0.86, "position_y": 0.2,
                                                         "fmt": "%.3g"}}


def _grid(vol: Volume, data: np.ndarray):
    import pyvista as pv

    nz, ny, nx = data.shape
    g = pv.ImageData(dimensions=(nx, ny, nz), spacing=tuple(float(s) for s in vol.spacing[::-1]),
                     origin=tuple(float(o) for o in vol.origin[::-1]))
    g.point_data["values"] = np.ascontiguousarray(data).ravel(order="C")
    return g


def _font(size: int):
    """DejaVu Sans (shipped with matplotlib, which pyvista needs: full Unicode, e.g. the dash in
    "{scan.stem} — pores"), else Pillow's default font."""
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except Exception:
        return ImageFont.load_default(size=size)


def _nice_length(max_len: float) -> float:
    k = 10 ** math.floor(math.log10(max_len))
    for m in (5, 2, 1):
        if m * k <= max_len:
            return m * k
    return k


def lod_step(shape, size, budget: int) -> int:
    """Take every ``step``-th voxel: no finer than a ``size`` frame shows (its shorter side, which the
    camera fits the scene into) and at most ``budget`` voxels."""
    frame = math.ceil(max(shape) / min(int(v) for v in size))
    voxels = math.ceil((float(np.prod(shape, dtype=np.float64)) / budget) ** (1 / 3))
    return max(1, frame, voxels)


def level_of_detail(scene: Scene, size) -> Scene:
    """The scene on a grid no finer than the frame can show: a ``w`` x ``h`` frame shows at most about
    ``min(w, h)`` voxels across, so bigger volumes are taken every ``step``-th voxel along each axis (the
    spacing multiplied by ``step``), within ``VOLUME_VOXELS`` (labels by nearest voxel; their surfaces
    are coarser still, see :func:`class_surface`). A volume read from an OME-Zarr pyramid is drawn from the
    level that fits, which is read instead of every voxel of the full one. Set-up time and memory of a
    render are then bounded whatever the scan size; small scans are drawn as they are."""
    import copy

    shape = scene.geometry.shape[:3]
    step = lod_step(shape, size, VOLUME_VOXELS)
    if step == 1:
        return scene
    lod = copy.copy(scene)  # no new checks, no new defaults: the same scene, coarser
    lod.volume, lod.labels = _coarse(scene.volume, step), _coarse(scene.labels, step)
    return lod


def _coarse(g, step: int):
    """``g`` every ``step``-th voxel (from the pyramid level that fits, for an OME-Zarr volume)."""
    if g is None or step <= 1:
        return g
    pyramid = g.metadata.get("pyramid")
    if pyramid and g.source and not isinstance(g, Labels):  # an OME-Zarr level: read it, not every voxel
        level = min(pyramid["levels"] - 1, pyramid["level"] + int(np.log2(step)))
        if level > pyramid["level"]:
            from ..io._files import read_volume

            lvl = read_volume(g.source, level=level)
            rest = math.ceil(step / 2 ** (level - pyramid["level"]))
            data = _strided(lvl.data, rest, f"Reading pyramid level {level}")
            return g.with_data(data, spacing=tuple(s * rest for s in lvl.spacing), origin=lvl.origin)
    return g.with_data(_strided(g.data, step, "Reading the level of detail"),
                       spacing=tuple(s * step for s in g.spacing))


def _strided(data, step: int, message: str, planes: int = 16) -> np.ndarray:
    """``data[::step, ::step, ::step]`` read ``planes`` planes at a time, with progress and Stop."""
    from ..core import progress

    zs = range(0, data.shape[0], step)
    out = np.empty((len(zs), *(len(range(0, n, step)) for n in data.shape[1:3]), *data.shape[3:]), data.dtype)
    task = progress.task(message, total=len(zs))
    for k in range(0, len(zs), planes):
        z = zs[k]
        out[k:k + planes] = np.asarray(data[z:z + planes * step:step, ::step, ::step])
        task.advance(min(planes, len(zs) - k))
    task.finish()
    return out


@dataclass
class PreparedScene:
    """What drawing a scene needs, computed without any OpenGL (so it can run off the GUI thread): the
    scene at the frame's level of detail, the grey values as drawn and their window, and the class
    surfaces (name -> (mesh, colour, opacity))."""

    scene: Scene
    size: tuple[int, int]
    grey: np.ndarray | None
    window: tuple[float, float] | None
    surfaces: dict


def prepare_scene(scene: Scene, size=(1280, 720), detail: float = 1.0) -> PreparedScene:
    """The slow, pure part of drawing ``scene`` in a ``size`` frame: reading the level of detail,
    percentiles, marching cubes. Reports progress and honours Stop between classes. ``detail`` < 1 makes
    a quick draft: the level of detail of a frame that much smaller, surfaces from ``detail``^3 of the
    voxels (the app shows one at once, then the full detail)."""
    from ..core import progress

    w, h = (int(v) for v in size)
    if not (16 <= w <= MAX_SIZE and 16 <= h <= MAX_SIZE):
        raise ParameterError(f"size must be 16..{MAX_SIZE} pixels a side, got {w} x {h}")
    shown = scene.shown_classes() if scene.labels is not None else []
    task = progress.task("Building the 3-D scene", total=1 + len(shown))
    scene = level_of_detail(scene, (max(16, round(w * detail)), max(16, round(h * detail))))
    grey = window = None
    if scene.volume is not None:
        grey = np.asarray(scene.volume.data)
        if grey.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
            grey = grey.astype(np.float32)
        lo, hi = scene.window if scene.window is not None else np.percentile(grey[::2, ::2, ::2], [0.5, 99.5])
        window = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    task.advance()
    surfaces = {}
    for name, o in zip(shown, scene.opacity or [1.0] * len(shown), strict=True):
        budget = max(1, round(SURFACE_VOXELS * detail ** 3))
        if scene.values is not None:
            from ._objects import object_surface

            mesh = object_surface(scene.labels, scene.values, budget)
        else:
            mesh = class_surface(scene.labels, name, budget=budget)
        if mesh is not None:
            surfaces[name] = (mesh, next(c.color for c in scene.labels.classes if c.name == name), float(o))
        task.advance()
    task.finish()
    return PreparedScene(scene, (w + w % 2, h + h % 2), grey, window, surfaces)


class SceneRenderer:
    """Draws a :class:`Scene` for any :class:`View`: the actors are made once, a view only moves the
    camera, planes and opacities. ``plotter`` may be given (the app's Qt widget); by default an
    off-screen one of ``size`` (width, height) pixels. The scene is drawn at the frame's level of detail
    (:func:`level_of_detail`); ``prepared`` (from :func:`prepare_scene`, e.g. made in another thread)
    skips that work here."""

    def __init__(self, scene: Scene, size=(1280, 720), plotter=None, prepared: PreparedScene | None = None):
        import pyvista as pv

        prep = prepared or prepare_scene(scene, size)
        scene = self.scene = prep.scene
        self.size = prep.size  # even, as H.264 in yuv420p needs
        try:
            if plotter is None:
                _headless_egl()
            self.plotter = plotter or pv.Plotter(off_screen=True, window_size=self.size)
            self.plotter.set_background([c / 255 for c in scene.background])
        except Exception as e:  # VTK raises plain errors when no context can be made
            raise RenderError(f"{NO_GL_HELP} ({e})") from e
        import vtk

        p = self.plotter
        geo = scene.geometry
        self.lo = np.asarray(geo.origin, float)[::-1]
        self.hi = self.lo + (np.asarray(geo.shape)[::-1] - 1) * np.asarray(geo.spacing, float)[::-1]
        self.centre = (self.lo + self.hi) / 2
        self.radius = float(np.linalg.norm(self.hi - self.lo)) / 2 or 1.0
        self.clip_plane = vtk.vtkPlane()
        self.clip_plane.SetOrigin(*(self.lo - 1e6))
        self.clip_plane.SetNormal(1, 0, 0)
        self.mappers = []
        self.class_actors = {}
        self.base_opacity = {}
        self.window = prep.window
        if prep.grey is not None:
            self.grid = _grid(scene.volume, prep.grey)
            op = np.array([0.0, 0.0, 0.15, 0.5, 1.0]) * scene.volume_opacity
            actor = p.add_volume(self.grid, scalars="values", cmap=scene.cmap, clim=self.window,
                                 opacity=op, show_scalar_bar=False, shade=False)
            self.mappers.append(actor.GetMapper())
        self.slice_actors = {}
        for name, (mesh, color, o) in prep.surfaces.items():
            actor = p.add_mesh(mesh, opacity=o, smooth_shading=True, specular=0.3,
                               **_colouring(mesh, color, scene))
            self.class_actors[name] = actor
            self.base_opacity[name] = o
            self.mappers.append(actor.GetMapper())
        for m in self.mappers:
            m.AddClippingPlane(self.clip_plane)
        p.enable_parallel_projection()
        p.enable_lightkit() if hasattr(p, "enable_lightkit") else None

    def _slice(self, axis: str, frac: float):
        """A plane through the grey values (or the labels' colours) at ``frac`` along world ``axis``."""

        sc = self.scene
        src = sc.volume if sc.volume is not None else sc.labels
        ax = 2 - AXES[axis]  # volume index axis
        n = src.shape[ax]
        i = int(round(min(1.0, max(0.0, frac)) * (n - 1)))
        plane = np.take(np.asarray(src.data), [i], axis=ax)
        g = _grid(src, plane)
        g.origin = tuple(float(v) for v in self.lo + (np.eye(3)[AXES[axis]] * i *
                                                       float(src.spacing[ax])))
        if sc.volume is not None:
            return g, dict(scalars="values", cmap=sc.cmap, clim=self.window, show_scalar_bar=False,
                           lighting=False)
        colors = np.zeros((len(sc.labels.classes) + 1, 3), np.uint8)
        for c in sc.labels.classes:
            colors[c.index] = c.color[:3]
        g.point_data["rgb"] = colors[np.asarray(g.point_data["values"], np.int64)]
        return g, dict(scalars="rgb", rgb=True, lighting=False)

    def apply(self, view: View) -> None:
        p = self.plotter
        cam = p.camera
        a = np.eye(3)[AXES[view.axis]]
        e1 = np.eye(3)[(AXES[view.axis] + 1) % 3]
        e2 = np.cross(a, e1)
        az, el = math.radians(view.azimuth), math.radians(view.elevation)
        d = math.cos(el) * (math.cos(az) * e1 + math.sin(az) * e2) + math.sin(el) * a
        cam.focal_point = tuple(self.centre)
        cam.position = tuple(self.centre + d * self.radius * 4)
        up = a if abs(math.sin(el)) < 0.999 else e1
        cam.up = tuple(up)
        cam.parallel_scale = self.radius * 1.05 / max(view.zoom, 1e-3)
        p.renderer.ResetCameraClippingRange()
        # clipping: cut away what lies below the fraction along the axis
        if view.clip is not None:
            ax, frac = view.clip
            k = AXES[ax]
            origin = self.centre.copy()
            origin[k] = self.lo[k] + frac * (self.hi[k] - self.lo[k])
            self.clip_plane.SetOrigin(*origin)
            toward = -1.0 if view.clip_facing and d[k] > 0 else 1.0
            self.clip_plane.SetNormal(*(toward * np.eye(3)[k]))
        else:
            self.clip_plane.SetOrigin(*(self.lo - 1e6))
            self.clip_plane.SetNormal(1, 0, 0)
        for name, actor in self.class_actors.items():
            f = view.opacity.get(name, 1.0)
            actor.GetProperty().SetOpacity(self.base_opacity[name] * min(1.0, max(0.0, f)))
            actor.SetVisibility(self.base_opacity[name] * f > 0.001)
        wanted = {a_: 0.5 for a_ in self.scene.slices}
        wanted.update(view.slices)
        for axis in list(self.slice_actors):
            if axis not in wanted:
                p.remove_actor(self.slice_actors.pop(axis))
        for axis, frac in wanted.items():
            if axis in self.slice_actors:
                p.remove_actor(self.slice_actors.pop(axis))
            g, kw = self._slice(axis, frac)
            self.slice_actors[axis] = p.add_mesh(g, name=f"slice-{axis}", **kw)

    def world_per_pixel(self) -> float:
        return 2 * self.plotter.camera.parallel_scale / self.size[1]

    def render(self, view: View | None = None) -> np.ndarray:
        """The frame for ``view`` as an (height, width, 3) uint8 array, with scale bar and caption."""
        import pyvista as pv

        self.apply(view or View())
        try:
            with pv.VtkErrorCatcher(send_to_logging=False) as caught:
                self.plotter.render()
                img = self.plotter.screenshot(return_img=True)
        except Exception as e:
            raise RenderError(f"{NO_GL_HELP} ({e})") from e
        if caught.error_events:  # e.g. "proxy texture 3D allocation failed": a layer would be missing
            e = caught.error_events[0]
            raise RenderError(f"the renderer could not draw the scene ({e.name}: {e.alert.strip()}), so the "
                              "frame would miss a layer; try a smaller frame or a coarser level of the scan")
        if img is None or img.size == 0:
            raise RenderError(NO_GL_HELP)
        return self.overlay(np.ascontiguousarray(img[..., :3]))

    def overlay(self, img: np.ndarray) -> np.ndarray:
        """Scale bar (physical units) and caption, with fonts in proportion to the frame's height."""
        from PIL import Image, ImageDraw

        sc = self.scene
        if not sc.scale_bar and not sc.caption:
            return img
        h, w = img.shape[:2]
        im = Image.fromarray(img)
        draw = ImageDraw.Draw(im)
        size = max(10, round(h / 28))
        font = _font(size)
        pad = round(h / 30)
        if sc.caption:
            draw.text((pad, pad), sc.caption, font=font, fill=(240, 240, 240), stroke_width=max(1, size // 12),
                      stroke_fill=(0, 0, 0))
        if sc.scale_bar:
            wpp = self.world_per_pixel()
            length = _nice_length(0.2 * w * wpp)
            px = max(1, round(length / wpp))
            unit = sc.geometry.unit if sc.geometry.unit not in ("", "unknown") else "(units unknown)"
            x0, y1 = pad, h - pad
            thick = max(2, round(h / 150))
            draw.rectangle([x0 - 1, y1 - thick - 1, x0 + px + 1, y1 + 1], fill=(0, 0, 0))
            draw.rectangle([x0, y1 - thick, x0 + px, y1], fill=(255, 255, 255))
            label = f"{length:g} {unit}"
            draw.text((x0, y1 - thick - pad // 3), label, font=font, anchor="ls", fill=(255, 255, 255),
                      stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
        return np.asarray(im)

    def close(self) -> None:
        self.plotter.close()
