"""3-D scenes, snapshots and movies, drawn the same way in the app's 3-D view and headless.

A :class:`Scene` says *what* is drawn: a grey-value volume (volume rendering with a window/level ramp
and a colour map), the classes of a segmentation as smooth surfaces (marching cubes per class, light
Taubin smoothing) in their colours, optional orthogonal slice planes, a scale bar in physical units and
a caption. A :class:`Timeline` says *how it moves*: tracks of segments (camera orbit, zoom, a sweeping
slice plane, a clipping plane, per-class opacity fades), each with an easing. :meth:`Timeline.state`
gives the view at a time ``t`` from ``t`` alone, so any frame can be previewed and a long movie rendered
in pieces. :class:`SceneRenderer` draws a state with pyvista (off-screen: VTK picks EGL or OSMesa, or
an X server when there is one); :func:`render_movie` streams frames to MP4 (H.264, yuv420p, through the
ffmpeg that ``imageio-ffmpeg`` ships), GIF or a folder of PNGs, and writes a JSON sidecar.

Geometry: world coordinates are physical, x along the volume's last axis, z along its first
(``origin + index * spacing``), so a 0.05 mm voxel is drawn 0.05 mm wide. The camera is orthographic,
so the scale bar is exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Labels, Volume
from .errors import InputError, ParameterError

AXES = {"x": 0, "y": 1, "z": 2}  # world axis index; the volume's (z, y, x) index is 2 - world axis
MAX_SIZE = 4096  # pixels per side (4K is 3840 x 2160)


class RenderError(RuntimeError):
    """No OpenGL could be found for off-screen rendering."""


NO_GL_HELP = ("3-D rendering needs OpenGL, and none could be started off-screen. Install Mesa's EGL or "
              "OSMesa libraries (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri, or libosmesa6), "
              "or run under an X server (xvfb-run -a damselfly ...).")


# ----------------------------------------------------------------------------------------- timeline

def _ease(name: str, p: float) -> float:
    p = min(1.0, max(0.0, p))
    if name == "linear":
        return p
    if name == "in":
        return p * p
    if name == "out":
        return 1.0 - (1.0 - p) ** 2
    return p * p * (3.0 - 2.0 * p)  # in_out (smoothstep)


EASINGS = ("linear", "in", "out", "in_out")
TRACKS = {  # track -> its parameters and their defaults (None: required)
    "orbit": {"degrees": 360.0, "axis": "z", "elevation": 20.0},
    "zoom": {"from": 1.0, "to": 1.5},
    "sweep": {"axis": "z", "from": 0.0, "to": 1.0},
    "clip": {"axis": "x", "from": 0.0, "to": 0.5},
    "opacity": {"class": None, "from": 1.0, "to": 0.0},
}


@dataclass
class Segment:
    """One piece of a track, from ``start`` to ``end`` seconds."""

    track: str
    start: float
    end: float
    ease: str = "in_out"
    params: dict = field(default_factory=dict)

    def progress(self, t: float) -> float:
        """Eased progress 0..1 at time t (0 before the segment, 1 after it)."""
        if self.end <= self.start:
            return 1.0 if t >= self.start else 0.0
        return _ease(self.ease, (t - self.start) / (self.end - self.start))

    def value(self, t: float) -> float:
        return self.params["from"] + (self.params["to"] - self.params["from"]) * self.progress(t)


@dataclass
class View:
    """Everything that changes over a movie, at one time."""

    azimuth: float = 0.0
    elevation: float = 20.0
    axis: str = "z"
    zoom: float = 1.0
    slices: dict = field(default_factory=dict)  # world axis -> fraction 0..1 through the volume
    clip: tuple | None = None  # (world axis, fraction): what lies below the fraction is cut away
    clip_facing: bool = False  # cut away the half nearer the camera instead, so the cut faces it
    opacity: dict = field(default_factory=dict)  # class name -> opacity factor


@dataclass
class Timeline:
    """Tracks of segments over ``seconds``; :meth:`state` is a pure function of time."""

    seconds: float
    segments: list[Segment]
    source: str | None = None

    def state(self, t: float) -> View:
        v = View()
        for s in sorted(self.segments, key=lambda s: s.start):
            if s.track == "orbit":
                if t >= s.start:
                    v.axis = s.params["axis"]
                    v.elevation = s.params["elevation"]
                v.azimuth += s.params["degrees"] * s.progress(t)
            elif t < s.start:
                continue
            elif s.track == "zoom":
                v.zoom = s.value(t)
            elif s.track == "sweep":
                if t <= s.end:  # a sweeping slice is shown while it sweeps
                    v.slices[s.params["axis"]] = s.value(t)
            elif s.track == "clip":
                v.clip = (s.params["axis"], s.value(t))
            elif s.track == "opacity":
                v.opacity[s.params["class"]] = s.value(t)
        return v

    def to_json(self) -> dict:
        return {"seconds": self.seconds,
                "tracks": [{"track": s.track, "start": s.start, "end": s.end, "ease": s.ease, **s.params}
                           for s in self.segments]}

    @classmethod
    def from_json(cls, doc, source: str | None = None) -> Timeline:
        """A timeline from its JSON form (``{"seconds": 8, "tracks": [{"track": "orbit", "start": 0,
        "end": 8, "degrees": 360}, ...]}``); errors name the file and the segment."""
        if not isinstance(doc, dict) or not isinstance(doc.get("tracks"), list):
            raise InputError('a timeline is a JSON object with a "tracks" list', source)
        segments = []
        for i, item in enumerate(doc["tracks"]):
            where = f"tracks[{i}]"
            if not isinstance(item, dict) or item.get("track") not in TRACKS:
                raise InputError(f"{where}: \"track\" must be one of {', '.join(TRACKS)}", source)
            item = dict(item)
            track = item.pop("track")
            try:
                start = float(item.pop("start", 0.0))
                end = float(item.pop("end", doc.get("seconds", start)))
            except (TypeError, ValueError):
                raise InputError(f"{where}: start and end are seconds (numbers)", source) from None
            ease = item.pop("ease", "in_out" if track != "orbit" else "linear")
            if ease not in EASINGS:
                raise InputError(f"{where}: ease must be one of {', '.join(EASINGS)}, got {ease!r}", source)
            params = {}
            for key, default in TRACKS[track].items():
                val = item.pop(key, default)
                if val is None:
                    raise InputError(f"{where}: a {track} segment needs \"{key}\"", source)
                if key in ("axis",) and val not in AXES:
                    raise InputError(f"{where}: axis must be x, y or z, got {val!r}", source)
                if key not in ("axis", "class"):
                    try:
                        val = float(val)
                    except (TypeError, ValueError):
                        raise InputError(f"{where}: {key} must be a number, got {val!r}", source) from None
                params[key] = val
            if item:
                raise InputError(f"{where}: unknown key(s) {', '.join(item)} for a {track} segment "
                                 f"(allowed: start, end, ease, {', '.join(TRACKS[track])})", source)
            if end < start or start < 0:
                raise InputError(f"{where}: needs 0 <= start <= end, got {start}..{end}", source)
            segments.append(Segment(track, start, end, ease, params))
        seconds = float(doc.get("seconds", max((s.end for s in segments), default=0.0)))
        if not seconds > 0:
            raise InputError("the timeline lasts no time: give \"seconds\" or segments that end after 0", source)
        return cls(seconds, segments, source)

    @classmethod
    def read(cls, path) -> Timeline:
        try:
            doc = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError("no such timeline file", path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"not valid JSON: {e}", path) from None
        return cls.from_json(doc, str(path))


def simple_timeline(seconds: float = 6.0, orbit: float = 360.0, elevation: float = 20.0, axis: str = "z",
                    zoom: float = 1.0, sweep: str | None = None, clip: str | None = None,
                    fade: dict | None = None) -> Timeline:
    """The common movies from plain arguments: an orbit over the whole movie, a zoom to ``zoom``, a slice
    sweeping along ``sweep``, a clipping plane along ``clip`` opening to the middle over the first half and
    holding, and opacity fades ``{class: to}`` over the second half."""
    if not seconds > 0:
        raise ParameterError(f"seconds must be positive, got {seconds}")
    segs = [Segment("orbit", 0.0, seconds, "linear", {"degrees": float(orbit), "axis": axis,
                                                       "elevation": float(elevation)})]
    if zoom != 1.0:
        segs.append(Segment("zoom", 0.0, seconds, "in_out", {"from": 1.0, "to": float(zoom)}))
    if sweep:
        segs.append(Segment("sweep", 0.0, seconds, "linear", {"axis": sweep, "from": 0.0, "to": 1.0}))
    if clip:
        segs.append(Segment("clip", 0.0, seconds / 2, "in_out", {"axis": clip, "from": 0.0, "to": 0.5}))
    for name, to in (fade or {}).items():
        segs.append(Segment("opacity", seconds / 2, seconds, "in_out", {"class": name, "from": 1.0,
                                                                          "to": float(to)}))
    return Timeline(float(seconds), segs)


# -------------------------------------------------------------------------------------------- scene

@dataclass
class Scene:
    """What is drawn. ``volume`` is volume-rendered; ``labels`` become surfaces (classes named in
    ``classes``, default: every class but the background, i.e. the one covering most of the image
    border); ``opacity`` per shown class (default: 0.25 for classes filling more than a tenth of the
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

    def __post_init__(self):
        if self.volume is None and self.labels is None:
            raise ParameterError("a scene needs a volume or labels to draw")
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
                d = np.asarray(self.labels.data)
                frac = np.bincount(d[::2, ::2, ::2].ravel(), minlength=len(self.labels.classes) + 1)
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
        d = np.asarray(lab.data)
        border = np.concatenate([d[[0, -1]].ravel(), d[:, [0, -1]].ravel(), d[:, :, [0, -1]].ravel()])
        counts = np.bincount(border, minlength=len(lab.classes) + 1)
        background = int(np.argmax(counts[1:]) + 1) if len(lab.classes) > 1 else -1
        return [c.name for c in lab.classes if c.index != background]

    def hashes(self) -> dict:
        out = {}
        for key in ("volume", "labels"):
            obj = getattr(self, key)
            if obj is not None:
                out[key] = {"name": obj.name, "source": str(obj.source) if obj.source else None,
                            "sha256": obj.hash()}
        return out


def _grid(vol: Volume, data: np.ndarray):
    import pyvista as pv

    nz, ny, nx = data.shape
    g = pv.ImageData(dimensions=(nx, ny, nz), spacing=tuple(float(s) for s in vol.spacing[::-1]),
                     origin=tuple(float(o) for o in vol.origin[::-1]))
    g.point_data["values"] = np.ascontiguousarray(data).ravel(order="C")
    return g


def class_surface(labels: Labels, name: str, smooth: int = 15):
    """The surface of one class: marching cubes on its mask (padded so it closes at the image border),
    in world coordinates, lightly smoothed (Taubin, which does not shrink)."""
    import pyvista as pv
    from skimage.measure import marching_cubes

    mask = np.pad(np.asarray(labels.data) == labels.class_index(name), 1)
    if not mask.any():
        return None
    verts, faces, _, _ = marching_cubes(mask.astype(np.float32), 0.5, spacing=tuple(labels.spacing),
                                        allow_degenerate=False)
    verts = (verts - np.asarray(labels.spacing)) + np.asarray(labels.origin)  # undo the padding
    faces = np.hstack([np.full((len(faces), 1), 3), faces]).astype(np.int64).ravel()
    mesh = pv.PolyData(np.ascontiguousarray(verts[:, ::-1]), faces)  # (z, y, x) -> world (x, y, z)
    if smooth:
        mesh = mesh.smooth_taubin(n_iter=smooth, pass_band=0.1)
    return mesh.compute_normals(auto_orient_normals=False, split_vertices=False)


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


class SceneRenderer:
    """Draws a :class:`Scene` for any :class:`View`: the actors are made once, a view only moves the
    camera, planes and opacities. ``plotter`` may be given (the app's Qt widget); by default an
    off-screen one of ``size`` (width, height) pixels."""

    def __init__(self, scene: Scene, size=(1280, 720), plotter=None):
        import pyvista as pv

        w, h = (int(v) for v in size)
        if not (16 <= w <= MAX_SIZE and 16 <= h <= MAX_SIZE):
            raise ParameterError(f"size must be 16..{MAX_SIZE} pixels a side, got {w} x {h}")
        self.scene = scene
        self.size = (w + w % 2, h + h % 2)  # even, as H.264 in yuv420p needs
        try:
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
        if scene.volume is not None:
            data = np.asarray(scene.volume.data, dtype=np.float32)
            if scene.window is not None:
                lo, hi = scene.window
            else:
                lo, hi = (float(v) for v in np.percentile(data[::2, ::2, ::2], [0.5, 99.5]))
            self.window = (lo, hi if hi > lo else lo + 1.0)
            self.grid = _grid(scene.volume, data)
            op = np.array([0.0, 0.0, 0.15, 0.5, 1.0]) * scene.volume_opacity
            actor = p.add_volume(self.grid, scalars="values", cmap=scene.cmap, clim=self.window,
                                 opacity=op, show_scalar_bar=False, shade=False)
            self.mappers.append(actor.GetMapper())
        self.slice_actors = {}
        if scene.labels is not None:
            shown = scene.shown_classes()
            opac = scene.opacity or [1.0] * len(shown)
            for name, o in zip(shown, opac, strict=True):
                mesh = class_surface(scene.labels, name)
                if mesh is None:
                    continue
                color = next(c.color for c in scene.labels.classes if c.name == name)
                actor = p.add_mesh(mesh, color=[v / 255 for v in color[:3]], opacity=float(o),
                                   smooth_shading=True, specular=0.3, show_scalar_bar=False)
                self.class_actors[name] = actor
                self.base_opacity[name] = float(o)
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
        self.apply(view or View())
        try:
            self.plotter.render()
            img = self.plotter.screenshot(return_img=True)
        except Exception as e:
            raise RenderError(f"{NO_GL_HELP} ({e})") from e
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
            unit = sc.geometry.unit or "units"
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


# ------------------------------------------------------------------------------------------- movies

def movie_kind(path) -> str:
    name = str(path).lower()
    if name.endswith(".mp4"):
        return "mp4"
    if name.endswith(".gif"):
        return "gif"
    if Path(name).suffix == "":
        return "png"
    raise ParameterError(f"a movie is .mp4, .gif or a folder name (for PNG frames), got {path}")


class _GifWriter:
    """Writes an animated GIF frame by frame, with one palette for the whole movie (made from a few
    frames sampled over the timeline), so memory does not grow with the movie's length. Pillow's own
    multi-frame writer keeps every frame until it closes, so its per-frame encoder is used instead."""

    def __init__(self, path: Path, fps: float, samples: list[np.ndarray]):
        from PIL import Image

        montage = Image.fromarray(np.concatenate([s[::2, ::2] for s in samples], axis=0))
        self.palette = montage.quantize(255, method=Image.Quantize.MEDIANCUT)
        self.duration = 1000.0 / fps
        self.file = open(path, "wb")
        self.count = 0

    def send(self, img: np.ndarray) -> None:
        from PIL import GifImagePlugin, Image

        frame = Image.fromarray(img).quantize(palette=self.palette, dither=Image.Dither.FLOYDSTEINBERG)
        if self.count == 0:
            header, _ = GifImagePlugin.getheader(frame, info={"loop": 0})
            self.file.write(b"".join(header))
        # GIF delays are in 1/100 s: spread the rounding so the movie keeps its length
        ms = round((self.count + 1) * self.duration / 10) * 10 - round(self.count * self.duration / 10) * 10
        self.file.write(b"".join(GifImagePlugin.getdata(frame, duration=ms)))
        self.count += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.write(b";")
            self.file.close()


def _frame_writer(path: Path, kind: str, size, fps: float, quality: int, palette=None):
    """A writer that takes frames one at a time and writes them as they come: (handle, send)."""
    if kind == "mp4":
        import imageio_ffmpeg

        gen = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", quality=quality,
                                          pix_fmt_out="yuv420p", macro_block_size=2,
                                          output_params=["-movflags", "+faststart"],
                                          ffmpeg_log_level="error")
        gen.send(None)
        return gen, lambda img: gen.send(np.ascontiguousarray(img))

    if kind == "gif":
        writer = _GifWriter(path, fps, palette)
        return writer, writer.send
    raise AssertionError(kind)


def render_movie(scene: Scene, timeline: Timeline, path, fps: float = 30, size=(1280, 720),
                 quality: int = 8, frames: tuple[int, int] | None = None, overwrite: bool = True,
                 on_frame: Callable[[int, int], None] | None = None, renderer: SceneRenderer | None = None,
                 ) -> dict:
    """Render ``timeline`` over ``scene`` to ``path`` (.mp4, .gif, or a folder of PNG frames), streaming
    frames to the encoder; ``frames=(a, b)`` renders only frames a..b-1 (PNG folders: frames already
    there are kept, so a stopped render resumes). Writes ``<path>.json`` beside it (timeline, input
    hashes, versions). Returns that sidecar's content."""
    from . import io

    if not 1 <= fps <= 240:
        raise ParameterError(f"fps must be 1..240, got {fps}")
    if not 1 <= quality <= 10:
        raise ParameterError(f"quality must be 1..10, got {quality}")
    path = Path(path)
    kind = movie_kind(path)
    n = max(1, int(round(timeline.seconds * fps)))
    a, b = frames if frames is not None else (0, n)
    if not 0 <= a < b <= n:
        raise ParameterError(f"frames must be a range within 0..{n}, got {a}..{b}")
    if frames is not None and kind != "png":
        raise ParameterError("rendering a part of a movie (frames=...) needs a PNG folder as output; "
                             "encode the folder afterwards")
    own = renderer is None
    r = renderer or SceneRenderer(scene, size)
    try:
        if kind == "png":
            path.mkdir(parents=True, exist_ok=True)
            import imageio.v2 as imageio

            for i in range(a, b):
                dest = path / f"frame_{i:05d}.png"
                if not dest.exists():
                    img = r.render(timeline.state(i / fps))
                    with io.atomic_path(dest) as tmp:
                        imageio.imwrite(tmp, img, format="png")
                if on_frame:
                    on_frame(i - a + 1, b - a)
        else:
            with io.atomic_path(path, overwrite=overwrite) as tmp:
                samples = None
                if kind == "gif":  # one palette for all frames, from frames spread over the timeline
                    samples = [r.render(timeline.state(timeline.seconds * k / 4)) for k in range(5)]
                handle, send = _frame_writer(tmp, kind, r.size, fps, quality, samples)
                try:
                    for i in range(a, b):
                        send(r.render(timeline.state(i / fps)))
                        if on_frame:
                            on_frame(i - a + 1, b - a)
                finally:
                    handle.close()
        meta = sidecar(scene, timeline, fps, r.size, n, kind, quality)
        side = path.with_name(path.name + ".json")
        with io.atomic_path(side) as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        return meta
    finally:
        if own:
            r.close()


def sidecar(scene: Scene, timeline: Timeline, fps, size, frames: int, kind: str, quality: int) -> dict:
    import pyvista
    import vtk

    from .model import versions

    return {"format": kind, "frames": frames, "fps": fps, "size": list(size), "quality": quality,
            "timeline": timeline.to_json(), "timeline_file": timeline.source, "inputs": scene.hashes(),
            "scene": {"classes": scene.shown_classes(), "opacity": scene.opacity, "window": scene.window,
                      "cmap": scene.cmap, "volume_opacity": scene.volume_opacity, "slices": list(scene.slices), "caption": scene.caption},
            "versions": {**versions(), "vtk": vtk.vtkVersion.GetVTKVersion(), "pyvista": pyvista.__version__}}
