"""Batches survive what happens to real batches: a worker killed, the main process killed, Ctrl-C
(issue: data safety). Linux only (reads /proc)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from damselfly.macros.batch import run_batch

from .kit import alive, batch_of, final_files, processes_with, temporaries, wait_for

pytestmark = [pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc"),
              pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture
def scans(tmp_path):
    return batch_of(tmp_path, 4)


def test_a_killed_worker_fails_only_its_scan(scans, tmp_path):
    m, folder = scans
    out = tmp_path / "out"
    import threading

    def killer():
        pids = wait_for(lambda: processes_with(f"{folder / 'p1.tif'}"))
        wait_for(lambda: (out / "p1" / "run.json").exists())  # killed mid-scan, as the OOM killer would
        time.sleep(0.3)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    res = run_batch(m, str(folder / "*.tif"), out_dir=out, jobs=2)
    t.join()
    assert [r.status for r in res] == ["ok", "failed", "ok", "ok"]
    assert "died (killed by SIGKILL; out of memory?)" in res[1].error
    summary = json.loads((out / "batch.json").read_text())
    assert [i["status"] for i in summary["items"]] == ["ok", "failed", "ok", "ok"]
    assert json.loads((out / "p1" / "run.json").read_text())["status"] == "failed"
    assert not temporaries(out)
    # resume finishes the dead scan, and everything equals a clean serial run
    res = run_batch(m, str(folder / "*.tif"), out_dir=out, jobs=2, resume=True)
    assert [r.status for r in res] == ["skipped", "ok", "skipped", "skipped"]
    cores = max(1, (os.cpu_count() or 1) // 2)  # two scans at once share the cores
    assert json.loads((out / "p1" / "run.json").read_text())["settings"]["threads"] == cores
    run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "clean")
    assert final_files(out) == final_files(tmp_path / "clean")


def cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "damselfly.macros.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_workers_die_with_a_killed_main_process(scans, tmp_path):
    m, folder = scans
    out = tmp_path / "out"
    p = cli(["run", str(m), "--batch", str(folder / "*.tif"), "--out", str(out), "--jobs", "2"])
    workers = wait_for(lambda: [q for q in processes_with(str(out)) if q != p.pid])
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)  # returns: no worker holds the parent's stdout
    wait_for(lambda: not any(Path(f"/proc/{w}").exists() and alive(w) for w in workers), timeout=30)
    # what they left is finished by a resume
    r = subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "run", str(m), "--batch", str(folder / "*.tif"),
                        "--out", str(out), "--jobs", "2", "--resume"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not temporaries(out)


def test_ctrl_c_stops_the_batch_writes_the_summary_and_exits_130(scans, tmp_path):
    m, folder = scans
    out = tmp_path / "out"
    p = cli(["run", str(m), "--batch", str(folder / "*.tif"), "--out", str(out), "--jobs", "2"])
    wait_for(lambda: [q for q in processes_with(str(out)) if q != p.pid])
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    summary = json.loads((out / "batch.json").read_text())
    assert summary["interrupted"] and len(summary["items"]) == 4
    assert {i["status"] for i in summary["items"]} <= {"ok", "cancelled"}
    assert [i["status"] for i in summary["items"][2:]] == ["cancelled", "cancelled"]  # never started
    with open(out / "summary.csv", newline="") as f:  # the table and page of what is done, too
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows][2:] == ["cancelled", "cancelled"] and (out / "summary.html").exists()
    assert not (out / "p2").exists() and not (out / "p3").exists()
    assert not temporaries(out) and not processes_with(str(out))
    r = subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "run", str(m), "--batch", str(folder / "*.tif"),
                        "--out", str(out), "--jobs", "2", "--resume"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "clean")
    assert final_files(out) == final_files(tmp_path / "clean")


def test_scans_spread_over_the_gpus_round_robin(scans, tmp_path, monkeypatch):
    """`--jobs 2 --device cuda` on a machine with two GPUs: each worker sees one GPU (CUDA_VISIBLE_DEVICES,
    kept in its run record), the least busy, so both are used. Stood in for by two listed GPUs on the CPU."""
    from damselfly.macros import batch as batch_mod
    from damselfly.macros.workers import visible_gpus

    m, folder = scans
    monkeypatch.setattr(batch_mod, "visible_gpus", lambda device: ["0", "1"])
    res = run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "out", jobs=2, device="cpu")
    assert [r.status for r in res] == ["ok"] * 4
    seen = [json.loads((tmp_path / "out" / f"p{i}" / "run.json").read_text())["settings"]["cuda_visible_devices"]
            for i in range(4)]
    assert seen[:2] == ["0", "1"] and set(seen) == {"0", "1"}  # the next scan takes the GPU freed first
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus("cuda") == ["2", "3"] and visible_gpus("cpu") == []
