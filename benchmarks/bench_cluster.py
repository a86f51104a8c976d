"""Batches three ways: serial, ``--jobs 2`` (worker processes) and a Dask LocalCluster of 2 workers
(issue 19). 16 casting phantoms (64^3) through ``examples/casting_apply.dfm`` (calibrate, infer with the
shipped model, save); prints the wall times, their ratios and the cluster's overhead per scan.

    .venv/bin/python benchmarks/bench_cluster.py [--scans 16] [--size 64] [--runs 3]
    .venv/bin/python benchmarks/bench_cluster.py --huge 256 [--runs 3]

``--huge N``: one N^3 casting phantom as OME-Zarr through calibrate, infer (the shipped model),
threshold and local_thickness, in one process and with its blocks on a 2-worker LocalCluster
(``damselfly run --cluster local:2`` without ``--batch``); checks that the outputs are equal and prints
both times.

On a 2-core machine the goal is not speed-up but overhead: the cluster's extra time per scan (over
``--jobs 2``, which runs the same processes without a scheduler) under 5 % of a scan's time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from damselfly.engine.core import phantoms
from damselfly.engine.io import _files as io
from damselfly.macros.batch import run_batch

ROOT = Path(__file__).resolve().parents[1]


def start_and_stop() -> float:
    """Seconds to start a LocalCluster of 2 workers and close it again: paid once per batch."""
    from damselfly.macros.cluster import close, connect

    t0 = time.perf_counter()
    close(*connect("local:2"))
    return time.perf_counter() - t0


HUGE_MACRO = """version 1
param scan = "scan.ome.zarr"
raw = load(scan)
cal = calibrate(raw, method="percentile", low=0.5, high=99.5)
model = load_model("MODEL")
seg = infer(model, cal)
save(seg, "seg.ome.zarr")
thick = local_thickness(seg, class="metal")
save(thick, "thick.ome.zarr")
"""


def huge(size: int, runs: int, work: Path) -> None:
    """One scan's blocks here and on a 2-worker LocalCluster: equal outputs, and the times."""
    from damselfly.macros.cluster import DaskBlocks, close, connect
    from damselfly.macros.runner import run_file

    v, _ = phantoms.casting((size,) * 3, seed=0)
    io.write_volume(v, work / "scan.ome.zarr")
    macro = work / "huge.dfm"
    macro.write_text(HUGE_MACRO.replace("MODEL", str(ROOT / "examples" / "models" / "casting.dfmodel")))
    times = {"one process": [], "blocks on local:2": []}
    for run in range(runs):
        t0 = time.perf_counter()
        run_file(macro, out_dir=work / f"here{run}", device="cpu")
        times["one process"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        client, cluster = connect("local:2")
        try:
            run_file(macro, out_dir=work / f"spread{run}", device="cpu", blocks=DaskBlocks(client, "local:2"))
        finally:
            close(client, cluster)
        times["blocks on local:2"].append(time.perf_counter() - t0)
        for name in ("seg.ome.zarr", "thick.ome.zarr"):
            a = io.read_volume(work / f"here{run}" / name).data
            b = io.read_volume(work / f"spread{run}" / name).data
            assert np.array_equal(np.asarray(a[:]), np.asarray(b[:])), f"{name} differs"
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    print(f"\none {size}^3 scan, median of {runs} runs (min-max); outputs equal voxel for voxel:")
    for k, v in times.items():
        print(f"  {k:18s} {np.median(v):6.1f} s ({min(v):.1f}-{max(v):.1f})")


def _spread(per_scan_overheads, scan: float) -> str:
    """'+0.09 s per scan (+0.05 to +0.12) = +6.4 % of a scan (+3.5 to +8.5)'."""
    o = np.asarray(per_scan_overheads)
    return (f"{np.median(o):+.3f} s per scan ({o.min():+.3f} to {o.max():+.3f}) = {100 * np.median(o) / scan:+.1f} % "
            f"of a scan ({100 * o.min() / scan:+.1f} to {100 * o.max() / scan:+.1f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scans", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--huge", type=int, metavar="N", help="one N^3 scan's blocks on the cluster (see above)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        if a.huge:
            return huge(a.huge, a.runs, work)
        for i in range(a.scans):
            v, _ = phantoms.casting((a.size,) * 3, seed=i)
            io.write_volume(v, work / "scans" / f"part_{i:02d}.tif")
        macro = work / "apply.dfm"
        macro.write_text((ROOT / "examples" / "casting_apply.dfm").read_text()
                         .replace('"models/casting.dfmodel"', f'"{ROOT / "examples" / "models" / "casting.dfmodel"}"'))
        pattern = str(work / "scans" / "*.tif")
        ways = {"serial": {}, "--jobs 2": {"jobs": 2}, "--cluster local:2": {"cluster": "local:2"}}
        times = {k: [] for k in ways}
        starts = []
        for run in range(a.runs):
            starts.append(start_and_stop())
            for name, kw in ways.items():
                out = work / f"out_{run}_{name.replace(' ', '').replace(':', '').replace('-', '')}"
                t0 = time.perf_counter()
                res = run_batch(macro, pattern, out_dir=out, device="cpu", **kw)
                times[name].append(time.perf_counter() - t0)
                assert all(r.status == "ok" for r in res), [r.error for r in res if r.status != "ok"]
                shutil.rmtree(out)
                print(f"run {run + 1}: {name:18s} {times[name][-1]:6.1f} s", flush=True)
        med = {k: float(np.median(v)) for k, v in times.items()}
        per_scan = med["serial"] / a.scans
        print(f"\n{a.scans} scans of {a.size}^3, median of {a.runs} runs (min-max):")
        for k, v in times.items():
            print(f"  {k:18s} {med[k]:6.1f} s ({min(v):.1f}-{max(v):.1f})  {med['serial'] / med[k]:.2f}x serial")
        # the overhead per run, cluster minus --jobs 2 of the same run: paired, so slow drift cancels
        over = np.subtract(times["--cluster local:2"], times["--jobs 2"]) / a.scans
        bare = over - np.asarray(starts) / a.scans
        print(f"  one scan takes {per_scan:.2f} s serially; the cluster's overhead over --jobs 2 (per run, then "
              f"the median and min-max) is\n    {_spread(over, per_scan)} with starting the 2 workers,")
        print(f"    {_spread(bare, per_scan)} without it; starting and closing the LocalCluster takes "
              f"{np.median(starts):.2f} s ({min(starts):.2f}-{max(starts):.2f}) once per batch")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
