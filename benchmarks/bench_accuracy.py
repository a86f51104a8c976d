"""Accuracy on the casting phantom: three painted slices, Dice on the unseen slices.

Multi-Otsu thresholds (the baseline), the default 2-D U-Net (2.5d input) and the MS-D network (depth
100, width 1, dilations 1..10) side by side, each network with the same number of batches (MS-D on
smaller patches: it is far slower per voxel on a CPU). Training and
inference seconds are printed too (same machine, same run: compare them as ratios).

    .venv/bin/python benchmarks/bench_accuracy.py [--size N] [--epochs E] [--steps S] [--with-3d]
    .venv/bin/python benchmarks/bench_accuracy.py --real ../shared/data [--no-net]

``--real``: three volumes, three painted slices each, every method with its defaults (the new user's
first try): the real fluorescence volume (``nuclei.tif``, truth ``nuclei_labels.tif > 0``, painted at
z = 15, 30, 45, scored on the slices between them), the casting phantom at 128^3 (scored on every
unpainted slice) and the nuclei under a bias field and noise. Rows: Otsu, the forest
(``train(arch="forest")``), ``interpolate_labels``, the default network, and what ``compare_methods``
picks from forest and network on a held-out painted slice.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from damselfly.engine import make_classes
from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.actions.processing import calibrate, threshold
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.core import phantoms
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation._training import dice_scores


def _nuclei(folder: str):
    from pathlib import Path

    from damselfly.engine.io import _files as io

    vol = io.read_volume(Path(folder) / "nuclei.tif")
    inst = np.asarray(io.read_volume(Path(folder) / "nuclei_labels.tif").data)
    return vol, vol.as_labels((inst > 0).astype(np.uint8) + 1, make_classes(["background", "nucleus"]))


#: The nuclei's painted slices: the scored slices lie between them (:func:`between`).
NUCLEI_PAINTED = [15, 30, 45]


def between(zs) -> np.ndarray:
    """The unpainted slices between the first and the last painted slice ``zs``."""
    return np.setdiff1d(np.arange(zs[0], zs[-1] + 1), zs)


def noisy(vol, seed: int = 0, bias: float = 0.5, noise: float = 0.5):
    """``vol`` under a smooth multiplicative bias field (gain from 1 - bias to 1 + bias across the volume)
    and Gaussian noise of ``noise`` times the volume's grey-value standard deviation (fixed seed)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    a = np.asarray(vol.data, np.float32)
    field = gaussian_filter(rng.standard_normal(a.shape).astype(np.float32), [s / 3 for s in a.shape])
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-9)
    out = a * (1 - bias + 2 * bias * field) + rng.normal(0, noise * a.std(), a.shape).astype(np.float32)
    return vol.with_data(out.astype(np.float32), name=f"{vol.name}_noisy")


def methods(name, vol, truth, zs, scored, by_grey, net: bool = True) -> list:
    """Dice per class on the ``scored`` slices and seconds of Otsu, the forest, interpolate_labels and the
    default network trained on the painted slices ``zs``, and compare_methods' pick. ``by_grey``: the
    class names from dark to bright, for Otsu."""
    from damselfly.engine.actions.compare import compare_methods, comparison
    from damselfly.engine.actions.interpolation import interpolate_labels

    ctx = RunContext(device="cpu")
    painted = sparse_labels(truth, slices=zs)
    cal = calibrate(vol)
    k = len(truth.classes)
    t = np.asarray(truth.data)[scored]
    rows = []

    def row(label, fn):
        t0 = time.perf_counter()
        seg = np.asarray(fn().data)
        rows.append((label, dice_scores(seg[scored], t, k), time.perf_counter() - t0))
        print(f"  {name}: {label} {rows[-1][1]} {rows[-1][2]:.1f} s", flush=True)

    def otsu():  # classes by grey value (names in that order), renamed to the truth's indices
        seg = threshold(cal, method="multiotsu", classes=k, names=by_grey)
        a = np.asarray(seg.data)
        return truth.with_data(sum((a == seg.class_index(n)) * truth.class_index(n) for n in by_grey).astype(np.uint8))

    row("Otsu" if k == 2 else "multi-Otsu", otsu)
    row("forest", lambda: seg_actions.infer(seg_actions.train(cal, painted, arch="forest", ctx=ctx), cal, ctx=ctx))
    row("interpolate_labels", lambda: interpolate_labels(cal, painted))
    if net:
        row("network (train defaults)", lambda: seg_actions.infer(seg_actions.train(cal, painted, ctx=ctx), cal,
                                                                  ctx=ctx))
        t0 = time.perf_counter()
        table = comparison(compare_methods(cal, painted, refit=False, ctx=ctx))
        pick = table.row("chosen", True)["method"]
        rows.append((f"compare_methods picks {pick} (held-out z={table.metadata['holdout']}: "
                     + ", ".join(f"{m} {d:.3f}" for m, d in zip(table["method"], table["mean_dice"])) + ")",
                     None, time.perf_counter() - t0))
    return rows


def real(folder: str, net: bool) -> None:
    """The issue-17 table: nuclei, the casting phantom and noisy nuclei, three painted slices each."""
    vol, truth = _nuclei(folder)
    zs = NUCLEI_PAINTED
    cast, cast_truth = phantoms.casting((128, 128, 128), seed=0)
    czs = [21, 64, 106]
    unseen = np.ones(128, bool)
    unseen[czs] = False
    nuc = ["background", "nucleus"]
    sets = [("nuclei", vol, truth, zs, between(zs), nuc),
            ("casting 128^3", cast, cast_truth, czs, unseen, ["air", "pore", "metal"]),
            ("nuclei + bias + noise", noisy(vol), truth, zs, between(zs), nuc)]
    results = [(name, truth.class_names, methods(name, v, truth, z, s, g, net)) for name, v, truth, z, s, g in sets]
    for name, classes, rows in results:
        print(f"\n{name}: Dice per class ({', '.join(classes)}) on the unpainted slices, and seconds")
        for label, d, sec in rows:
            if d is None:
                print(f"  {label}  [{sec:.0f} s]")
            else:
                print(f"  {label:28s} " + " ".join(f"{x:.3f}" for x in d) + f"  mean {np.nanmean(d):.3f}  {sec:6.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--with-3d", action="store_true", help="also a 3-D U-Net (slow on a CPU)")
    ap.add_argument("--no-msd", action="store_true", help="skip MS-D (about 9 minutes on 2 cores)")
    ap.add_argument("--real", metavar="FOLDER", help="nuclei (../shared/data), the casting phantom and noisy nuclei")
    ap.add_argument("--no-net", action="store_true", help="with --real: skip the network and compare_methods")
    a = ap.parse_args()
    if a.real:
        return real(a.real, not a.no_net)
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
    if a.no_msd:
        runs = runs[:1]
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
