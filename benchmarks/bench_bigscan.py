"""Two steps of big scans, each against the way it was done before, in the same run.

1. ``snapshot`` of a 256 x 768 x 768 uint16 memory-mapped scan at 1280 x 720, with the frame's level of
   detail (``render.level_of_detail``) and without it (the whole grid drawn): seconds and peak memory, each in
   a fresh process.
2. ``infer`` of 6 slices of 1024 x 1024 with the default model: the tile chosen from the slice size
   (``inference.auto_tile``: one tile per slice) against the old default tile of 512.

Usage: ``xvfb-run -a .venv/bin/python benchmarks/bench_bigscan.py [RUNS]`` (default 3 runs of each).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_scan(path: Path, shape=(256, 768, 768)) -> None:
    z, y, x = shape
    a = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=shape)
    yy, xx = np.mgrid[:y, :x]
    disc = np.hypot(yy - y / 2, xx - x / 2) < 0.4 * min(y, x)
    for k in range(z):
        a[k] = np.where(disc, 3000, 500) + np.random.default_rng(k).integers(0, 200, (y, x))
    a.flush()


def snapshot_child(scan: str, lod: str) -> None:
    from damselfly.engine.actions import render as actions
    from damselfly.engine.core.context import RunContext
    from damselfly.engine.io import _files as io
    from damselfly.engine.render import _scene as render

    if lod == "off":
        render.level_of_detail = lambda scene, size: scene
    vol = io.read_volume(scan, mmap=True)
    t0 = time.perf_counter()
    actions.snapshot(vol, str(Path(scan).with_suffix(f".{lod}.png")), size=[1280, 720], ctx=RunContext())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"{time.perf_counter() - t0:.2f} {peak:.3f}")


def infer_times(runs: int) -> list[tuple[float, float]]:
    from damselfly.engine import Volume
    from damselfly.engine.segmentation import _inference as inference
    from damselfly.engine.segmentation import _model as model_io

    model = model_io.load_model(ROOT / "examples" / "models" / "casting.dfmodel")
    vol = Volume(np.random.default_rng(0).random((6, 1024, 1024), dtype=np.float32))
    auto = inference.auto_tile(model, vol.shape, "cpu")
    out = []
    for _ in range(runs):
        times = []
        for tile in (512, auto):
            o = np.zeros(vol.shape, np.uint8)
            t0 = time.perf_counter()
            inference.segment(model, [vol], o, device="cpu", tile=tile)
            times.append(time.perf_counter() - t0)
        out.append(tuple(times))
    return out


def main(runs: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scan = Path(tmp) / "scan.npy"
        make_scan(scan)
        rows = {"on": [], "off": []}
        for _ in range(runs):
            for lod in ("on", "off"):
                r = subprocess.run([sys.executable, __file__, "--child", str(scan), lod], capture_output=True,
                                   text=True, check=True)
                rows[lod].append(tuple(float(v) for v in r.stdout.split()))
    print("snapshot of 256 x 768 x 768 uint16 at 1280 x 720 (seconds, peak GiB):")
    for lod, vals in rows.items():
        print(f"  level of detail {lod:3s}: " + ", ".join(f"{t:.1f} s / {m:.2f} GiB" for t, m in vals))
    ratios = [off[0] / on[0] for on, off in zip(rows["on"], rows["off"])]
    print(f"  speed-up {min(ratios):.2f}-{max(ratios):.2f}x")
    print("infer, 6 slices of 1024 x 1024, default model, CPU (tile 512 vs chosen):")
    times = infer_times(runs)
    for a, b in times:
        print(f"  tile 512 {a:.1f} s, chosen tile {b:.1f} s: {a / b:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        snapshot_child(sys.argv[2], sys.argv[3])
    else:
        main(*(int(a) for a in sys.argv[1:2]))
