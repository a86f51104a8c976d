"""This tree against an older commit on the real data: the same weights, labels, probabilities and
enhancement, and how long a training epoch takes (issue 34's "labels equal today's").

The old commit is checked out aside (``git worktree``) and its ``engine/`` and ``macros/`` are put first
on ``PYTHONPATH`` as the ``damselfly`` package; the same child script then runs under each tree:

- U-Nets trained on the painted slices of the nuclei (z = 15, 30, 45): 2.5-D (2 epochs of 10 steps) and
  3-D (1 epoch of 5): the SHA-256 of their weights;
- with each model: labels, labels in a mask, class probabilities and uncertainty of the whole volume;
- a denoiser trained on the tomogram (2 epochs of 10 steps) and its ``enhance``d tomogram;
- seconds an epoch of 50 steps: the nuclei's U-Net and the tomogram's denoiser (``--runs`` runs, the
  trees alternating, and which goes first too);
- seconds of inference with small U-Nets (1 epoch) on a 64 x 256 x 256 casting phantom: 2.5-D in blended
  tiles of 128, masked, a 3-D U-Net in tiles of 64, probabilities in tiles of 128 (the network's own
  work dominates: this is the pipeline's share in real use).

    .venv/bin/python benchmarks/bench_equal.py --old 97eddcf [--data ../shared/data] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def child(out: Path, data: Path, timing: bool) -> None:
    from damselfly.engine.actions.segmentation import sparse_labels
    from damselfly.engine.core.data import make_classes
    from damselfly.engine.io import _files as io
    from damselfly.engine.restoration import _enhance as R
    from damselfly.engine.segmentation import _inference as inf
    from damselfly.engine.segmentation import _training as training

    vol = io.read_volume(data / "nuclei.tif")
    inst = np.asarray(io.read_volume(data / "nuclei_labels.tif").data)
    truth = vol.as_labels((inst > 0).astype(np.uint8) + 1, make_classes(["background", "nucleus"]))
    lab = sparse_labels(truth, slices=[15, 30, 45])
    tomo = io.read_volume(data / "tomo.tif")
    if timing:
        (out / "cases.txt").write_text(" ".join(f"{v}" for v in cases()))
        t = time.perf_counter()
        training.train([vol], lab, arch="unet", device="cpu", schedule=training.Schedule(epochs=2, steps=50, patience=99))
        seg = (time.perf_counter() - t) / 2
        t = time.perf_counter()
        R.train("denoise", [tomo], [tomo], device="cpu",
                schedule=training.Schedule(epochs=2, steps=50, lr=2e-3, average=0.99, patience=99))
        (out / "epochs.txt").write_text(f"{seg} {(time.perf_counter() - t) / 2}")
        return
    digest = {}
    models = {"2.5d": training.train([vol], lab, arch="unet", device="cpu", schedule=training.Schedule(epochs=2, steps=10)),
              "3d": training.train([vol], lab, arch="unet3d", input="3d", hparams={"levels": 3}, device="cpu",
                                   schedule=training.Schedule(epochs=1, steps=5, batch=2, patch=32))}
    mask = np.asarray(truth.data) > 0
    mask[:, :40] = False
    for name, m in models.items():
        kw = {"tile": 64} if name == "3d" else {}
        seg, masked = np.zeros(vol.shape, np.uint8), np.zeros(vol.shape, np.uint8)
        p, u = np.zeros(vol.shape + (2,), np.float32), np.zeros(vol.shape, np.float32)
        inf.segment(m, [vol], seg, device="cpu", **kw)
        inf.segment(m, [vol], masked, mask=mask, device="cpu", **kw)
        inf.probabilities(m, [vol], p, device="cpu", **kw)
        inf.uncertainty(m, [vol], u, device="cpu", **kw)
        np.savez(out / f"{name}.npz", seg=seg, masked=masked, p=p, u=u)
        digest[name] = m
    den = R.train("denoise", [tomo], [tomo], device="cpu",
                  schedule=training.Schedule(epochs=2, steps=10, lr=2e-3, average=0.99))
    e = np.zeros(tomo.shape, np.float32)
    R.enhance(den, tomo, e, device="cpu")
    np.save(out / "enhanced.npy", e)
    digest["denoiser"] = den
    (out / "weights.txt").write_text("\n".join(
        f"{k} " + hashlib.sha256(b"".join(v.numpy().tobytes() for v in m.state.values())).hexdigest()
        for k, m in digest.items()))


CASES = ("2.5-D, blended tiles of 128", "2.5-D, masked", "3-D, tiles of 64", "probabilities, tiles of 128")


def cases() -> list[float]:
    """Seconds of each of :data:`CASES` (see the module docstring)."""
    from damselfly.engine.actions.segmentation import sparse_labels
    from damselfly.engine.core import phantoms
    from damselfly.engine.segmentation import _inference as inf
    from damselfly.engine.segmentation import _training as training

    vol, truth = phantoms.casting((64, 256, 256), seed=3)
    lab = sparse_labels(truth, slices=[8, 30, 50])
    small = training.Schedule(epochs=1, steps=2, batch=2, patch=32)
    m2 = training.train([vol], lab, arch="unet", device="cpu", schedule=small)
    m3 = training.train([vol], lab, arch="unet3d", input="3d", hparams={"levels": 3}, device="cpu", schedule=small)
    mask = np.asarray(truth.data) > 1
    runs = (lambda o: inf.segment(m2, [vol], o, device="cpu", tile=128),
            lambda o: inf.segment(m2, [vol], o, device="cpu", tile=256, mask=mask),
            lambda o: inf.segment(m3, [vol], o, device="cpu", tile=64),
            lambda o: inf.probabilities(m2, [vol], np.zeros(vol.shape + (3,), np.float32), device="cpu", tile=128))
    seconds = []
    for run in runs:
        t = time.perf_counter()
        run(np.zeros(vol.shape, np.uint8))
        seconds.append(time.perf_counter() - t)
    return seconds


def run_in(tree_pkg: str | None, out: Path, data: str, timing: bool = False) -> None:
    env = dict(os.environ)
    if tree_pkg:
        env["PYTHONPATH"] = tree_pkg
    cmd = [sys.executable, __file__, "--child", str(out), "--data", data] + (["--timing"] if timing else [])
    subprocess.run(cmd, env=env, check=True, cwd=tempfile.gettempdir(), capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", help="the commit to compare with")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--timing", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(Path(a.child), Path(a.data), a.timing)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tmp / "tree"), a.old], check=True)
        try:
            (tmp / "pkg" / "damselfly").mkdir(parents=True)
            for part in ("engine", "macros"):
                (tmp / "pkg" / "damselfly" / part).symlink_to(tmp / "tree" / part)
            outs = {"old": tmp / "old", "new": tmp / "new"}
            for name, pkg in (("old", str(tmp / "pkg")), ("new", None)):
                outs[name].mkdir()
                run_in(pkg, outs[name], a.data)
            w = [dict(line.split() for line in (outs[k] / "weights.txt").read_text().splitlines()) for k in ("old", "new")]
            print(f"this tree against {a.old}, real data in {a.data}:")
            for k in w[0]:
                print(f"  weights {k:9s}: {'the same' if w[0][k] == w[1][k] else 'DIFFERENT'} ({w[1][k][:16]})")
            for name in ("2.5d", "3d"):
                o, n = np.load(outs["old"] / f"{name}.npz"), np.load(outs["new"] / f"{name}.npz")
                top = np.sort(o["p"], -1)
                ties = int((top[..., -1] - top[..., -2] < 1e-5).sum())
                print(f"  {name}: labels differ on {int((o['seg'] != n['seg']).sum())} of {o['seg'].size} voxels "
                      f"({ties} near ties), masked on {int((o['masked'] != n['masked']).sum())}; probabilities max "
                      f"|diff| {float(np.abs(o['p'] - n['p']).max()):.2g}, uncertainty {float(np.abs(o['u'] - n['u']).max()):.2g}")
            e0, e1 = np.load(outs["old"] / "enhanced.npy"), np.load(outs["new"] / "enhanced.npy")
            print(f"  enhanced tomogram: max |diff| {float(np.abs(e0 - e1).max()):.2g}")
            times = {"old": [], "new": []}
            trees = [("old", str(tmp / "pkg")), ("new", None)]
            for r in range(a.runs):  # which tree goes first alternates, so a drift of the machine's speed is shared
                for name, pkg in (trees if r % 2 == 0 else trees[::-1]):
                    run_in(pkg, outs[name], a.data, timing=True)
                    times[name].append([float(v) for v in (outs[name] / "epochs.txt").read_text().split()]
                                       + [float(v) for v in (outs[name] / "cases.txt").read_text().split()])
            for i, what in enumerate(("nuclei U-Net, an epoch", "tomogram denoiser, an epoch") + CASES):
                o, n = ([t[i] for t in times[k]] for k in ("old", "new"))
                print(f"  {what}: {min(n):.2f}-{max(n):.2f} s (old {min(o):.2f}-{max(o):.2f}), {a.runs} runs each")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "tree")], check=False)


if __name__ == "__main__":
    main()
