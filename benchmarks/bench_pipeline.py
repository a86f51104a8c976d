"""The inference pipeline without the network: ``infer``'s machinery around a 1x1 convolution, against
the bare I/O of the job (issue 34).

A 128 x 512 x 512 uint16 scan is memory-mapped from a ``.npy``; the default model's configuration
(2.5-D, 5 slices, 3 classes) runs with its network replaced by one 1x1 convolution (5 -> 3 channels), so
what is timed is reading, normalising, the context stack, tiling, the forward call, argmax and writing
uint8 labels into a memory-mapped output. The reference, in the same run: reading the uint16 scan slab by
slab and writing uint8 labels (the least any segmentation of it must move). R repeats give the spread.

    .venv/bin/python benchmarks/bench_pipeline.py [--size Z Y X] [--repeat R] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "models" / "casting.dfmodel"


def bare_io(scan: np.ndarray, out: np.ndarray, step: int = 16) -> None:
    for z in range(0, scan.shape[0], step):
        out[z:z + step] = (np.asarray(scan[z:z + step]) >> 8).astype(np.uint8)


def measure(size, repeat: int, device: str = "cpu") -> tuple[list, list, list, int]:
    """Seconds of the bare I/O, of ``infer``'s pipeline and of the device pipeline (the compiled passes
    of the CPU switched off), ``repeat`` times each in turn after a warm-up run, and the voxel count."""
    from damselfly.engine import Volume
    from damselfly.engine.segmentation import _inference as inference
    from damselfly.engine.segmentation._model import load_model

    model = load_model(MODEL)
    k, classes = model.in_channels, len(model.config["classes"])  # in_channels counts the context
    net = torch.nn.Conv2d(k, classes, 1).eval().to(inference.resolve_device(device))
    tile = max(size[1:])

    def timed(fn) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        scan = np.lib.format.open_memmap(Path(tmp) / "scan.npy", mode="w+", dtype=np.uint16, shape=tuple(size))
        for z in range(0, size[0], 16):
            scan[z:z + 16] = rng.integers(0, 65535, (min(16, size[0] - z), *size[1:]), dtype=np.uint16)
        scan.flush()
        del scan
        scan = np.load(Path(tmp) / "scan.npy", mmap_mode="r")
        vol = Volume(scan, name="scan")
        warm = np.zeros(scan.shape, np.uint8)  # a whole run first: kernels compiled, thread pools started
        inference.segment(model, [vol], warm, network=net, device=device, tile=tile)
        del warm
        def pipeline(out):
            inference.segment(model, [vol], out, network=net, device=device, tile=tile)

        def device_pipeline(out):
            fast = inference.applies
            inference.applies = lambda *a, **k: False  # the device pipeline (PyTorch), not the compiled passes
            try:
                pipeline(out)
            finally:
                inference.applies = fast

        bare, piped, general = [], [], []
        for _ in range(repeat):
            for times, fn in ((bare, lambda o: bare_io(scan, o)), (piped, pipeline), (general, device_pipeline)):
                out = [np.lib.format.open_memmap(Path(tmp) / "out.npy", mode="w+", dtype=np.uint8, shape=scan.shape)]
                times.append(timed(lambda: fn(out[0])))  # noqa: B023 - called at once
                out.clear()  # closes the memory map before the next run opens it again
        return bare, piped, general, scan.size


def report(size, device: str, bare, piped, general, voxels) -> None:
    ns_bare = [1e9 * t / voxels for t in bare]
    ns_pipe = [1e9 * t / voxels for t in piped]
    ns_gen = [1e9 * t / voxels for t in general]
    ratios = [p / b for p, b in zip(piped, bare)]
    print(f"{tuple(size)} uint16 memory-mapped, 1x1 network (5 -> 3 channels), device {device}, "
          f"threads {torch.get_num_threads()}:")
    print(f"  bare I/O (read uint16, write uint8): {min(ns_bare):.2f}-{max(ns_bare):.2f} ns a voxel")
    print(f"  infer's pipeline: {min(ns_pipe):.1f}-{max(ns_pipe):.1f} ns a voxel (the device pipeline in PyTorch: "
          f"normalise, context view, tiles, softmax, blending, argmax: {min(ns_gen):.1f}-{max(ns_gen):.1f})")
    print(f"  pipeline / bare I/O: {min(ratios):.1f}-{max(ratios):.1f} x over {len(bare)} runs, median "
          f"{float(np.median(ratios)):.1f} x (goal: <= 10 x): " + ", ".join(f"{r:.1f}" for r in ratios), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs=3, default=[128, 512, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (on the GPU both lines are the device pipeline)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report(args.size, args.device, *measure(args.size, args.repeat, args.device))


if __name__ == "__main__":
    main()
