"""The default Train (``arch="auto"``) as a new user meets it: calibrate, 48 small dabs, Train.

    .venv/bin/python benchmarks/bench_train_default.py [--data ../shared/data] [--seeds 0,1,2]

Two scans, each with 48 interior dabs (brush 3, as the app paints them: 21 voxels) of every class in
turn on six non-adjacent z-slices, drawn with each seed:

- the grains phantom (``phantoms.grains``: ice grains and air, 33 x 100 x 100, no spacing in the file),
  the shape of the real ice scan of issue 30; scored against Otsu's threshold (the issue's yardstick on a
  bimodal scan) and against the phantom's truth;
- the real fluorescence nuclei (``nuclei.tif``, 60 x 256 x 256; truth ``nuclei_labels.tif > 0``), with
  ``--data``; scored against the truth.

Rows: the default ``train`` (what it kept, its held-out Dice), the forest alone (the reference: the
ratio says what choosing costs), and Otsu. Seconds are this machine's; compare them as ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from damselfly.engine.actions.processing import calibrate, threshold
from damselfly.engine.actions.segmentation import infer, train
from damselfly.engine.core import phantoms
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation._training import dice_scores

SLICES = {"grains": (3, 9, 15, 21, 27, 31), "nuclei": (20, 26, 32, 38, 44, 50)}  # nuclei lie in z 20..56
DABS = 48
BRUSH = 3


def dabs(truth, slices, n: int = DABS, seed: int = 0):
    """``n`` brush-``BRUSH`` dabs, each well inside its class, the classes in turn over ``slices``."""
    rng = np.random.default_rng(seed)
    t = np.asarray(truth.data)
    k = len(truth.classes)
    rad = BRUSH - 1
    rr, cc = np.ogrid[-rad:rad + 1, -rad:rad + 1]
    disc = rr * rr + cc * cc <= rad * rad + rad
    out = np.zeros(t.shape, np.uint8)
    for i in range(n):
        z, cls = slices[(i // k) % len(slices)], i % k + 1
        ys, xs = np.nonzero(ndimage.binary_erosion(t[z] == cls, iterations=rad + 1))
        j = rng.integers(len(ys))
        y, x = ys[j], xs[j]
        out[z, y - rad:y + rad + 1, x - rad:x + rad + 1][disc] = cls
    return truth.with_data(out, name="painted")


def dice_all(seg, ref, k: int) -> list[float]:
    return dice_scores(np.asarray(seg.data), np.asarray(ref.data), k)


def case(name, vol, truth, seed: int, ctx) -> None:
    cal = calibrate(vol)
    painted = dabs(truth, SLICES[name], seed=seed)
    k = len(truth.classes)
    otsu = threshold(cal, method="otsu", names=truth.class_names)
    t0 = time.perf_counter()
    model = train(cal, painted, ctx=ctx)
    t_auto = time.perf_counter() - t0
    seg = infer(model, cal, ctx=ctx)
    t1 = time.perf_counter()
    forest = train(cal, painted, arch="forest", ctx=ctx)
    t_forest = time.perf_counter() - t1
    fseg = infer(forest, cal, ctx=ctx)
    cols = model.config["comparison"]["columns"]
    n, scored = len(model.config["comparison"]["holdout"]), model.config["comparison"].get("folds_scored")
    held = "; ".join(f"{m} " + ("not trained" if scored and scored[i] == 0 else f"{cols['mean_dice'][i]:.3f}"
                                + (f" ({scored[i]} of {n} folds)" if scored and scored[i] < n else ""))
                     for i, m in enumerate(cols["method"]))
    names = truth.class_names
    print(f"\n{name}, seed {seed}: {int(np.count_nonzero(painted.data))} painted voxels on {len(SLICES[name])} "
          f"slices; held-out mean Dice: {held}; kept: {model.config['arch']}")
    print(f"  {'method':22s} {'seconds':>8s}  " + "  ".join(f"{'vs truth ' + n:>16s}" for n in names)
          + "  " + "  ".join(f"{'vs Otsu ' + n:>15s}" for n in names))
    for label, s, secs in ((f"train() -> {model.config['arch']}", seg, t_auto), ("forest alone", fseg, t_forest),
                           ("Otsu", otsu, float("nan"))):
        dt, do = dice_all(s, truth, k), dice_all(s, otsu, k)
        print(f"  {label:22s} {secs:8.1f}  " + "  ".join(f"{v:16.3f}" for v in dt) + "  "
              + "  ".join(f"{v:15.3f}" for v in do))
    print(f"  default train / forest alone: {t_auto / t_forest:.1f} x the time")


def _nuclei(folder: str):
    from pathlib import Path

    from damselfly.engine import make_classes
    from damselfly.engine.io import _files as io

    vol = io.read_volume(Path(folder) / "nuclei.tif")
    inst = np.asarray(io.read_volume(Path(folder) / "nuclei_labels.tif").data)
    return vol, vol.as_labels((inst > 0).astype(np.uint8) + 1, make_classes(["background", "nucleus"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="the folder of nuclei.tif and nuclei_labels.tif (../shared/data)")
    ap.add_argument("--seeds", default="0,1,2", help="dab draws, comma separated")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    ctx = RunContext(device=args.device)
    seeds = [int(s) for s in args.seeds.split(",")]
    vol, truth = phantoms.grains((33, 100, 100), seed=0)
    for seed in seeds:
        case("grains", vol, truth, seed, ctx)
    if args.data:
        vol, truth = _nuclei(args.data)
        for seed in seeds:
            case("nuclei", vol, truth, seed, ctx)


if __name__ == "__main__":
    main()
