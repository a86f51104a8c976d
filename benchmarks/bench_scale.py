"""How each step grows with the scan: a macro over an N^3 uint16 OME-Zarr phantom and over a 256^3 crop.

The phantom (a hollow cast part: a tube with a bore, pores of many sizes, beam-hardening cupping and
Poisson noise) is generated slab by slab, so making it needs no more memory than a slab, then written as
OME-Zarr with its pyramid. Each scan runs the macro below in a fresh process; a thread samples the
process's resident memory every 20 ms, so each statement gets its time and its peak memory (all of it,
and the anonymous part: the rest is file pages of memory maps, which the kernel can drop). Ratios
(full / crop) of time per voxel and of memory show how each step grows.

Then the app opens each scan (a fresh process, 1600 x 900 window): seconds until the first slice is
shown, until the 3-D view's quick draft and until its full detail are drawn, and the peak memory.

Usage: ``xvfb-run -a .venv/bin/python benchmarks/bench_scale.py [--size 1024] [--crop 256] [--work DIR]
[--reuse]``

``--part``: issue 36's solid cast part instead (512 x 1024 x 1024 uint16, a cylinder of radius 450 along
the full depth with pores of radius 5-30; ``--size`` is its width, half as deep), through
:data:`PART_MACRO` (load, calibrate, threshold, local thickness, stats, save, snapshot) in one process:
each statement's time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MACRO = """version 1
param scan = "scan.zarr"
raw = load(scan)
cal = calibrate(raw)
seg = threshold(cal, method="multiotsu", classes=3, names=["air", "pore", "metal"])
thick = local_thickness(seg, class="metal")
stats = thickness_stats(thick)
save(stats, "stats.csv")
save(thick, "thickness.zarr")
snapshot(raw, "snapshot.png", labels=seg, classes=["pore"], size=[1280, 720])
render_movie(raw, "orbit.mp4", labels=seg, classes=["pore"], seconds=2, fps=4, size=[1280, 720])
"""


#: Issue 36's chain on the solid part: load, calibrate, threshold, local thickness, stats, save, snapshot.
PART_MACRO = """version 1
param scan = "scan.zarr"
raw = load(scan)
cal = calibrate(raw)
seg = threshold(cal, names=["air", "metal"])
thick = local_thickness(seg, class="metal")
stats = thickness_stats(thick)
save(stats, "stats.csv")
save(thick, "thickness.zarr")
snapshot(raw, "snapshot.png", labels=seg, classes=["metal"], size=[1280, 720])
"""


def make_solid_part(path: Path, n: int, seed: int = 0, slab: int = 16, pores: int = 300) -> None:
    """An (n / 2) x n x n uint16 solid cast part: a cylinder of radius 0.44 n along z through the whole
    depth, ``pores`` spherical pores of radius 5..30, Poisson noise; slab by slab into a .npy memory map."""
    rng = np.random.default_rng(seed)
    nz, c, big = n // 2, (n - 1) / 2, 0.44 * n
    rad = rng.uniform(5, 30, pores)
    ang, rr = rng.uniform(0, 2 * np.pi, pores), np.sqrt(rng.uniform(0, 1, pores)) * (big - rad - 2)
    cent = np.stack([rng.uniform(0, nz, pores), c + rr * np.sin(ang), c + rr * np.cos(ang), rad], 1)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(nz, n, n))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    disc = np.clip(big - np.hypot(yy - c, xx - c) + 0.5, 0, 1)
    for za in range(0, nz, slab):
        zb = min(nz, za + slab)
        occ = np.repeat(disc[None], zb - za, 0)
        for pz, py, px, r in cent[(cent[:, 0] + cent[:, 3] + 1 >= za) & (cent[:, 0] - cent[:, 3] - 1 < zb)]:
            lo = [max(za, int(pz - r - 1)), int(py - r - 1), int(px - r - 1)]
            hi = [min(zb, int(pz + r + 2)), int(py + r + 2), int(px + r + 2)]
            gz, gy, gx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            d = np.sqrt((gz - pz) ** 2 + (gy - py) ** 2 + (gx - px) ** 2)
            occ[lo[0] - za:hi[0] - za, lo[1]:hi[1], lo[2]:hi[2]] *= 1 - np.clip(r - d + 0.5, 0, 1)
        q = 150 / 20000
        out[za:zb] = np.clip(np.random.default_rng([seed, za]).poisson((1000 + 19000 * occ) * q) / q, 0, 65535)
    out.flush()


def make_phantom(path: Path, n: int, seed: int = 0, slab: int = 16) -> None:
    """An n^3 uint16 hollow cast part, slab by slab into a .npy memory map."""
    rng = np.random.default_rng(seed)
    c = (n - 1) / 2
    r_out, r_in, z0, z1 = 0.42 * n, 0.26 * n, 0.06 * n, 0.94 * n
    k = max(8, int(40 * (n / 128) ** 3))  # pores: radii log-uniform from 1 voxel to a third of the wall
    rad = np.exp(rng.uniform(0, np.log((r_out - r_in) / 3), k))
    ang = rng.uniform(0, 2 * np.pi, k)
    rr = rng.uniform(r_in + rad + 1, r_out - rad - 1)
    pores = np.stack([rng.uniform(z0 + rad + 1, z1 - rad - 1), c + rr * np.sin(ang), c + rr * np.cos(ang), rad], 1)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(n, n, n))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r2d = np.hypot(yy - c, xx - c)
    ring = np.minimum(r_out - r2d, r2d - r_in)  # signed distance to the tube's walls, in a plane
    cup = 1.0 - 0.25 * np.clip(1.0 - ((r2d - r_in) / (r_out - r_in) - 0.5) ** 2 * 4, 0, 1)
    for za in range(0, n, slab):
        zb = min(n, za + slab)
        zz = np.arange(za, zb, dtype=np.float32)[:, None, None]
        occ = np.clip(np.minimum(ring[None], np.minimum(zz - z0, z1 - zz)) + 0.5, 0, 1)
        for pz, py, px, r in pores[(pores[:, 0] + pores[:, 3] + 1 >= za) & (pores[:, 0] - pores[:, 3] - 1 < zb)]:
            lo = [max(za, int(pz - r - 1)), max(0, int(py - r - 1)), max(0, int(px - r - 1))]
            hi = [min(zb, int(pz + r + 2)), min(n, int(py + r + 2)), min(n, int(px + r + 2))]
            gz, gy, gx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            d = np.sqrt((gz - pz) ** 2 + (gy - py) ** 2 + (gx - px) ** 2)
            sub = occ[lo[0] - za:hi[0] - za, lo[1]:hi[1], lo[2]:hi[2]]
            sub *= 1 - np.clip(r - d + 0.5, 0, 1)
        grey = 1000 + 19000 * occ * cup[None]
        q = 150 / 20000
        out[za:zb] = np.clip(np.random.default_rng([seed, za]).poisson(grey * q) / q, 0, 65535)
    out.flush()


class Sampler(threading.Thread):
    """Peak resident memory (all, anonymous) of this process since the last ``take``."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = (0, 0)

    @staticmethod
    def now() -> tuple[int, int]:
        f = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(f["VmRSS"].split()[0]) * 1024, int(f["RssAnon"].split()[0]) * 1024

    def run(self):
        while True:
            cur = self.now()
            self.peak = (max(self.peak[0], cur[0]), max(self.peak[1], cur[1]))
            time.sleep(0.02)

    def take(self) -> tuple[int, int]:
        p, self.peak = self.peak, self.now()
        return p


def child(scan: str, out: str, macro: str = MACRO) -> None:
    """Run the macro on ``scan``; print one JSON line per statement: name, seconds, peak bytes."""
    from damselfly.macros.runner import run_file

    text = macro
    macro = Path(out) / "scale.dfm"
    Path(out).mkdir(parents=True, exist_ok=True)
    macro.write_text(text, encoding="utf-8")
    sampler = Sampler()
    sampler.start()
    rows, last = [], [None, time.perf_counter()]

    def close(stmt_name):
        if last[0] is not None:
            rss, anon = sampler.take()
            rows.append({"step": last[0], "s": time.perf_counter() - last[1], "rss": rss, "anon": anon})
        last[:] = [stmt_name, time.perf_counter()]
        sampler.take()

    def on_statement(st, i, n):
        close(st.call.action)

    run_file(macro, {"scan": str(Path(scan).resolve())}, Path(out) / "results", on_statement=on_statement,
             allow_outside=True)
    close(None)
    print(json.dumps(rows))


def app_child(scan: str, out: str) -> None:
    """Open ``scan`` in the app; print seconds until the first slice is shown and until the 3-D view is
    drawn, and the peak memory."""
    from PySide6.QtWidgets import QApplication

    from damselfly.app.window import MainWindow

    sampler = Sampler()
    sampler.start()
    app = QApplication.instance() or QApplication([])
    w = MainWindow(base_dir=Path(out), out_dir=Path(out) / "app", device="cpu")
    w.resize(1600, 900)
    w.show()
    app.processEvents()
    sampler.take()
    t0 = time.perf_counter()
    drafts = []
    w.view3d.built.connect(lambda gen, prepared, final: drafts.append(time.perf_counter() - t0))
    w.open_files([scan])
    first = None
    while time.perf_counter() - t0 < 300:
        app.processEvents()
        if first is None and w.canvas.volume is not None:
            w.canvas.grab()  # the slice view painted once
            first = time.perf_counter() - t0
        if first is not None and not w.worker.busy and not w.view3d.building and w.view3d.renderer is not None:
            w.view3d.plotter.render()
            break
        time.sleep(0.01)
    drawn = time.perf_counter() - t0
    rss, anon = sampler.take()
    print(json.dumps([{"step": "app: first slice", "s": first, "rss": rss, "anon": anon},
                      {"step": "app: 3-D draft", "s": drafts[0] if drafts else drawn, "rss": rss, "anon": anon},
                      {"step": "app: 3-D view", "s": drawn, "rss": rss, "anon": anon,
                       "lod": list(w.view3d.renderer.scene.volume.shape)}]))
    w.close()


def run_child(scan: Path, out: Path, mode: str = "--child") -> list[dict]:
    p = subprocess.run([sys.executable, __file__, mode, str(scan), str(out)], capture_output=True, text=True,
                       cwd=ROOT)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--work", default=None)
    ap.add_argument("--reuse", action="store_true", help="keep the scans already in --work")
    ap.add_argument("--part", action="store_true", help="issue 36's solid part instead (see the docstring)")
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--part-child", nargs=2)
    ap.add_argument("--app-child", nargs=2)
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    if a.part_child:
        return child(*a.part_child, macro=PART_MACRO)
    if a.app_child:
        return app_child(*a.app_child)
    from damselfly.engine import Volume
    from damselfly.engine.io import _files as io

    work = Path(a.work or tempfile.mkdtemp(prefix="dfscale-"))
    work.mkdir(parents=True, exist_ok=True)
    n, m = a.size, a.crop
    if a.part:
        return part(work, n, a.reuse)
    if not (a.reuse and (work / "full.zarr").exists() and (work / "crop.zarr").exists()):
        t = time.perf_counter()
        make_phantom(work / "full.npy", n)
        full = np.load(work / "full.npy", mmap_mode="r")
        io.write_volume(Volume(full, spacing=(0.05,) * 3, unit="mm", name="part"), work / "full.zarr")
        lo = (n - m) // 2
        io.write_volume(Volume(np.array(full[lo:lo + m, lo:lo + m, lo:lo + m]), spacing=(0.05,) * 3, unit="mm",
                               name="crop"), work / "crop.zarr")
        print(f"phantom {n}^3 uint16 ({full.nbytes / 2 ** 30:.1f} GiB) generated and written as OME-Zarr in "
              f"{time.perf_counter() - t:.0f} s; crop {m}^3 from its centre")
    res = {}
    for name in ("crop", "full"):
        res[name] = run_child(work / f"{name}.zarr", work / f"out-{name}")
        res[name] += run_child(work / f"{name}.zarr", work / f"out-{name}", "--app-child")
    ratio = (n / m) ** 3
    print(f"\n{'step':16}{'crop s':>9}{'full s':>9}{'per voxel':>11}{'crop GiB':>10}{'full GiB':>10}"
          f"{'full anon':>11}")
    for c, f in zip(res["crop"], res["full"], strict=True):
        print(f"{f['step']:16}{c['s']:9.2f}{f['s']:9.2f}{f['s'] / max(c['s'], 1e-9) / ratio:10.2f}x"
              f"{c['rss'] / 2 ** 30:10.2f}{f['rss'] / 2 ** 30:10.2f}{f['anon'] / 2 ** 30:11.2f}")
    tot = [sum(r["s"] for r in res[k]) for k in ("crop", "full")]
    print(f"{'total':16}{tot[0]:9.2f}{tot[1]:9.2f}{tot[1] / tot[0] / ratio:10.2f}x  "
          f"peak {max(r['rss'] for r in res['full']) / 2 ** 30:.2f} GiB "
          f"(anonymous {max(r['anon'] for r in res['full']) / 2 ** 30:.2f} GiB); {ratio:.0f}x the voxels")


def part(work: Path, n: int, reuse: bool) -> None:
    from damselfly.engine import Volume
    from damselfly.engine.io import _files as io

    if not (reuse and (work / "part.zarr").exists()):
        t = time.perf_counter()
        make_solid_part(work / "part.npy", n)
        raw = np.load(work / "part.npy", mmap_mode="r")
        io.write_volume(Volume(raw, spacing=(0.05,) * 3, unit="mm", name="part"), work / "part.zarr")
        (work / "part.npy").unlink()
        print(f"solid part {raw.shape} uint16 generated and written as OME-Zarr in {time.perf_counter() - t:.0f} s",
              flush=True)
    rows = run_child(work / "part.zarr", work / "out-part", "--part-child")
    for r in rows:
        print(f"{r['step']:16}{r['s']:9.1f} s{r['rss'] / 2 ** 30:8.2f} GiB (anonymous {r['anon'] / 2 ** 30:.2f})")
    print(f"{'total':16}{sum(r['s'] for r in rows):9.1f} s, peak {max(r['rss'] for r in rows) / 2 ** 30:.2f} GiB")


if __name__ == "__main__":
    main()
