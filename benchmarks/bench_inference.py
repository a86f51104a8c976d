"""Inference throughput and peak memory of the default model (2-D U-Net, 16 channels, 4 levels, 2.5d).

A casting phantom of 256 x 512 x 512 voxels (uint16, 128 MiB) is written as ``.npy`` and memory-mapped,
then segmented by ``infer`` streaming slab by slab into a disk-backed output, in a child process whose
peak memory (RSS) is reported. Printed ratios:

- against the reference from the field: a commercial tool needed 23 minutes for a 750 x 560 x 1350 CT
  on a laptop GPU, 0.41 Mvoxel/s;
- against a reference measured in the same run: the same network run over whole slices in one plain
  forward pass each (no tiling, blending, streaming or I/O) — the ratio is the cost of the streaming
  machinery;
- peak memory against the size of the volume (below 1 means the volume never sat in memory whole).

    .venv/bin/python benchmarks/bench_inference.py [--size Z Y X] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "models" / "casting.dfmodel"
FIELD_MVOX_S = 750 * 560 * 1350 / (23 * 60) / 1e6  # 0.41


def _hwm_kib() -> int:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it does not carry over an exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def child(path: str, device: str, threads: int | None) -> None:
    import threading

    import torch

    from damselfly.engine import Session, Settings
    from damselfly.engine.io import _files as io

    base = _hwm_kib()
    s = Session(Settings(device=device, threads=threads))
    vol = io.read_volume(path, mmap=True)
    model = s.run("load_model", str(MODEL))
    anon = {"base": _rss_anon_kib(), "peak": 0}
    done = threading.Event()

    def sample():  # peak anonymous memory: RSS without the file pages of the memory maps
        while not done.wait(0.05):
            anon["peak"] = max(anon["peak"], _rss_anon_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    seg = s.run("infer", model, vol)
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = _hwm_kib()
    done.set()
    sampler.join()
    gpu_peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    counts = np.bincount(np.asarray(seg.data[::8]).ravel(), minlength=4)[1:].tolist()
    print(json.dumps({"seconds": dt, "peak_rss_kib": peak, "base_rss_kib": base,
                      "output": type(seg.data).__module__.split(".")[0] + "." + type(seg.data).__name__,
                      "gpu_peak": gpu_peak,
                      "anon_base_kib": anon["base"], "anon_peak_kib": anon["peak"],
                      "class_counts_every_8th_slice": counts}))


def reference(vol: np.ndarray, device: str, threads: int | None) -> float:
    """Seconds for one plain forward pass per whole slice (no tiles, no blending), on a slab of slices."""
    import torch

    from damselfly.engine.segmentation import _inference as inference
    from damselfly.engine.segmentation import _model as model_io
    from damselfly.engine.segmentation import _tiling as tiling

    if threads:
        torch.set_num_threads(threads)
    model = model_io.load_model(MODEL)
    dev = inference.resolve_device(device)
    net = inference._fuse_batchnorm(model.network(dev)).to(memory_format=torch.channels_last)
    nz = 16
    slab = tiling.read_slices([vol], np.arange(0, nz + 4), model.normalization)
    x = torch.from_numpy(tiling.stack_context(slab, 5))
    with torch.inference_mode():
        net(x[:1].to(dev).contiguous(memory_format=torch.channels_last))
        t0 = time.perf_counter()
        for i in range(nz):
            net(x[i:i + 1].to(dev).contiguous(memory_format=torch.channels_last)).argmax(1).cpu()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) / nz * vol.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs=3, default=[256, 512, 512])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--format", choices=["npy", "zarr"], default="npy", help="the scan's file: .npy "
                    "(memory-mapped) or OME-Zarr (chunked); either streams")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.device, a.threads)
        return
    from damselfly.engine import Volume
    from damselfly.engine.core import phantoms
    from damselfly.engine.io import _files as io

    shape = tuple(a.size)
    nvox = int(np.prod(shape))
    results = {}
    with tempfile.TemporaryDirectory() as d:
        print(f"generating a {shape} casting phantom ...", flush=True)
        vol, _ = phantoms.casting(shape, seed=0)
        data = np.asarray(vol.data)
        # the same scan at a quarter of the depth: peak memory should not change with the depth
        for depth in (shape[0] // 4, shape[0]):
            path = Path(d) / f"scan_{depth}.{a.format}"
            io.write_volume(Volume(data[:depth]), path)
        ref = reference(data, a.device, a.threads)
        del vol, data
        for depth in (shape[0] // 4, shape[0]):
            cmd = [sys.executable, __file__, "--child", str(Path(d) / f"scan_{depth}.{a.format}"), "--device",
                   a.device]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[depth] = json.loads(out)
    r = results[shape[0]]
    mvs = nvox / r["seconds"] / 1e6
    vol_mib = nvox * 2 / 2 ** 20
    kind = "memory-mapped .npy" if a.format == "npy" else "OME-Zarr, chunks of 64^3"
    print(f"volume: {shape} = {nvox / 1e6:.1f} Mvoxel, {vol_mib:.0f} MiB (uint16, {kind})")
    print(f"device: {a.device}, threads: {a.threads or 'default'}")
    print(f"infer (streamed, tiles from the slice size (auto_tile), Gaussian blending): {r['seconds']:.1f} s = "
          f"{mvs:.2f} Mvoxel/s")
    print(f"  vs field reference ({FIELD_MVOX_S:.2f} Mvoxel/s, laptop GPU): {mvs / FIELD_MVOX_S:.1f} x")
    print(f"  vs plain whole-slice forward passes in this run ({nvox / ref / 1e6:.2f} Mvoxel/s): "
          f"{ref / r['seconds']:.2f} x")
    for depth, q in results.items():
        used = (q["peak_rss_kib"] - q["base_rss_kib"]) / 1024
        print(f"peak memory, {depth} slices ({depth * shape[1] * shape[2] * 2 / 2 ** 20:.0f} MiB on disk): "
              f"{q['peak_rss_kib'] / 1024:.0f} MiB RSS = {q['base_rss_kib'] / 1024:.0f} MiB Python + PyTorch "
              f"+ {used:.0f} MiB for the work (of which anonymous, i.e. not file pages of the memory maps: "
              f"{(q['anon_peak_kib'] - q['anon_base_kib']) / 1024:.0f} MiB); output: {q['output']}")
    small, full = results[shape[0] // 4], results[shape[0]]
    grow = (full["anon_peak_kib"] - full["anon_base_kib"]) / max(small["anon_peak_kib"] - small["anon_base_kib"], 1)
    print(f"anonymous work memory, full depth / quarter depth: {grow:.2f} (1 = independent of the volume's size)")
    if r["gpu_peak"]:
        print(f"GPU peak allocated: {r['gpu_peak'] / 2 ** 20:.0f} MiB")
    print(f"class voxels (every 8th slice): {r['class_counts_every_8th_slice']}")


if __name__ == "__main__":
    main()
