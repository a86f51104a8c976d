"""Local thickness: Damselfly's exact method against the Python tools people use today.

On the same 256^3 porous volume (porespy blobs, porosity 0.5), in one process:
``porespy.filters.local_thickness`` (its default method) and the ``localthickness`` package, both
approximations of the definition, and ``engine.local_thickness`` (exact). Prints the time ratios, the
split of our time between the distance transform, the distance ridge and the ball filling, and how far
each tool's result is from ours (ours equals a brute-force oracle of the definition; see the tests).

    pip install -e .[bench]          # porespy and localthickness (optional; not run-time dependencies)
    .venv/bin/python benchmarks/bench_thickness.py [size]
    .venv/bin/python benchmarks/bench_thickness.py memory [size]   # peak memory at 512^3 (default)
    .venv/bin/python benchmarks/bench_thickness.py ratio [--runs 5] [--load] [--size 256] [--block N]
    .venv/bin/python benchmarks/bench_thickness.py blocks SCAN.zarr [BLOCK]   # a bench_scale.py scan
    .venv/bin/python benchmarks/bench_thickness.py bulk [--sizes 128 256] [--runs 3] [--pores 0] [--rows]
    .venv/bin/python benchmarks/bench_thickness.py part NZ N PORES    # a cast part in memory (issue 36)
    .venv/bin/python benchmarks/bench_thickness.py real    # the nuclei of ../shared/data, three paths

``bulk`` (issue 36): solid cylinders (radius 0.47 of the size, the full depth; ``--pores N`` spherical
pores) against porespy in the same run, each run's ratios and their median; with ``--rows``, ours once
also with the counts of unfilled voxels switched off (the row-by-row fill of every ball, as before issue
36) and whether the two fills are equal voxel for voxel.

``ratio`` repeats ours (in memory, and block by block with the out-of-core distance transform, in the
action's blocks or ``--block`` N), and porespy, ``--runs`` times, and prints every run's ratios and their median; ``--load``
keeps one core busy with another process meanwhile (a machine doing something else too).
"""

from __future__ import annotations

import sys
import time

import numpy as np


def best_of(fn, n=2):
    best, out = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare(name, theirs, ours, mask):
    d = np.abs(np.asarray(theirs, np.float64)[mask] - ours[mask])
    rel = d / ours[mask]
    print(f"  {name:16s} vs ours: mean |diff| {d.mean():.3f} voxel, max {d.max():.2f}; "
          f"within 1 voxel: {np.mean(d <= 1.0) * 100:.1f} %; mean relative diff {rel.mean() * 100:.1f} %")


def main(size: int = 256) -> None:
    from damselfly.engine.thickness import _exact as T

    try:
        import porespy as ps
    except ImportError:
        sys.exit("porespy is not installed: pip install -e .[bench]")
    im = ps.generators.blobs([size] * 3, porosity=0.5, seed=0).astype(bool)
    print(f"porespy blobs {size}^3, porosity {1 - im.mean():.2f}, phase voxels {int(im.sum())}")
    T.local_thickness(im[:32, :32, :32])  # compile (or load the cached kernels)

    t_ours, ours = best_of(lambda: T.local_thickness(im))
    t_edt, _ = best_of(lambda: T.distance_offsets(im))
    t_ridge, ridge = best_of(lambda: T.distance_ridge(im))
    print(f"damselfly (exact): {t_ours:.2f} s  = distance transform {t_edt:.2f} s + distance ridge "
          f"{t_ridge - t_edt:.2f} s ({len(ridge[0])} ball centres, {len(ridge[0]) / im.sum() * 100:.0f} % of "
          f"the phase, {len(ridge[-1])} distinct radii) + ball filling {t_ours - t_ridge:.2f} s")

    results = {}
    # porespy: radii in voxels; thickness as diameter = 2 r. A small call first compiles its numba code.
    ps.filters.local_thickness(im[:32, :32, :32])
    t_ps, ps_out = best_of(lambda: ps.filters.local_thickness(im), n=1)
    results["porespy"] = (t_ps, 2.0 * ps_out)
    try:
        import localthickness as lt

        lt.local_thickness(im[:32, :32, :32])
        t_lt, lt_out = best_of(lambda: lt.local_thickness(im), n=1)
        results["localthickness"] = (t_lt, 2.0 * lt_out)  # it returns radii too
    except ImportError:
        print("localthickness is not installed: pip install -e .[bench]")
    for name, (t, out) in results.items():
        print(f"{name:16s}: {t:.2f} s  -> ours is {t / t_ours:.2f} x faster")
        compare(name, out, ours, im)
    if results:
        fastest = min(t for t, _ in results.values())
        print(f"ours vs the faster of them: {fastest / t_ours:.2f} x (target: 2 x)")


def memory(size: int = 512) -> None:
    """Peak memory that numpy allocates inside ``local_thickness`` (tracemalloc), per voxel and against
    the float32 output that any method must return."""
    import tracemalloc

    from scipy import ndimage

    from damselfly.engine.thickness import _exact as T

    T.local_thickness(np.ones((8, 8, 8), bool), border=True)  # compile first
    field = np.random.default_rng(0).standard_normal((size,) * 3, dtype=np.float32)
    ndimage.gaussian_filter(field, size / 80, output=field)
    mask = field > 0
    del field
    tracemalloc.start()
    t0 = time.perf_counter()
    out = T.local_thickness(mask)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{size}^3 smoothed noise, phase {mask.mean() * 100:.0f} %, largest thickness {out.max():.1f} voxels: "
          f"{seconds:.1f} s, peak {peak / 2 ** 30:.2f} GiB = {peak / mask.size:.1f} bytes per voxel "
          f"({peak / out.nbytes:.2f} x the float32 output)")


def ratio(size: int, runs: int, load: bool, block: int | None) -> None:
    import os
    import subprocess
    import tempfile

    import porespy as ps

    from damselfly.engine.thickness import _exact as T
    from damselfly.engine.thickness._blocks import blockwise_thickness

    im = ps.generators.blobs([size] * 3, porosity=0.5, seed=0).astype(bool)
    T.local_thickness(im[:32, :32, :32])
    ps.filters.local_thickness(im[:32, :32, :32])
    ref = T.local_thickness(im)

    def blocks():
        out = np.zeros(im.shape, np.float32)
        blockwise_thickness(lambda sl: im[sl], im.shape, (1, 1, 1), out, block=block)
        return out

    assert np.array_equal(blocks(), ref)  # exact, block by block too
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load else None
    rows = []
    try:
        with tempfile.TemporaryDirectory() as d:
            os.environ["DAMSELFLY_SCRATCH"] = d
            for k in range(runs):
                t = [best_of(f, n=1)[0] for f in (lambda: T.local_thickness(im), blocks,
                                                    lambda: ps.filters.local_thickness(im))]
                rows.append(t)
                print(f"run {k + 1}: ours {t[0]:.2f} s, ours block by block {t[1]:.2f} s, porespy {t[2]:.2f} s -> "
                      f"{t[2] / t[0]:.2f} x, {t[2] / t[1]:.2f} x", flush=True)
    finally:
        if busy:
            busy.kill()
    m = np.median(np.asarray(rows), axis=0)
    print(f"median of {runs}{' (one core busy)' if load else ''}: ours {m[0]:.2f} s, block by block {m[1]:.2f} s, "
          f"porespy {m[2]:.2f} s -> porespy / ours {m[2] / m[0]:.2f} x, porespy / block by block "
          f"{m[2] / m[1]:.2f} x (target: 2 x)")


def cylinder(n: int, pores: int = 0, seed: int = 0) -> np.ndarray:
    """A solid cylinder along z, radius 0.47 n, with ``pores`` spherical pores of radius 2 .. n / 12."""
    z, y, x = np.ogrid[:n, :n, :n]
    c = (n - 1) / 2
    mask = np.broadcast_to((y - c) ** 2 + (x - c) ** 2 <= (0.47 * n) ** 2, (n, n, n)).copy()
    rng = np.random.default_rng(seed)
    for _ in range(pores):
        pz, py, px = rng.integers(0, n, 3)
        mask[(z - pz) ** 2 + (y - py) ** 2 + (x - px) ** 2 <= rng.uniform(2, max(3, n / 12)) ** 2] = False
    return mask


def bulk(sizes: list[int], runs: int, pores: int, rows: bool) -> None:
    import porespy as ps

    from damselfly.engine.thickness import _exact as T

    T.local_thickness(cylinder(32, pores))
    ps.filters.local_thickness(cylinder(32))
    for n in sizes:
        mask = cylinder(n, pores)
        times = []
        for k in range(runs):
            t_ours, ours = best_of(lambda m=mask: T.local_thickness(m), n=1)
            big, T.BIG_ROWS = T.BIG_ROWS, 10 ** 12
            first = k == 0 and rows
            t_rows, rows_out = best_of(lambda m=mask: T.local_thickness(m), n=1) if first else (float("nan"), ours)
            T.BIG_ROWS = big
            t_ps, _ = best_of(lambda m=mask: ps.filters.local_thickness(m), n=1)
            times.append((t_ours, t_ps))
            print(f"{n}^3 cylinder radius {0.47 * n:.0f}{f', {pores} pores' if pores else ''}, run {k + 1}: ours "
                  f"{t_ours:.2f} s, porespy {t_ps:.2f} s -> {t_ps / t_ours:.1f} x"
                  + (f"; row by row (before issue 36) {t_rows:.2f} s, equal: {np.array_equal(ours, rows_out)}"
                     if first else ""), flush=True)
        r = sorted(t_ps / t for t, t_ps in times)
        print(f"{n}^3: porespy / ours over {runs} runs: {', '.join(f'{v:.1f}' for v in r)} (median "
              f"{r[len(r) // 2]:.1f} x; target 5 x)", flush=True)


def part(nz: int, n: int, pores: int) -> None:
    """A cast part: a solid cylinder of radius 0.44 n along z, ``pores`` spherical pores of radius 5..30
    (issue 36's part is nz=512, n=1024), in memory: time, largest thickness and peak RSS."""
    import resource

    from damselfly.engine.thickness import _exact as T

    z, y, x = np.ogrid[:nz, :n, :n]
    c = (n - 1) / 2
    mask = np.broadcast_to((y - c) ** 2 + (x - c) ** 2 <= (0.44 * n) ** 2, (nz, n, n)).copy()
    rng = np.random.default_rng(0)
    for _ in range(pores):
        pz, py, px, pr = rng.integers(0, nz), rng.integers(40, n - 40), rng.integers(40, n - 40), rng.uniform(5, 30)
        sl = (slice(max(0, int(pz - pr)), min(nz, int(pz + pr) + 1)), slice(int(py - pr), int(py + pr) + 1),
              slice(int(px - pr), int(px + pr) + 1))
        zz, yy, xx = np.ogrid[sl]
        mask[sl][(zz - pz) ** 2 + (yy - py) ** 2 + (xx - px) ** 2 <= pr * pr] = False
    T.local_thickness(mask[:32, n // 2 - 50:n // 2 + 50, n // 2 - 50:n // 2 + 50])
    t0 = time.perf_counter()
    out = T.local_thickness(mask)
    t = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"{nz} x {n}^2 part, radius {0.44 * n:.0f}, {pores} pores of radius 5-30: {t:.1f} s, largest thickness "
          f"{out.max():.1f} voxels, peak RSS {peak:.2f} GiB", flush=True)


def real(path: str = "../shared/data/nuclei_labels.tif", runs: int = 3) -> None:
    """Real data: the nuclei (napari sample data) at voxels of 1 x 0.5 x 0.5, in memory, block by block
    grown by the halo and passing the ball centres between blocks (blocks of 64): times and equality."""
    import tifffile

    import damselfly.engine.thickness._blocks as tb
    from damselfly.engine.thickness import _exact as T

    mask = tifffile.imread(path) > 0
    sp = (1.0, 0.5, 0.5)
    T.local_thickness(mask[:8, :32, :32] | True, sp, border=True)

    def blockwise(centres):
        tb.BLOCK, tb.GROWN_VOXELS = 64, 64 ** 3
        tb.CENTRES_WHEN, tb.CENTRE_BLOCK = (0.0, 64) if centres else (float("inf"), 256)
        out = np.zeros(mask.shape, np.float32)
        tb.blockwise_thickness(lambda sl: mask[sl], mask.shape, sp, out)
        return out

    ref = T.local_thickness(mask, sp)
    print(f"{path}: {mask.shape}, {mask.mean() * 100:.1f} % foreground, thickness max {ref.max():.2f}, "
          f"mean {ref[mask].mean():.2f}")
    for name, fn in [("in memory", lambda: T.local_thickness(mask, sp)), ("halo blocks of 64", lambda: blockwise(False)),
                     ("centres, blocks of 64", lambda: blockwise(True))]:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        print(f"  {name}: {', '.join(f'{t:.2f}' for t in sorted(times))} s; equal: {np.array_equal(out, ref)}")


def blocks(scan: str, block: int | None) -> None:
    """Block by block against in memory on the walls of a ``bench_scale.py`` scan (OME-Zarr): times,
    their ratio, and whether the values are equal voxel for voxel. Needs about 12 bytes a voxel of RAM
    for the in-memory side (1024^3: 12 GB)."""
    from damselfly.engine import Volume
    from damselfly.engine.actions.processing import calibrate, threshold
    from damselfly.engine.io import _files as io
    from damselfly.engine.thickness._blocks import blockwise_thickness
    from damselfly.engine.thickness._exact import local_thickness

    vol = io.read_volume(scan)
    seg = threshold(calibrate(Volume(np.asarray(vol.data[:]), spacing=vol.spacing)), method="multiotsu", classes=3)
    mask = np.asarray(seg.data) == 3
    del seg
    t0 = time.perf_counter()
    ref = local_thickness(mask, vol.spacing)
    t_mem = time.perf_counter() - t0
    out = np.zeros(mask.shape, np.float32)
    t0 = time.perf_counter()
    largest = blockwise_thickness(lambda sl: mask[sl], mask.shape, vol.spacing, out, block=block)
    t_blocks = time.perf_counter() - t0
    print(f"{scan}: {mask.shape}, phase {mask.mean() * 100:.1f} %, largest radius {largest:.3f} {vol.unit}")
    print(f"in memory {t_mem:.1f} s, block by block {t_blocks:.1f} s -> {t_blocks / t_mem:.2f} x (goal: 1.5 x); "
          f"equal voxel for voxel: {np.array_equal(out, ref)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "blocks":
        blocks(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
    elif len(sys.argv) > 1 and sys.argv[1] == "ratio":
        import argparse

        ap = argparse.ArgumentParser()
        ap.add_argument("mode")
        ap.add_argument("--size", type=int, default=256)
        ap.add_argument("--runs", type=int, default=5)
        ap.add_argument("--load", action="store_true")
        ap.add_argument("--block", type=int, default=None, help="core block edge (default: the action's)")
        a = ap.parse_args()
        ratio(a.size, a.runs, a.load, a.block)
    elif len(sys.argv) > 1 and sys.argv[1] == "bulk":
        import argparse

        ap = argparse.ArgumentParser()
        ap.add_argument("mode")
        ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
        ap.add_argument("--runs", type=int, default=3)
        ap.add_argument("--pores", type=int, default=0)
        ap.add_argument("--rows", action="store_true", help="also time the row-by-row fill once (slow at 256^3)")
        a = ap.parse_args()
        bulk(a.sizes, a.runs, a.pores, a.rows)
    elif len(sys.argv) > 1 and sys.argv[1] == "real":
        real(*sys.argv[2:3])
    elif len(sys.argv) > 1 and sys.argv[1] == "part":
        part(*(int(v) for v in sys.argv[2:5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "memory":
        memory(int(sys.argv[2]) if len(sys.argv) > 2 else 512)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
