"""Rendering: timelines, frames read back from real movie files, colours, determinism, sidecars, actions."""

import json
from functools import partial

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest

from damselfly.engine import InputError, Labels, ParameterError, Volume, make_classes
from damselfly.engine.actions import render as render_actions
from damselfly.engine.core.context import RunContext
from damselfly.engine.render import _movie as M
from damselfly.engine.render import _scene as R
from damselfly.engine.render import _surfaces as surfaces

snapshot_action = partial(render_actions.snapshot, ctx=RunContext())
movie_action = partial(render_actions.render_movie, ctx=RunContext())


@pytest.fixture(scope="module")
def part():
    """A 40^3 'casting': a metal block with two red pores, grey values to match, 0.1 mm voxels."""
    zz, yy, xx = np.mgrid[:40, :40, :40]
    lab = np.ones((40, 40, 40), np.uint8)  # air
    lab[6:34, 8:32, 8:32] = 2  # metal
    for c, r in (((20, 20, 20), 6), ((12, 14, 25), 3)):
        lab[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r] = 3
    classes = make_classes(["air", "metal", "pore"], [(40, 40, 40), (170, 170, 190), (230, 40, 30)])
    labels = Labels(lab, spacing=(0.1, 0.1, 0.1), unit="mm", classes=classes, name="seg")
    grey = Volume(np.where(lab == 2, 200.0, 20.0).astype(np.float32), spacing=(0.1, 0.1, 0.1), unit="mm",
                  name="scan")
    return grey, labels


def reddish(img):
    img = img.astype(int)
    return int(np.count_nonzero((img[..., 0] > 120) & (img[..., 0] > 2 * img[..., 1]) & (img[..., 0] > 2 * img[..., 2])))


def test_timeline_state_depends_on_time_alone():
    tl = R.simple_timeline(seconds=4, orbit=360, zoom=2.0, sweep="z", clip="x", fade={"pore": 0.0})
    later_first = [tl.state(t) for t in (3.0, 1.0, 2.0)]
    assert tl.state(1.0) == later_first[1] and tl.state(3.0) == later_first[0]
    assert tl.state(2.0).azimuth == pytest.approx(180.0)  # linear orbit
    assert tl.state(0.0).zoom == 1.0 and tl.state(4.0).zoom == pytest.approx(2.0)
    assert tl.state(1.0).clip[0] == "x" and tl.state(2.0).clip[1] == pytest.approx(0.5)
    assert tl.state(4.0).opacity["pore"] == pytest.approx(0.0) and tl.state(1.0).opacity == {}
    assert tl.state(1.0).slices["z"] == pytest.approx(0.25)
    assert R._ease("in_out", 0.5) == 0.5 and R._ease("in", 0.5) == 0.25 and R._ease("out", 0.5) == 0.75


def test_timeline_files_round_trip_and_errors_name_the_file(tmp_path):
    tl = R.simple_timeline(seconds=3, orbit=90, clip="y")
    again = R.Timeline.from_json(json.loads(json.dumps(tl.to_json())))
    assert [again.state(t) for t in (0, 1.5, 3)] == [tl.state(t) for t in (0, 1.5, 3)]
    bad = tmp_path / "bad.json"
    bad.write_text('{"tracks": [{"track": "spin", "start": 0, "end": 1}]}')
    with pytest.raises(InputError, match="bad.json.*track.*orbit, zoom"):
        R.Timeline.read(bad)
    bad.write_text('{"tracks": [{"track": "orbit", "end": 2, "degres": 90}]}')
    with pytest.raises(InputError, match="unknown key.*degres"):
        R.Timeline.read(bad)
    bad.write_text('{"tracks": [{"track": "opacity", "end": 2}]}')
    with pytest.raises(InputError, match='needs "class"'):
        R.Timeline.read(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        R.Timeline.read(bad)


def test_mp4_has_the_frames_size_and_fps_asked_and_the_class_colours(part, tmp_path):
    grey, labels = part
    scene = R.Scene(volume=grey, labels=labels, opacity=[0.1, 1.0], caption="part — pores")
    assert scene.shown_classes() == ["metal", "pore"]  # air covers the border: the background
    tl = R.simple_timeline(seconds=1.0, orbit=90, fade={"pore": 0.0})
    path = tmp_path / "m.mp4"
    meta = M.render_movie(scene, tl, path, fps=12, size=(161, 121))
    nframes, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert nframes == 12 == meta["frames"]
    reader = imageio_ffmpeg.read_frames(str(path))
    info = reader.__next__()
    assert tuple(info["size"]) == (162, 122) and info["fps"] == pytest.approx(12)  # rounded up to even
    frames = [np.frombuffer(f, np.uint8).reshape(122, 162, 3) for f in reader]
    assert len(frames) == 12
    assert all(f.std() > 10 for f in frames)  # not blank
    assert reddish(frames[0]) > 20  # the pores are red where they are visible
    assert reddish(frames[-1]) < reddish(frames[0]) / 4  # and fade out with their track
    side = json.loads((tmp_path / "m.mp4.json").read_text())
    assert side["inputs"]["labels"]["sha256"] == labels.hash() and side["fps"] == 12
    assert side["timeline"]["tracks"][0]["track"] == "orbit" and "vtk" in side["versions"]


def test_two_renders_give_the_same_frames_and_a_clip_opens_the_part(part):
    grey, labels = part
    scene = R.Scene(volume=grey, labels=labels, opacity=[1.0, 1.0])
    a = R.SceneRenderer(scene, (160, 120))
    b = R.SceneRenderer(scene, (160, 120))
    view = R.View(azimuth=40, elevation=30)
    fa, fb = a.render(view), b.render(view)
    assert np.abs(fa.astype(int) - fb.astype(int)).max() <= 2
    assert reddish(fa) == 0  # the opaque metal hides the pores
    assert reddish(a.render(R.View(azimuth=40, elevation=30, clip=("y", 0.5)))) == 0  # cut face turned away
    opened = a.render(R.View(azimuth=40, elevation=30, clip=("y", 0.5), clip_facing=True))
    assert reddish(opened) > 20  # cutting it open shows them
    a.close()
    b.close()


def test_png_folder_renders_pieces_and_resumes(part, tmp_path):
    _, labels = part
    scene = R.Scene(labels=labels, scale_bar=False)
    tl = R.simple_timeline(seconds=1.0, orbit=180)
    out = tmp_path / "frames"
    M.render_movie(scene, tl, out, fps=6, size=(64, 48), frames=(0, 3))
    assert sorted(p.name for p in out.glob("*.png")) == [f"frame_{i:05d}.png" for i in range(3)]
    first = (out / "frame_00000.png").stat().st_mtime_ns
    M.render_movie(scene, tl, out, fps=6, size=(64, 48))  # the rest; frames already there are kept
    assert len(list(out.glob("*.png"))) == 6 and (out / "frame_00000.png").stat().st_mtime_ns == first
    whole = R.SceneRenderer(scene, (64, 48)).render(tl.state(4 / 6))
    np.testing.assert_allclose(imageio.imread(out / "frame_00004.png"), whole, atol=2)
    with pytest.raises(ParameterError, match="PNG folder"):
        M.render_movie(scene, tl, tmp_path / "x.mp4", fps=6, frames=(0, 2))


def test_gif_and_scale_bar_fonts_follow_resolution(part, tmp_path):
    _, labels = part
    scene = R.Scene(labels=labels, caption="pores")
    M.render_movie(scene, R.simple_timeline(seconds=1.0, orbit=90), tmp_path / "m.gif", fps=8, size=(96, 64))
    from PIL import Image

    with Image.open(tmp_path / "m.gif") as gif:  # streamed frame by frame, with one palette
        assert gif.n_frames == 8 and gif.info["loop"] == 0
        durations = []
        for k in range(gif.n_frames):
            gif.seek(k)
            durations.append(gif.info["duration"])
            frame = np.asarray(gif.convert("RGB"))
            assert frame.shape == (64, 96, 3) and reddish(frame) > 5 and frame.std() > 10
        assert sum(durations) == 1000  # 125 ms frames, rounded to GIF's 1/100 s without drift
    small = R.SceneRenderer(scene, (640, 360)).render()
    big = R.SceneRenderer(scene, (1280, 720)).render()

    def white_rows(img):  # rows of the bottom-left corner holding white text/bar pixels
        corner = img[img.shape[0] * 3 // 4:, : img.shape[1] // 3]
        return int(np.count_nonzero((corner > 230).all(axis=2).any(axis=1)))

    assert white_rows(big) >= 1.6 * white_rows(small) > 0


def test_actions_write_files_and_check_their_arguments(part, tmp_path):
    grey, labels = part
    snap = tmp_path / "snap.png"
    snapshot_action(grey, str(snap), labels=labels, size=[200, 150], clip="y", caption="x")
    img = imageio.imread(snap)
    assert img.shape[:2] == (150, 200) and reddish(img) > 10
    movie_action(labels, str(tmp_path / "o.mp4"), seconds=0.5, fps=4, size=[64, 64])
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "o.mp4"))[0] == 2
    with pytest.raises(ParameterError, match=r"\.png"):
        snapshot_action(grey, str(tmp_path / "s.jpg"))
    with pytest.raises(InputError, match="unknown class 'pores'"):
        movie_action(grey, str(tmp_path / "f.mp4"), labels=labels, fade=["pores"], seconds=0.5, fps=2)
    with pytest.raises(ParameterError, match="opacity has 1 value"):
        snapshot_action(grey, str(tmp_path / "s.png"), labels=labels, opacity=[0.5])
    with pytest.raises(ParameterError, match=".mp4, .gif or a folder"):
        movie_action(grey, str(tmp_path / "m.avi"))
    assert not (tmp_path / "f.mp4").exists() and not (tmp_path / "m.avi").exists()


def test_snapshot_puts_slice_planes_where_asked(part, tmp_path):
    grey, _ = part
    shots = []
    for f in (0.2, 0.8):
        snapshot_action(grey, str(tmp_path / f"p{f}.png"), slices=["y"], positions=[f], size=[96, 72],
                        scale_bar=False)
        shots.append(imageio.imread(tmp_path / f"p{f}.png").astype(int))
    assert np.abs(shots[0] - shots[1]).mean() > 1.0  # the plane moved
    with pytest.raises(ParameterError, match="one fraction per slice"):
        snapshot_action(grey, str(tmp_path / "x.png"), slices=["y"], positions=[0.2, 0.3])
    with pytest.raises(ParameterError, match="fractions 0..1"):
        snapshot_action(grey, str(tmp_path / "x.png"), slices=["y"], positions=[1.5])


def test_no_opengl_gives_a_clear_error(part, monkeypatch):
    import pyvista

    def broken(*a, **k):
        raise RuntimeError("Could not create an OpenGL context")

    monkeypatch.setattr(pyvista, "Plotter", broken)
    with pytest.raises(R.RenderError, match="apt-get install libegl1"):
        R.SceneRenderer(R.Scene(labels=part[1]), (64, 64))


def test_stop_leaves_no_half_written_movie(part, tmp_path):
    from damselfly.engine import Cancelled
    from damselfly.engine.core import progress

    _, labels = part
    seen = []

    def on_progress(ev):
        seen.append(ev.done)
        if ev.done >= 2:
            rep.cancel()

    rep = progress.Reporter(on_progress, interval=0)
    old = tmp_path / "o.mp4"
    old.write_bytes(b"an earlier movie")
    with progress.reporting(rep), pytest.raises(Cancelled):
        movie_action(labels, str(old), seconds=2, fps=5, size=[64, 64])
    assert 2 <= max(seen) < 10
    assert old.read_bytes() == b"an earlier movie"  # the old file is kept whole, no temp files left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


def test_two_runs_of_the_same_macro_give_the_same_movie(part, tmp_path):
    from damselfly.engine.io import _files as io
    from damselfly.macros.runner import run_file

    grey, labels = part
    io.write_volume(grey, tmp_path / "scan.tif")
    io.write_volume(labels, tmp_path / "seg.tif")
    macro = tmp_path / "movie.dfm"
    macro.write_text('version 1\nparam scan = "scan.tif"\nraw = load(scan)\nseg = load_labels("seg.tif")\n'
                     'render_movie(raw, "{scan.stem}.mp4", labels=seg, seconds=1, fps=6, size=[96, 64], '
                     'clip="x", fade=["pore"], caption="{scan.stem}")\n')
    runs = []
    for k in range(2):
        result = run_file(macro, out_dir=tmp_path / f"out{k}")
        assert result.status == "ok"
        reader = imageio_ffmpeg.read_frames(str(tmp_path / f"out{k}" / "scan.mp4"))
        next(reader)
        runs.append(np.stack([np.frombuffer(f, np.uint8) for f in reader]).astype(int))
    assert runs[0].shape[0] == 6
    assert np.abs(runs[0] - runs[1]).max() <= 2


def test_scenes_are_drawn_at_the_frames_level_of_detail(part):
    grey, labels = part
    big = grey.with_data(np.repeat(np.asarray(grey.data), 3, axis=0))  # taller than a small frame shows
    lab = labels.with_data(np.repeat(np.asarray(labels.data), 3, axis=0))
    scene = R.Scene(volume=big, labels=lab)
    lod = R.level_of_detail(scene, (48, 36))
    step = int(np.ceil(max(big.shape) / 36))
    assert step > 1 and lod.volume.shape == tuple(len(range(0, s, step)) for s in big.shape)
    assert lod.volume.spacing == tuple(s * step for s in big.spacing) and lod.labels.shape == lod.volume.shape
    assert np.array_equal(np.asarray(lod.labels.data), np.asarray(lab.data)[::step, ::step, ::step])
    assert R.level_of_detail(scene, (1280, 720)) is scene  # small enough: drawn as it is
    r = R.SceneRenderer(scene, (48, 36))
    try:
        assert r.scene.volume.shape == lod.volume.shape and r.render().shape == (36, 48, 3)
    finally:
        r.close()


def test_level_of_detail_reads_a_coarser_ome_zarr_level(tmp_path):
    from damselfly.engine.io import _files as io

    rng = np.random.default_rng(2)
    vol = Volume(rng.integers(0, 1000, (40, 160, 160)).astype(np.uint16), spacing=(0.5, 0.5, 0.5), unit="um")
    io.write_volume(vol, tmp_path / "p.zarr")  # levels: 160, 80, 40 across
    full = io.read_volume(tmp_path / "p.zarr")
    assert full.metadata["pyramid"] == {"levels": 3, "level": 0}
    lod = R.level_of_detail(R.Scene(volume=full), (64, 40))  # 160 / 40: every 4th voxel = level 2
    level2 = io.read_volume(tmp_path / "p.zarr", level=2)
    assert lod.volume.shape == level2.shape and lod.volume.spacing == level2.spacing
    assert np.array_equal(np.asarray(lod.volume.data), np.asarray(level2.data[:]))


def test_big_or_speckled_masks_give_coarser_decimated_surfaces_and_volumes_stay_within_budget(part, monkeypatch):
    grey, labels = part
    monkeypatch.setattr(R, "VOLUME_VOXELS", 30 ** 3)
    assert np.prod(R.level_of_detail(R.Scene(volume=grey), (1280, 720)).volume.shape) <= 30 ** 3
    full = R.class_surface(labels, "metal")
    monkeypatch.setattr(surfaces, "MAX_TRIANGLES", full.n_cells // 4)
    fewer = R.class_surface(labels, "metal")
    assert fewer.n_cells <= full.n_cells // 4 * 1.05
    assert np.allclose(fewer.bounds, full.bounds, atol=2 * max(labels.spacing))
    monkeypatch.setattr(surfaces, "SURFACE_VOXELS", 20 ** 3)  # 40^3: blocks of 2^3, the same box within a voxel
    assert R.surface_step(np.asarray(labels.data) == 2) == 2
    coarse = R.class_surface(labels, "metal")
    assert np.allclose(coarse.bounds, full.bounds, atol=1.5 * max(labels.spacing))
    monkeypatch.setattr(surfaces, "SURFACE_VOXELS", 2 ** 30)
    speckle = np.random.default_rng(0).random((40, 40, 40)) < 0.3  # a noisy threshold's specks
    assert R.surface_step(speckle) > 1  # far more faces than the triangle budget allows


def test_a_layer_the_renderer_cannot_draw_is_an_error(part, monkeypatch):
    """VTK only logs when it cannot allocate a volume texture; the frame would lack the grey volume."""
    import vtk

    grey, _ = part
    r = R.SceneRenderer(R.Scene(volume=grey), (48, 36))
    try:
        real = r.plotter.render

        def failing():
            real()
            vtk.vtkOutputWindow.GetInstance().DisplayErrorText(
                "ERROR: In vtkTextureObject.cxx, line 440\nvtkTextureObject (0x1): proxy texture 3D allocation failed\n")

        monkeypatch.setattr(r.plotter, "render", failing)
        with pytest.raises(R.RenderError, match="allocation failed"):
            r.render()
    finally:
        r.close()


def test_reading_a_level_of_detail_reports_progress_and_stops():
    from damselfly.engine import Cancelled
    from damselfly.engine.core import progress

    a = np.arange(5 * 7 * 9 * 2).reshape(5, 7, 9, 2)
    for step in (1, 2, 3):
        assert np.array_equal(R._strided(a, step, "reading", planes=2), a[::step, ::step, ::step])
    seen = []
    rep = progress.Reporter(lambda ev: seen.append(ev.message), interval=0)
    with progress.reporting(rep):
        R._strided(a, 1, "Reading pyramid level 1", planes=2)
        rep.cancel()
        with pytest.raises(Cancelled):
            R._strided(a, 1, "Reading pyramid level 1", planes=2)
    assert "Reading pyramid level 1" in seen


def test_headless_rendering_prints_no_x_server_warning():
    """Without a display VTK draws with EGL at once: no coloured "bad X server connection" line in a
    command line's output (issue 30)."""
    import os
    import subprocess
    import sys

    code = ("from damselfly.engine import phantoms\nfrom damselfly.engine.render import _scene as R\n"
            "v, t = phantoms.casting((24, 24, 24))\n"
            "print(R.SceneRenderer(R.Scene(volume=v, labels=t), (32, 32)).render().shape)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "VTK_DEFAULT_OPENGL_WINDOW")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "(32, 32, 3)" in r.stdout and "X server" not in r.stderr and "\x1b[" not in r.stderr
