"""The training batch against the steps an epoch: what accuracy costs (issue 34, "batch sized to the device").

On a GPU a training step of our U-Net is bound by launching its kernels, not by its arithmetic
(``bench_roofline.py``): 32 patches a step should take about the wall time of 8, so 32 x 13 (the same
patches an epoch as the default 8 x 50, a quarter of the steps) would train ~4x faster an epoch there. Whether
it trains *as well* does not depend on the device: this script measures that half on the CPU, on the
real nuclei (``train(arch="unet")``, painted z = 15, 30, 45, Dice on the slices between), seed by seed. On
the CPU an epoch costs about the same either way (the same patches go through the network).
``bench_gpu.py --only batch`` measures the other half, the time, on a GPU.

    .venv/bin/python benchmarks/bench_batch.py --data ../shared/data [--seeds 0,1,2] [--configs 8x50,32x13]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from bench_accuracy import NUCLEI_PAINTED, _nuclei, between

from damselfly.engine.actions import segmentation as S
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation._training import dice_scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--configs", default="8x50,32x13", help="batch x steps, comma-separated")
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args()
    vol, truth = _nuclei(a.data)
    scored = between(NUCLEI_PAINTED)
    painted = S.sparse_labels(truth, slices=NUCLEI_PAINTED)
    t_true = np.asarray(truth.data)[scored]
    ctx = RunContext(device="cpu")
    print(f"U-Net on the nuclei {vol.shape}, painted z = {NUCLEI_PAINTED}; Dice (background, nucleus) on z = "
          f"{scored[0]}..{scored[-1]}", flush=True)
    rows: dict[str, list] = {}
    for seed in (int(s) for s in a.seeds.split(",")):
        for cfg in a.configs.split(","):
            b, st = (int(v) for v in cfg.split("x"))
            t0 = time.perf_counter()
            m = S.train(vol, painted, arch="unet", batch=b, steps=st, epochs=a.epochs, seed=seed, ctx=ctx)
            sec = time.perf_counter() - t0
            d = dice_scores(np.asarray(S.infer(m, vol, ctx=ctx).data)[scored], t_true, 2)
            tr = m.config["training"]
            rows.setdefault(cfg, []).append(d[1])
            print(f"  seed {seed}, batch {b:3d} x {st:3d} steps: Dice {d[0]:.3f} {d[1]:.3f}; {tr['epochs_run']:2d} epochs "
                  f"(best {tr['best_epoch']}), {b * st * tr['epochs_run']:6d} patches, {sec:6.1f} s", flush=True)
    print("nucleus Dice over the seeds: " + "; ".join(f"{c}: {min(v):.3f}-{max(v):.3f} (mean {np.mean(v):.3f})"
                                                 for c, v in rows.items()), flush=True)


if __name__ == "__main__":
    main()
