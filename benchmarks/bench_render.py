"""Rendering speed: seconds per frame of a 256^3 scan with three classes at 1280 x 720, on this machine.

The reference, measured in the same run, is VTK rendering the same actors with nothing of ours around
it (a bare ``plotter.render()`` + screenshot); the ratio shows what our per-frame work (camera, clip
plane, opacities, slice planes, scale bar and caption) costs on top.

    .venv/bin/python benchmarks/bench_render.py [size]
    .venv/bin/python benchmarks/bench_render.py memory   # peak memory vs movie length; a 4K movie

``memory`` renders the same scene into movies of 20 and 80 frames (MP4 and GIF), each in a fresh
process, and prints the ratio of their peak resident memory: streaming frames to the encoder keeps it
near 1.0 (a writer that kept the frames would need 4x the frame memory). It then writes a 3840 x 2160
MP4 and reads its size back.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(size: int = 256) -> None:
    from damselfly.engine.core import phantoms
    from damselfly.engine.render import _movie as M
    from damselfly.engine.render import _scene as R

    vol, truth = phantoms.casting((size,) * 3, seed=0)
    t0 = time.perf_counter()
    scene = R.Scene(volume=vol, labels=truth, classes=["air", "metal", "pore"], opacity=[0.1, 0.3, 1.0],
                    caption="casting — three classes")
    r = R.SceneRenderer(scene, (1280, 720))
    setup = time.perf_counter() - t0
    tl = R.simple_timeline(seconds=2, orbit=90, clip="x")
    r.render(tl.state(0))  # first frame: textures and shaders
    n = 10
    t0 = time.perf_counter()
    for i in range(n):
        r.render(tl.state(i * 0.2))
    ours = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        r.plotter.render()
        r.plotter.screenshot(return_img=True)
    bare = (time.perf_counter() - t0) / n
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        M.render_movie(scene, tl, Path(d) / "m.mp4", fps=5, renderer=r)
        movie = (time.perf_counter() - t0) / 10
    print(f"{size}^3 casting, 3 classes ({', '.join(scene.shown_classes())}), 1280 x 720:")
    print(f"  scene set-up (surfaces, volume upload): {setup:.1f} s")
    print(f"  per frame: {ours:.2f} s (ours) vs {bare:.2f} s (bare VTK render + screenshot) -> ratio {ours / bare:.2f}")
    print(f"  per frame into an MP4 (encoding included): {movie:.2f} s")
    r.close()


def one_movie(frames: int, path: str, width: int, height: int) -> None:
    """(child process) render ``frames`` frames of a 128^3 casting; print peak RSS in MiB."""
    from damselfly.engine.core import phantoms
    from damselfly.engine.render import _movie as M
    from damselfly.engine.render import _scene as R

    vol, truth = phantoms.casting((128,) * 3, seed=0)
    scene = R.Scene(volume=vol, labels=truth, caption="casting")
    t0 = time.perf_counter()
    M.render_movie(scene, R.simple_timeline(seconds=frames / 10, orbit=180), path, fps=10,
                   size=(width, height))
    secs = time.perf_counter() - t0
    print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": secs}))


def memory() -> None:
    import imageio_ffmpeg

    def run(frames, path, w=640, h=360):
        out = subprocess.run([sys.executable, __file__, "one", str(frames), str(path), str(w), str(h)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as d:
        for ext in ("mp4", "gif"):
            short = run(20, Path(d) / f"short.{ext}")
            long = run(80, Path(d) / f"long.{ext}")
            frame_mib = 640 * 360 * 3 / 2**20
            print(f"{ext.upper()} 640 x 360: peak {short['peak_mib']:.0f} MiB for 20 frames, "
                  f"{long['peak_mib']:.0f} MiB for 80 frames -> ratio {long['peak_mib'] / short['peak_mib']:.3f} "
                  f"(keeping the 60 extra frames would add {60 * frame_mib:.0f} MiB)")
        k4 = run(3, Path(d) / "k4.mp4", 3840, 2160)
        reader = imageio_ffmpeg.read_frames(str(Path(d) / "k4.mp4"))
        meta = next(reader)
        reader.close()
        print(f"4K MP4: {meta['size'][0]} x {meta['size'][1]}, 3 frames in {k4['seconds']:.1f} s "
              f"(scene set-up included), peak {k4['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "memory":
        memory()
    elif len(sys.argv) > 1 and sys.argv[1] == "one":
        one_movie(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
