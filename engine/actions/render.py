"""Rendering actions: ``snapshot`` (a PNG) and ``render_movie`` (MP4, GIF or PNG frames), headless."""

from __future__ import annotations

from typing import Literal

from ..core import progress
from ..core.context import RunContext
from ..core.data import Labels, Table, Volume
from ..core.errors import ParameterError
from ..registry import InputPath, OutputPath, action

Axis = Literal["x", "y", "z"]


def _scene(volume: Volume | Labels, labels: Labels | None, classes, opacity, window, cmap, slices, caption,
           scale_bar, color_by=None, table=None):
    from ..render._scene import Scene

    if isinstance(volume, Labels):
        if labels is not None:
            raise ParameterError("give a grey volume first and the segmentation as labels=...")
        grey, labels = None, volume
    else:
        grey = volume
    if window is not None and (len(window) != 2 or not window[1] > window[0]):
        raise ParameterError(f"window is [low, high] grey values with low < high, got {window}")
    return Scene(volume=grey, labels=labels, classes=classes, opacity=opacity,
                 window=tuple(window) if window is not None else None, cmap=cmap, slices=tuple(slices or ()),
                 caption=caption, scale_bar=scale_bar, color_by=color_by, table=table)


@action("snapshot", category="Render", toolbar=6,
        roles={"labels": "shown_labels", "azimuth": "camera", "elevation": "camera", "zoom": "camera",
               "slices": "camera", "positions": "camera"})
def snapshot(volume: Volume | Labels, path: OutputPath, labels: Labels | None = None, classes: list[str] | None = None,
             opacity: list[float] | None = None, window: list[float] | None = None, cmap: str = "gray",
             slices: list[Axis] | None = None, azimuth: float = 30.0, elevation: float = 20.0, axis: Axis = "z",
             zoom: float = 1.0, clip: Axis | None = None, size: list[int] | None = None, caption: str = "",
             scale_bar: bool = True, positions: list[float] | None = None, color_by: str | None = None,
             table: Table | None = None, *, ctx: RunContext) -> None:
    """A PNG of the 3-D scene: the grey volume rendered (window/level ramp, colour map), the classes of a
    segmentation as smooth surfaces in their colours, optional slice planes, a scale bar and a caption.

    Parameters
    ----------
    volume : Volume or Labels
        The grey volume to render, or a segmentation alone (drawn as surfaces).
    path : path
        The PNG to write, relative to the run's output folder.
    labels : Labels, optional
        A segmentation drawn as surfaces over the grey volume.
    classes : list of str, optional
        Classes to draw (default: all but the background, the class covering most of the image border).
    opacity : list of float, optional
        Opacity per drawn class (default 0.25 for classes filling over a tenth of the volume, else 1).
    window : list of float, optional
        ``[low, high]`` grey values of the transfer ramp (default: 0.5 and 99.5 percentiles).
    cmap : str
        Colour map of the grey values (matplotlib name).
    slices : list of str, optional
        Axes (``"x"``, ``"y"``, ``"z"``) with a slice plane, through the middle unless ``positions`` says.
    positions : list of float, optional
        Where each slice plane lies along its axis, as a fraction 0..1 (one per entry of ``slices``).
    azimuth, elevation : float
        Camera angles in degrees around ``axis`` and above its equator.
    axis : {"x", "y", "z"}
        The axis the camera turns around (z: the scan axis).
    zoom : float
        Magnification (1: the whole volume fits).
    clip : {"x", "y", "z"}, optional
        Cut the scene in half along this axis to show the inside (the half nearer the camera goes).
    size : list of int, optional
        ``[width, height]`` in pixels (default 1280 x 720; up to 4096; odd sizes round up to even).
    caption : str
        Text at the top left (templates such as ``"{scan.stem} — pores"`` work in macros).
    scale_bar : bool
        Draw a scale bar in the volume's physical unit.
    color_by : str, optional
        Colour objects (``label_objects``, ``separate_objects``, ``filter_objects``) given as ``labels``:
        ``"id"`` (distinct colours) or a column of ``table`` such as ``"volume"`` (a colour bar with its
        unit). Objects the table does not list are not drawn: a filtered table or filtered objects show
        only what the filter kept.
    table : Table, optional
        The objects' measurements (``measure_objects``; measured here when not given).
    """
    from ..io._files import atomic_path
    from ..render._scene import SceneRenderer, View

    if not str(path).lower().endswith(".png"):
        raise ParameterError(f"a snapshot is a .png file, got {path}")
    task = progress.task(f"Rendering {path}", total=1)
    r = SceneRenderer(_scene(volume, labels, classes, opacity, window, cmap, slices, caption, scale_bar,
                             color_by, table), size or (1280, 720))
    try:
        if positions is not None and len(positions) != len(slices or []):
            raise ParameterError(f"positions needs one fraction per slice ({len(slices or [])}), got {positions}")
        if positions is not None and not all(0.0 <= f <= 1.0 for f in positions):
            raise ParameterError(f"positions are fractions 0..1, got {positions}")
        where = dict(zip(slices or [], positions or []))
        img = r.render(View(azimuth=azimuth, elevation=elevation, axis=axis, zoom=zoom, slices=where,
                            clip=(clip, 0.5) if clip else None, clip_facing=True))
    finally:
        r.close()
    import imageio.v2 as imageio

    with atomic_path(path, overwrite=ctx.may_replace(path)) as tmp:
        imageio.imwrite(tmp, img, format="png")
    task.finish()


@action("render_movie", category="Render", roles={"labels": "shown_labels"})
def render_movie(volume: Volume | Labels, path: OutputPath, labels: Labels | None = None, seconds: float = 6.0,
                 fps: int = 30, orbit: float = 360.0, elevation: float = 20.0, axis: Axis = "z", zoom: float = 1.0,
                 sweep: Axis | None = None, clip: Axis | None = None, fade: list[str] | None = None,
                 timeline: InputPath | None = None, classes: list[str] | None = None,
                 opacity: list[float] | None = None, window: list[float] | None = None, cmap: str = "gray",
                 slices: list[Axis] | None = None, size: list[int] | None = None, quality: int = 8,
                 frames: list[int] | None = None, caption: str = "", scale_bar: bool = True,
                 color_by: str | None = None, table: Table | None = None, *, ctx: RunContext) -> None:
    """A movie of the 3-D scene (see ``snapshot``): an orbit, and optionally a zoom, a sweeping slice, a
    clipping plane opening the inside and class fades; or any timeline from a JSON file. Frames depend on
    their time alone and stream to the encoder. A ``.json`` sidecar records the timeline, the inputs'
    hashes and the versions.

    Parameters
    ----------
    volume : Volume or Labels
        The grey volume to render, or a segmentation alone.
    path : path
        ``.mp4`` (H.264, yuv420p), ``.gif``, or a folder name for PNG frames.
    labels : Labels, optional
        A segmentation drawn as surfaces over the grey volume.
    seconds : float
        Length of the movie (a timeline file gives its own).
    fps : int
        Frames per second.
    orbit : float
        Degrees the camera turns around ``axis`` over the movie.
    elevation : float
        Camera elevation in degrees.
    axis : {"x", "y", "z"}
        The orbit's axis.
    zoom : float
        Magnification reached at the end (eased from 1).
    sweep : {"x", "y", "z"}, optional
        A slice plane sweeping through the volume along this axis.
    clip : {"x", "y", "z"}, optional
        A clipping plane along this axis that opens the scene to its middle over the first half.
    fade : list of str, optional
        Classes that fade out over the second half.
    timeline : path, optional
        A JSON timeline (tracks: orbit, zoom, sweep, clip, opacity; each segment with start, end and
        ease); replaces the plain arguments above.
    classes : list of str, optional
        Classes to draw (default: all but the background).
    opacity : list of float, optional
        Opacity per drawn class.
    window : list of float, optional
        ``[low, high]`` grey values of the transfer ramp.
    cmap : str
        Colour map of the grey values.
    slices : list of str, optional
        Axes with a fixed slice plane through the middle.
    size : list of int, optional
        ``[width, height]`` in pixels (default 1280 x 720, up to 4096; odd sizes round up to even).
    quality : int
        1 (smallest file) to 10 (best); MP4 only.
    frames : list of int, optional
        ``[first, end]``: render only these frames (PNG folders; frames already there are kept).
    caption : str
        Text at the top left.
    scale_bar : bool
        Draw a scale bar in physical units.
    color_by : str, optional
        Colour objects given as ``labels`` by ``"id"`` or a column of ``table`` (see ``snapshot``).
    table : Table, optional
        The objects' measurements (``measure_objects``; measured here when not given).
    """
    from ..render import _movie as movie
    from ..render._timeline import Timeline, simple_timeline

    if timeline is not None:
        tl = Timeline.read(timeline)
    else:
        tl = simple_timeline(seconds, orbit, elevation, axis, zoom, sweep, clip,
                               {name: 0.0 for name in fade or []})
    if frames is not None and len(frames) != 2:
        raise ParameterError(f"frames is [first, end], got {frames}")
    scene = _scene(volume, labels, classes, opacity, window, cmap, slices, caption, scale_bar, color_by, table)
    for seg in tl.segments:  # a fade of an unknown class is an error, not a silent no-op
        if seg.track == "opacity":
            if scene.labels is None:
                raise ParameterError("opacity fades need a segmentation (labels=...)")
            scene.labels.class_index(seg.params["class"])
    movie.movie_kind(path)
    task = progress.task(f"Rendering {path}", total=None)
    movie.render_movie(scene, tl, path, fps=fps, size=size or (1280, 720), quality=quality,
                       frames=(int(frames[0]), int(frames[1])) if frames else None, overwrite=ctx.may_replace(path),
                       on_frame=lambda i, n: _step(task, i, n))
    task.finish()


def _step(task, i, n):
    task.total = n
    task.advance(1)
