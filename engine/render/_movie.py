"""Movies: frames of a :class:`~damselfly.engine.render._scene.SceneRenderer` along a
:class:`~damselfly.engine.render._timeline.Timeline`, streamed to MP4 (H.264, yuv420p, through the ffmpeg that
``imageio-ffmpeg`` ships), GIF (one palette, frame by frame) or a folder of PNGs (resumable), written
atomically, with a JSON sidecar (timeline, input hashes, versions).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.errors import ParameterError
from ._scene import Scene, SceneRenderer
from ._timeline import Timeline


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
    from ..io import _files as io

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
    """What a movie's JSON sidecar holds: format, timeline, input hashes, scene settings, versions."""
    from ..core._provenance import versions

    return {"format": kind, "frames": frames, "fps": fps, "size": list(size), "quality": quality,
            "timeline": timeline.to_json(), "timeline_file": timeline.source, "inputs": scene.hashes(),
            "scene": {"classes": scene.shown_classes(), "opacity": scene.opacity, "window": scene.window,
                      "cmap": scene.cmap, "volume_opacity": scene.volume_opacity, "slices": list(scene.slices), "caption": scene.caption},
            "versions": versions("torch", "numpy", "vtk", "pyvista")}
