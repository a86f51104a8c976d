"""Reports: the time to write a scan's page with a 10 MB movie, and a batch summary of 1,000 scans.

    .venv/bin/python benchmarks/bench_report.py [--repeat R] [--scans N]

1. A macro run over a 96³ casting phantom saves a segmentation, a thickness map (1.5 MB float32 TIFF,
   histogram in the page), an object table, class fractions, a snapshot and a 10 MB movie (a real MP4
   padded to 10 MB: the page links it, so its size should not matter); ``report`` is then timed R times,
   against copying the output folder once in the same run (the reference: the bytes the report could
   have read).
2. ``write_summary`` over N synthetic scans, each with a run record and three tables (thickness
   statistics, Dice per class, 200 objects), timed R times against reading those files with the csv and
   json modules (the bare I/O of the job).
The targets (issue 33): under 2 s for the page, under 10 s for 1,000 scans.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from damselfly.engine import Table
from damselfly.engine.actions.report import report
from damselfly.engine.core import phantoms
from damselfly.engine.core.context import RunContext
from damselfly.engine.io import _files as io
from damselfly.macros.runner import run_file
from damselfly.macros.summary import write_summary

MACRO = """version 1
raw = load("scan.tif")
cal = calibrate(raw)
seg = threshold(cal, method="multiotsu", classes=3, names=["air", "pore", "metal"])
thick = local_thickness(seg, class="metal")
save(thick, "thickness.tif")
stats = thickness_stats(thick)
save(stats, "thickness.csv")
pores = label_objects(seg, class="pore")
table = measure_objects(pores)
save(table, "pores.csv")
fractions = class_fractions(seg)
save(fractions, "fractions.csv")
snapshot(cal, "snapshot.png", labels=seg, size=[960, 540])
render_movie(seg, "orbit.mp4", seconds=2, fps=10, size=[640, 360])
"""


def spread(xs: list[float]) -> str:
    return f"{min(xs):.3f}-{max(xs):.3f} s (median {statistics.median(xs):.3f})"


def scan_page(tmp: Path, repeat: int) -> None:
    vol, _ = phantoms.casting((96, 96, 96), seed=0)
    io.write_volume(vol, tmp / "scan.tif")
    (tmp / "m.dfm").write_text(MACRO)
    out = tmp / "out"
    assert run_file(tmp / "m.dfm", out_dir=out).status == "ok"
    movie = out / "orbit.mp4"
    with open(movie, "ab") as f:  # padded to 10 MB (players ignore what follows the last box)
        f.write(bytes(max(0, 10 * 2 ** 20 - movie.stat().st_size)))
    t0 = time.perf_counter()
    shutil.copytree(out, tmp / "copy")
    copy = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        report(str(out / "report.html"), ctx=RunContext(out_dir=out))
        times.append(time.perf_counter() - t0)
    page = out / "report.html"
    print(f"scan page with a {movie.stat().st_size / 2 ** 20:.0f} MB movie: {spread(times)} over {repeat} runs; "
          f"{statistics.median(times) / copy:.2f} x copying the output folder ({copy:.3f} s); "
          f"page {page.stat().st_size / 1e3:.0f} kB (goal: under 2 s)")


def summary(tmp: Path, n: int, repeat: int) -> None:
    items = []
    for k in range(n):
        d = tmp / f"s{k:04d}"
        d.mkdir()
        outs = []
        for name, t in (("thickness", Table({"range": ["all", "bin"], "mean": [1.0 + k % 7, 0.5], "max": [3.0, 1.0]})),
                        ("scores", Table({"class": ["air", "metal", "pore"], "dice": [0.99, 0.98, 0.8 + k % 5 / 50]})),
                        ("pores", Table({"id": list(range(1, 201)), "volume": [0.01 * i for i in range(200)]}))):
            p = d / f"s{k:04d}_{name}.csv"
            io.write_table(t, p)
            outs.append(str(p))
        (d / "run.json").write_text(json.dumps({"status": "ok", "outputs": outs}))
        items.append({"item": f"s{k:04d}.tif", "out_dir": str(d), "status": "ok", "seconds": 10.0 + k % 3})
    (tmp / "batch.json").write_text(json.dumps({"macro": "m.dfm", "items": items}))
    t0 = time.perf_counter()
    for it in items:  # the bare I/O: every record and table read once
        rec = json.loads((Path(it["out_dir"]) / "run.json").read_text())
        for o in rec["outputs"]:
            Path(o).read_text()
    bare = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        write_summary(tmp)
        times.append(time.perf_counter() - t0)
    print(f"summary of {n:,} scans: {spread(times)} over {repeat} runs; {statistics.median(times) / bare:.1f} x "
          f"reading their records and tables ({bare:.3f} s); summary.html "
          f"{(tmp / 'summary.html').stat().st_size / 1e6:.1f} MB (goal: under 10 s for 1,000)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scans", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scan_page(Path(tmp), args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        summary(Path(tmp), args.scans, args.repeat)


if __name__ == "__main__":
    main()
