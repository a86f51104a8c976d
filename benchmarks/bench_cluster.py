"""Batches three ways: serial, ``--jobs 2`` (worker processes) and a Dask LocalCluster of 2 workers
(issue 19). 16 casting phantoms (64^3) through ``examples/casting_apply.dfm`` (calibrate, infer with the
shipped model, save); prints the wall times, their ratios and the cluster's overhead per scan.

    .venv/bin/python benchmarks/bench_cluster.py [--scans 16] [--size 64] [--runs 3]

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

from damselfly.engine import io, phantoms
from damselfly.macros.batch import run_batch

ROOT = Path(__file__).resolve().parents[1]


def start_and_stop() -> float:
    """Seconds to start a LocalCluster of 2 workers and close it again: paid once per batch."""
    from damselfly.macros.cluster import close, connect

    t0 = time.perf_counter()
    close(*connect("local:2"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scans", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
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
        over = (med["--cluster local:2"] - med["--jobs 2"]) / a.scans
        start = float(np.median(starts))
        print(f"  one scan takes {per_scan:.2f} s serially; the cluster's overhead over --jobs 2 is "
              f"{over:+.2f} s per scan = {100 * over / per_scan:+.1f} % of a scan (starting the 2 workers included)")
        per = over - start / a.scans
        print(f"  starting and closing the LocalCluster takes {start:.2f} s ({min(starts):.2f}-{max(starts):.2f}) once "
              f"per batch; without it the overhead is {per:+.2f} s per scan = {100 * per / per_scan:+.1f} % of a scan")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
