"""Helpers for the tests and the benchmark that run and kill batches (the process helpers read /proc: Linux)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from damselfly.engine.core import phantoms
from damselfly.engine.io import _files as io

#: Files a run writes besides its outputs.
BOOKKEEPING = ("run.json", "batch.json", ".damselfly.lock", "summary.csv", "summary.html")  # these hold times


def processes_with(text: str) -> list[int]:
    """Live pids (not this one, not zombies) whose command line holds ``text``."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if text in cmd and alive(int(d.name)):
                found.append(int(d.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(pred, timeout: float = 60.0):
    """Poll ``pred`` until it returns something true; that value."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def final_files(out: Path) -> dict[str, str]:
    """SHA-256 of every file under its final name (run records and locks aside)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in BOOKKEEPING and not temporary(p)}


def temporary(p: Path) -> bool:
    return ".partial" in p.name or ".old-" in p.name


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if temporary(p)]


def write_scans(folder: Path, n: int, size=(8, 16, 16), name: str = "p{i}.tif") -> Path:
    """``n`` casting phantoms (seeds 0..n-1) as TIFF files in ``folder`` (made); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        v, _ = phantoms.casting(size, seed=i)
        io.write_volume(v, folder / name.format(i=i))
    return folder


# local thickness makes each scan take a moment (and a fresh worker compiles its kernels first)
BODY = ('version 1\nparam scan = "x.tif"\nraw = load(scan)\ncal = calibrate(raw)\n'
        'seg = threshold(cal, names=["air", "metal"])\nsave(seg, "{scan.stem}_seg.tif")\n'
        'thick = local_thickness(seg, class="metal")\nsave(thick, "{scan.stem}_thick.tif")\n'
        'stats = thickness_stats(thick)\nsave(stats, "{scan.stem}_thick.csv")\n')


def batch_of(tmp_path: Path, n: int, size=(24, 40, 40)) -> tuple[Path, Path]:
    """A batch to run: ``n`` scans (:func:`write_scans`) and the macro :data:`BODY`; ``(macro, folder)``."""
    folder = write_scans(tmp_path / "scans", n, size)
    m = tmp_path / "m.dfm"
    m.write_text(BODY)
    return m, folder
