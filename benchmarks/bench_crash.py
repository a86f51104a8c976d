"""Kill ``--jobs 2`` batches at random moments and check what is left, then resume (issue: data safety).

Each trial starts ``damselfly run m.dfm --batch 'scans/*.tif' --jobs 2`` on 4 small scans, waits a
random time, and sends SIGKILL, SIGTERM or SIGINT to the main process, to one worker, or to the whole
process tree. Then it checks:

- no partial file under a final name: every output that exists is byte-identical to a clean run's;
- no orphan: within 30 s no process of that batch is alive;
- resume: ``--resume`` exits 0, and the outputs are byte-identical to the clean run's, with no
  temporaries left.

Usage: ``python benchmarks/bench_crash.py [TRIALS] [SEED]`` (default 20 trials). Prints one line per
trial and the counts; exits 1 if any check failed. Linux only (reads /proc).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from damselfly.macros.batch import run_batch  # noqa: E402
from tests.macros.kit import final_files, processes_with, temporaries, wait_for, write_scans  # noqa: E402

BODY = ('version 1\nparam scan = "x.tif"\nraw = load(scan)\ncal = calibrate(raw)\nsave(cal, "{scan.stem}_cal.tif")\n'
        'seg = threshold(cal, names=["air", "metal"])\nsave(seg, "{scan.stem}_seg.tif")\n'
        'thick = local_thickness(seg, class="metal")\nsave(thick, "{scan.stem}_thick.tif")\n'
        'stats = thickness_stats(thick)\nsave(stats, "{scan.stem}_thick.csv")\nsave(seg, "{scan.stem}_slices")\n')


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "damselfly.macros.cli", *args]


def trial(k: int, rng: random.Random, work: Path, m: Path, ref: dict) -> dict:
    out = work / f"trial_{k:02d}"
    batch = ["run", str(m), "--batch", str(work / "scans" / "*.tif"), "--out", str(out), "--jobs", "2"]
    p = subprocess.Popen(cli(*batch), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    delay = rng.uniform(0.3, 5.0)  # a whole batch takes ~5 s here
    time.sleep(delay)
    target = rng.choice(["main", "worker", "tree"])
    sig = rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
    workers = [q for q in processes_with(str(out)) if q != p.pid]
    victims = {"main": [p.pid], "worker": workers[:1], "tree": [p.pid] + workers}[target]
    for pid in victims:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    try:
        p.wait(120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    try:
        wait_for(lambda: not processes_with(str(out)), timeout=30)
        orphans = 0
    except AssertionError:
        orphans = len(processes_with(str(out)))
        for pid in processes_with(str(out)):
            os.kill(pid, signal.SIGKILL)
    left = final_files(out) if out.exists() else {}
    partial = [name for name, sha in left.items() if ref.get(name) != sha]
    r = subprocess.run(cli(*batch, "--resume"), capture_output=True, text=True, timeout=600)
    identical = r.returncode == 0 and final_files(out) == ref and not temporaries(out)
    return {"target": target, "signal": sig.name, "delay": round(delay, 2), "killed": len(victims),
            "partial": partial, "orphans": orphans, "resume_rc": r.returncode, "identical": identical}


def main(trials: int = 20, seed: int = 1) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="damselfly-crash-") as tmp:
        work = Path(tmp)
        write_scans(work / "scans", 4, (24, 48, 48))
        m = work / "m.dfm"
        m.write_text(BODY)
        t0 = time.perf_counter()
        run_batch(m, str(work / "scans" / "*.tif"), out_dir=work / "ref")
        print(f"clean serial run: {time.perf_counter() - t0:.1f} s", flush=True)
        ref = final_files(work / "ref")
        results = []
        for k in range(trials):
            r = trial(k, rng, work, m, ref)
            results.append(r)
            print(f"trial {k + 1:2d}: {r['signal']:7s} to {r['target']:6s} after {r['delay']:4.1f} s -> "
                  f"partial {len(r['partial'])}, orphans {r['orphans']}, resume rc {r['resume_rc']}, "
                  f"identical {r['identical']}", flush=True)
    kinds = Counter(f"{r['signal']}->{r['target']}" for r in results)
    bad_partial = sum(bool(r["partial"]) for r in results)
    orphans = sum(r["orphans"] for r in results)
    identical = sum(r["identical"] for r in results)
    print(f"\n{trials} kills ({', '.join(f'{k} x{n}' for k, n in sorted(kinds.items()))})")
    print(f"partial files under a final name: {bad_partial} trials; orphan processes: {orphans}; "
          f"resumed byte-identical to a clean run: {identical} of {trials}")
    return 0 if bad_partial == 0 and orphans == 0 and identical == trials else 1


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
