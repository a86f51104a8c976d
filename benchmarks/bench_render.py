"""Rendering speed: seconds per frame of a 256^3 scan with three classes at 1280 x 720, on this machine.

The reference, measured in the same run, is VTK rendering the same actors with nothing of ours around
it (a bare ``plotter.render()`` + screenshot); the ratio shows what our per-frame work (camera, clip
plane, opacities, slice planes, scale bar and caption) costs on top.

    .venv/bin/python benchmarks/bench_render.py [size]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(size: int = 256) -> None:
    from engine import phantoms
    from engine import render as R

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
        R.render_movie(scene, tl, Path(d) / "m.mp4", fps=5, renderer=r)
        movie = (time.perf_counter() - t0) / 10
    print(f"{size}^3 casting, 3 classes ({', '.join(scene.shown_classes())}), 1280 x 720:")
    print(f"  scene set-up (surfaces, volume upload): {setup:.1f} s")
    print(f"  per frame: {ours:.2f} s (ours) vs {bare:.2f} s (bare VTK render + screenshot) -> ratio {ours / bare:.2f}")
    print(f"  per frame into an MP4 (encoding included): {movie:.2f} s")
    r.close()



if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
