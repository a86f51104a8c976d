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


def main() -> None:
    from damselfly.engine import Volume
    from damselfly.engine.segmentation import _inference as inference
    from damselfly.engine.segmentation._model import load_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs=3, default=[128, 512, 512])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(MODEL)
    k, classes = model.in_channels, len(model.config["classes"])  # in_channels counts the context
    net = torch.nn.Conv2d(k, classes, 1).eval()
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        scan = np.lib.format.open_memmap(Path(tmp) / "scan.npy", mode="w+", dtype=np.uint16, shape=tuple(args.size))
        for z in range(0, args.size[0], 16):
            scan[z:z + 16] = rng.integers(0, 65535, (min(16, args.size[0] - z), *args.size[1:]), dtype=np.uint16)
        scan.flush()
        del scan
        scan = np.load(Path(tmp) / "scan.npy", mmap_mode="r")
        vol = Volume(scan, name="scan")
        voxels = scan.size
        warm = np.zeros(scan.shape, np.uint8)  # a whole run first: kernels compiled, thread pools started
        inference.segment(model, [vol], warm, network=net, device="cpu", tile=max(args.size[1:]))
        del warm
        bare, piped, general = [], [], []
        for _ in range(args.repeat):
            out = np.lib.format.open_memmap(Path(tmp) / "bare.npy", mode="w+", dtype=np.uint8, shape=scan.shape)
            t0 = time.perf_counter()
            bare_io(scan, out)
            bare.append(time.perf_counter() - t0)
            del out
            out = np.lib.format.open_memmap(Path(tmp) / "labels.npy", mode="w+", dtype=np.uint8, shape=scan.shape)
            t0 = time.perf_counter()
            inference.segment(model, [vol], out, network=net, device="cpu", tile=max(args.size[1:]))
            piped.append(time.perf_counter() - t0)
            del out
            out = np.lib.format.open_memmap(Path(tmp) / "general.npy", mode="w+", dtype=np.uint8, shape=scan.shape)
            fast = inference.applies
            inference.applies = inference.slab_labels = lambda *a, **k: None  # the general path, as before
            t0 = time.perf_counter()
            try:
                inference.segment(model, [vol], out, network=net, device="cpu", tile=max(args.size[1:]))
            finally:
                inference.applies = fast
                from damselfly.engine.segmentation._slab_labels import slab_labels

                inference.slab_labels = slab_labels
            general.append(time.perf_counter() - t0)
            del out
    ns_bare = [1e9 * t / voxels for t in bare]
    ns_pipe = [1e9 * t / voxels for t in piped]
    ratios = [p / b for p, b in zip(piped, bare)]
    print(f"{tuple(args.size)} uint16 memory-mapped, 1x1 network ({k} -> {classes} channels), "
          f"threads {torch.get_num_threads()}:")
    print(f"  bare I/O (read uint16, write uint8): {min(ns_bare):.2f}-{max(ns_bare):.2f} ns a voxel")
    ns_gen = [1e9 * t / voxels for t in general]
    print(f"  infer's pipeline: {min(ns_pipe):.1f}-{max(ns_pipe):.1f} ns a voxel (the general path, normalise, "
          f"context stack, tiles, softmax, blending, argmax: {min(ns_gen):.1f}-{max(ns_gen):.1f})")
    print(f"  pipeline / bare I/O: {min(ratios):.1f}-{max(ratios):.1f} x over {args.repeat} runs (goal: <= 10 x)")


if __name__ == "__main__":
    main()
