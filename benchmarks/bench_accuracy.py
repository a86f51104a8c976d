"""Accuracy on the casting phantom: three painted slices, Dice on the unseen slices.

Multi-Otsu thresholds (the baseline), the default 2-D U-Net (2.5d input) and the MS-D network (depth
100, width 1, dilations 1..10) side by side, each network with the same number of batches (MS-D on
smaller patches: it is far slower per voxel on a CPU). Training and
inference seconds are printed too (same machine, same run: compare them as ratios).

    .venv/bin/python benchmarks/bench_accuracy.py [--size N] [--epochs E] [--steps S] [--with-3d]
    .venv/bin/python benchmarks/bench_accuracy.py --nuclei ../shared/data [--no-net]

``--nuclei``: the real fluorescence volume (``nuclei.tif``, truth ``nuclei_labels.tif > 0``), painted
at z = 15, 30, 45: Dice of the nuclei on the slices between the first and the last painted one, for
Otsu, ``interpolate_labels`` and ``train`` with its defaults (the new user's first try).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from damselfly.engine import make_classes, phantoms
from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.actions.processing import calibrate, threshold
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.context import RunContext
from damselfly.engine.training import dice_scores


def nuclei(folder: str, net: bool) -> None:
    from pathlib import Path

    from damselfly.engine import io
    from damselfly.engine.actions.interpolation import interpolate_labels

    ctx = RunContext(device="cpu")
    vol = io.read_volume(Path(folder) / "nuclei.tif")
    inst = np.asarray(io.read_volume(Path(folder) / "nuclei_labels.tif").data)
    truth = vol.as_labels((inst > 0).astype(np.uint8) + 1, make_classes(["background", "nucleus"]))
    zs = [15, 30, 45]
    painted = sparse_labels(truth, slices=zs)
    between = np.zeros(vol.shape[0], bool)
    between[zs[0]:zs[-1] + 1] = True
    between[zs] = False
    t = np.asarray(truth.data)[between]
    rows = []
    t0 = time.perf_counter()
    rows.append(("Otsu", np.asarray(threshold(vol).data), time.perf_counter() - t0))
    t0 = time.perf_counter()
    rows.append(("interpolate_labels", np.asarray(interpolate_labels(vol, painted).data), time.perf_counter() - t0))
    if net:
        t0 = time.perf_counter()
        cal = calibrate(vol)
        model = seg_actions.train(cal, painted, ctx=ctx)
        rows.append(("train (defaults) + infer", np.asarray(seg_actions.infer(model, cal, ctx=ctx).data),
                     time.perf_counter() - t0))
    print(f"nuclei {vol.shape}, painted z = {zs}; Dice on the {between.sum()} slices in between")
    for label, seg, sec in rows:
        print(f"{label:28s} nucleus {dice_scores(seg[between], t, 2)[1]:.3f}  background "
              f"{dice_scores(seg[between], t, 2)[0]:.3f}  {sec:6.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--with-3d", action="store_true", help="also a 3-D U-Net (slow on a CPU)")
    ap.add_argument("--nuclei", metavar="FOLDER", help="the real volume instead (../shared/data)")
    ap.add_argument("--no-net", action="store_true", help="with --nuclei: skip the network")
    a = ap.parse_args()
    if a.nuclei:
        return nuclei(a.nuclei, not a.no_net)
    ctx = RunContext(device="cpu")
    n = a.size
    vol, truth = phantoms.casting((n, n, n), seed=a.seed)
    cal = calibrate(vol)
    zs = [n // 6, n // 2, 5 * n // 6]
    painted = sparse_labels(truth, slices=zs)
    unseen = np.ones(n, bool)
    unseen[zs] = False
    t = np.asarray(truth.data)[unseen]
    names = truth.class_names
    rows = []

    t0 = time.perf_counter()
    otsu = threshold(cal, method="multiotsu", classes=3, names=["air", "pore", "metal"])
    o = np.zeros(truth.shape, np.uint8)
    for name in names:
        o[np.asarray(otsu.data) == otsu.class_index(name)] = truth.class_index(name)
    rows.append(("multi-Otsu", dice_scores(o[unseen], t, 3), 0.0, time.perf_counter() - t0))

    runs = [("U-Net 2.5d (16 ch, 4 levels)", dict(arch="unet", input="2.5d", patch=64)),
            # MS-D's width-one layers are ~50x slower per voxel than the U-Net in plain PyTorch on a CPU
            # (no custom kernels): same number of batches, smaller patches
            ("MS-D 2.5d (100 layers, width 1)", dict(arch="msd", input="2.5d", patch=48))]
    if a.with_3d:
        runs.append(("3-D U-Net (16 ch, 4 levels)", dict(arch="unet3d", input="3d", patch=32)))
    for label, kw in runs:
        t0 = time.perf_counter()
        model = seg_actions.train(cal, painted, epochs=a.epochs, steps=a.steps, batch=8, seed=a.seed, **kw, ctx=ctx)
        t1 = time.perf_counter()
        seg = np.asarray(seg_actions.infer(model, cal, ctx=ctx).data)
        t2 = time.perf_counter()
        rows.append((label, dice_scores(seg[unseen], t, 3), t1 - t0, t2 - t1))
        print(f"  {label}: best epoch {model.config['training']['best_epoch']} of "
              f"{model.config['training']['epochs_run']}", flush=True)

    print(f"\ncasting phantom {n}^3 (seed {a.seed}); painted slices {zs}; Dice on the {unseen.sum()} unseen "
          f"slices; training budget {a.epochs} epochs x {a.steps} batches of 8")
    print(f"{'method':34s}" + "".join(f"{c:>8s}" for c in names) + f"{'train s':>9s}{'infer s':>9s}")
    for label, d, tt, ti in rows:
        print(f"{label:34s}" + "".join(f"{x:8.3f}" for x in d) + f"{tt:9.1f}{ti:9.1f}")
    base = rows[0][1][names.index("pore")]
    for label, d, _, _ in rows[1:]:
        print(f"pore Dice, {label} / multi-Otsu: {d[names.index('pore')] / max(base, 1e-9):.0f} x")


if __name__ == "__main__":
    main()
