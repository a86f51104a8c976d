"""GPU figures: inference and enhancement throughput, training time and mixed precision, each against the
same machine's CPU measured in the same run (run it where PyTorch sees a CUDA GPU).

    python benchmarks/bench_gpu.py --data ../shared/data [--only infer,enhance,denoise,train,tomo,precision,
                                                                  profile,pipeline,compile,compile_train,seeds,batch] [--quick]

Sections (``--only`` picks some; ``--quick``: tiny sizes on the CPU, to check the script itself):

infer
    The default model (``examples/models/casting.dfmodel``, 2-D U-Net, 2.5d) on a casting phantom of
    256 x 512 x 512 (uint16, memory-mapped ``.npy``) through ``infer``: on the GPU with its bf16 autocast
    (the default), and with autocast off (fp32), with the fraction of voxels whose label agrees; on the
    CPU over the first 32 slices. Mvoxel/s and the GPU / CPU ratio.
denoise
    ``train_denoiser`` with its defaults on the 64 x 128 x 128 casting phantom under Gaussian noise of 15 %
    of the range (``bench_restoration.py``'s row 1): seconds, epochs and PSNR on the GPU, for 2.5d and 3d
    input; seconds per epoch on the CPU (2 epochs); ``enhance`` on a 256 x 512 x 512 float32 volume on
    the GPU against the CPU over its first 16 slices.
enhance
    ``enhance`` alone (the goal's figures, cheaply): the 2.5d and the 3-D denoiser after one short epoch,
    over a memory-mapped 256 x 512 x 512 float32 scan; Mvoxel/s on the GPU against the CPU's first 16 slices.
train
    ``train(arch="unet")`` on the real nuclei (``nuclei.tif``, truth ``nuclei_labels.tif > 0``, painted
    z = 15, 30, 45; ``bench_accuracy.py --real``): seconds, epochs and Dice on the slices between on the
    GPU with bf16 autocast (the default) and with autocast off; seconds per epoch on the CPU. Then the
    default ``train`` (``arch="auto"``: the forest and a U-Net per held-out fold) on the GPU in all.
tomo
    ``train_denoiser`` with its defaults on the real cryo-electron tomogram (``tomo.tif``): seconds,
    epochs and the noise estimate before and after.
precision
    One denoiser each for the phantom and the tomogram trained on the GPU, then ``enhance`` three ways:
    bf16 autocast (as ``infer`` runs), fp32 with TF32 convolutions (PyTorch's default), strict fp32; and
    the phantom's denoiser trained with TF32 off. PSNR (phantom) and noise estimate (tomogram).
profile
    PyTorch's profiler over one epoch of ``train(arch="unet")`` (nuclei) and of ``train_denoiser`` (phantom) on the
    GPU: wall time against the GPU's busy time, and the operators taking the most CPU and GPU time.
pipeline
    ``bench_pipeline.py`` on the device: ``infer``'s streaming around a 1x1 network (read ahead into
    pinned memory, normalise, context, tiles, argmax on the device, write behind) against the bare I/O.
compile
    ``infer`` of the default model eager, through ``torch.compile`` and ``torch.compile(mode=
    "reduce-overhead")`` (CUDA graphs); Mvoxel/s and agreement of the labels.
compile_train
    The same three for the training steps (``training.step_network``): the U-Net on the nuclei and the
    2.5d denoiser on the phantom, 6 epochs each; seconds an epoch after the first, Dice and PSNR.
seeds
    The open finding of the 2.5d denoiser's lower PSNR on the GPU: seeds 0-2, then cuDNN off, then
    cuDNN deterministic.
batch
    ``train`` on the nuclei with 8 x 50, 32 x 13 and 32 x 25 (batch x steps): time, Dice and the GPU's busy
    share of one epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import NUCLEI_PAINTED, _nuclei, between  # noqa: E402
from bench_restoration import BIG, LEVEL, noise_estimate, noisy_phantom, scores  # noqa: E402

from damselfly.engine import Volume
from damselfly.engine.actions import enhancement as E  # noqa: E402
from damselfly.engine.actions import segmentation as S  # noqa: E402
from damselfly.engine.core import phantoms  # noqa: E402
from damselfly.engine.core.context import RunContext  # noqa: E402
from damselfly.engine.io import _files as io
from damselfly.engine.segmentation import _model as model_io  # noqa: E402
from damselfly.engine.segmentation._training import dice_scores  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "models" / "casting.dfmodel"


@contextlib.contextmanager
def autocast_off():
    """Every ``torch.autocast`` in the engine disabled: the network runs in fp32 on the GPU too."""
    real = torch.autocast

    class Off(real):
        def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
            super().__init__(device_type, dtype=dtype, enabled=False)

    torch.autocast = Off
    try:
        yield
    finally:
        torch.autocast = real


@contextlib.contextmanager
def tf32(on: bool):
    """TF32 (10-bit mantissa) in cuDNN convolutions and matrix products on or off."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def compile_modes(quick: bool):
    """``(mode, wrap)`` for eager (``wrap`` None) and each ``torch.compile`` mode measured: ``wrap(net)`` is
    the network compiled that way. ``--quick`` checks the script, not the compiler: PyTorch's "eager"
    backend needs no C++ compiler."""
    yield "eager", None
    for mode in ("default",) if quick else ("default", "reduce-overhead"):
        kw = {"backend": "eager"} if quick else {"mode": mode}
        yield mode, lambda net, kw=kw: torch.compile(net, dynamic=False, **kw)


@contextlib.contextmanager
def swapped(module, name: str, new):
    """``module.name`` replaced by ``new`` inside the block (left alone for ``None``), restored after."""
    old = getattr(module, name)
    if new is not None:
        setattr(module, name, new)
    try:
        yield
    finally:
        setattr(module, name, old)


def budget(quick: bool, cpu_reference: bool = False) -> dict:
    """A trainer's budget: its defaults, or 2 epochs for a CPU reference (seconds an epoch); with
    ``quick``, 2 epochs of 3 steps of 2 patches of 32 either way."""
    return {"epochs": 2, "steps": 3, "batch": 2, "patch": 32} if quick else ({"epochs": 2} if cpu_reference else {})


class Timer:
    """Seconds of a block, the GPU synchronised, and the GPU's peak memory in it."""

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() / 2 ** 30
        else:
            self.peak = 0.0
        self.s = time.perf_counter() - self.t0


def infer(gpu: RunContext, cpu: RunContext, shape, tmp: Path) -> None:
    vol, _ = phantoms.casting(shape, seed=0)
    path = tmp / "scan.npy"
    io.write_volume(vol, path)
    del vol
    scan = io.read_volume(path, mmap=True)
    model = model_io.load_model(MODEL)
    nvox = int(np.prod(shape))
    S.infer(model, scan.with_data(np.asarray(scan.data[:8])), ctx=gpu)  # warm-up: CUDA context, kernels
    with Timer() as t:
        lab = np.asarray(S.infer(model, scan, ctx=gpu).data)
    with autocast_off(), Timer() as t32:
        lab32 = np.asarray(S.infer(model, scan, ctx=gpu).data)
    n = min(32, shape[0])
    with Timer() as tc:
        labc = np.asarray(S.infer(model, scan.with_data(np.asarray(scan.data[:n])), ctx=cpu).data)
    mv, mv32, mvc = nvox / t.s / 1e6, nvox / t32.s / 1e6, n * shape[1] * shape[2] / tc.s / 1e6
    print(f"\ninfer, default model, {shape} uint16 memory-mapped ({nvox / 1e6:.0f} Mvoxel)")
    print(f"  GPU bf16 autocast (default): {t.s:6.1f} s  {mv:7.2f} Mvoxel/s  peak {t.peak:.1f} GiB")
    print(f"  GPU fp32 (autocast off):     {t32.s:6.1f} s  {mv32:7.2f} Mvoxel/s  peak {t32.peak:.1f} GiB  "
          f"bf16 / fp32 speed {mv / mv32:.2f} x; labels agree on {np.mean(lab == lab32):.5f} of the voxels")
    print(f"  CPU ({torch.get_num_threads()} threads), first {n} slices: {tc.s:6.1f} s  {mvc:7.2f} Mvoxel/s; "
          f"GPU / CPU {mv / mvc:.1f} x; CPU labels agree with the GPU's on {np.mean(labc == lab[:n]):.5f}", flush=True)


def denoise(gpu: RunContext, cpu: RunContext, shape, big, quick: bool) -> None:
    clean_v, _, clean, noisy, _ = noisy_phantom(LEVEL, shape=shape)
    noisy_v = clean_v.with_data(noisy, name="noisy")
    print(f"\ntrain_denoiser, defaults, phantom {shape} at {LEVEL:.0%} noise (noisy PSNR {scores(clean, noisy)[0]:.2f} dB)")
    models = {}
    for inp in ("2.5d", "3d"):
        with Timer() as t:
            m = models[inp] = E.train_denoiser(noisy_v, input=inp, **budget(quick), ctx=gpu)
        tr = m.config["training"]
        out = np.asarray(E.enhance(m, noisy_v, ctx=gpu).data)
        per = t.s / tr["epochs_run"]
        print(f"  GPU {inp:4s}: {t.s:6.1f} s, {tr['epochs_run']} epochs (best {tr['best_epoch']}), {per:.2f} s/epoch, "
              f"PSNR {scores(clean, out)[0]:.2f} dB, peak {t.peak:.1f} GiB", flush=True)
        with Timer() as tc:
            E.train_denoiser(noisy_v, input=inp, **budget(quick, cpu_reference=True), ctx=cpu)
        print(f"  CPU {inp:4s}: {tc.s / 2:.2f} s/epoch (2 epochs); GPU / CPU speed {tc.s / 2 / per:.1f} x", flush=True)
    enhance_speed(models["2.5d"], "2.5d denoiser", gpu, cpu, big)


def enhance_speed(den, label: str, gpu: RunContext, cpu: RunContext, big, tmp: Path | None = None) -> None:
    """``enhance`` with ``den`` over a casting phantom of ``big`` float32 (memory-mapped from ``tmp`` when
    given): Mvoxel/s on the GPU (after a warm-up) against the CPU over the first 16 slices."""
    big_v = Volume(np.asarray(phantoms.casting(big, seed=0)[0].data, np.float32), name="big")
    if tmp is not None:
        io.write_volume(big_v, tmp / "big.npy")
        big_v = io.read_volume(tmp / "big.npy", mmap=True)
    E.enhance(den, big_v.with_data(np.asarray(big_v.data[:8])), ctx=gpu)  # warm-up
    with Timer() as t:
        E.enhance(den, big_v, ctx=gpu)
    n = min(16, big[0])
    with Timer() as tc:
        E.enhance(den, big_v.with_data(np.asarray(big_v.data[:n])), ctx=cpu)
    mv, mvc = big_v.data.size / t.s / 1e6, n * big[1] * big[2] / tc.s / 1e6
    print(f"  enhance ({label}), {big} float32{' memory-mapped' if tmp is not None else ''}: GPU {t.s:.1f} s = "
          f"{mv:.2f} Mvoxel/s (peak {t.peak:.1f} GiB); CPU first {n} slices {mvc:.2f} Mvoxel/s; GPU / CPU "
          f"{mv / mvc:.1f} x", flush=True)


def enhance(gpu: RunContext, cpu: RunContext, big, tmp: Path) -> None:
    """The goal's ``enhance`` figures without training to convergence: the 2.5d and the 3-D denoiser after
    one short epoch (the weights do not change the speed) over a memory-mapped float32 scan."""
    noisy_v = noisy_phantom(LEVEL, shape=(16, 64, 64))[0]
    print("\nenhance throughput (denoisers after one short epoch)", flush=True)
    for inp in ("2.5d", "3d"):
        den = E.train_denoiser(noisy_v, input=inp, epochs=1, steps=2, batch=2, patch=32, ctx=gpu)
        enhance_speed(den, f"{inp} denoiser", gpu, cpu, big, tmp)


def train(gpu: RunContext, cpu: RunContext, data: str, quick: bool) -> None:
    """The U-Net on the nuclei (seconds an epoch, GPU against CPU, both precisions), then the default
    ``arch="auto"`` as a user runs it: the forest and the U-Net trained on held-out folds, the better
    kept (its total time is what the user waits for; it is not an epoch time)."""
    vol, truth = _nuclei(data)
    zs, scored = NUCLEI_PAINTED, between(NUCLEI_PAINTED)
    painted = S.sparse_labels(truth, slices=zs)
    t_true = np.asarray(truth.data)[scored]
    print(f"\ntrain, U-Net, nuclei {vol.shape}, painted z = {zs}, Dice (background, nucleus) on z = "
          f"{scored[0]}..{scored[-1]} unpainted")
    per = []  # seconds an epoch on the GPU, default precision first
    for label, ctxm in (("GPU bf16 autocast (default)", contextlib.nullcontext), ("GPU fp32 (autocast off)", autocast_off)):
        with ctxm(), Timer() as t:
            m = S.train(vol, painted, arch="unet", **budget(quick), ctx=gpu)
        with ctxm(), Timer() as ti:
            seg = np.asarray(S.infer(m, vol, ctx=gpu).data)
        tr = m.config["training"]
        d = dice_scores(seg[scored], t_true, 2)
        print(f"  {label}: train {t.s:.1f} s, {tr['epochs_run']} epochs, {t.s / tr['epochs_run']:.2f} s/epoch, "
              f"peak {t.peak:.1f} GiB; infer {ti.s:.2f} s; Dice " + " ".join(f"{x:.3f}" for x in d), flush=True)
        per.append(t.s / tr["epochs_run"])
    with Timer() as tc:
        S.train(vol, painted, arch="unet", **budget(quick, cpu_reference=True), ctx=cpu)
    print(f"  CPU ({torch.get_num_threads()} threads): {tc.s / 2:.2f} s/epoch (2 epochs); GPU / CPU speed "
          f"{tc.s / 2 / per[0]:.1f} x", flush=True)
    with Timer() as t:
        m = S.train(vol, painted, **budget(quick), ctx=gpu)
    d = dice_scores(np.asarray(S.infer(m, vol, ctx=gpu).data)[scored], t_true, 2)
    print(f"  defaults (arch auto) on the GPU: {t.s:.1f} s in all, kept {m.config['arch']}; Dice "
          + " ".join(f"{x:.3f}" for x in d), flush=True)


def tomo(gpu: RunContext, data: str, quick: bool) -> None:
    vol = io.read_volume(Path(data) / "tomo.tif")
    with Timer() as t:
        den = E.train_denoiser(vol, **budget(quick), ctx=gpu)
    out = np.asarray(E.enhance(den, vol, ctx=gpu).data)
    tr = den.config["training"]
    print(f"\ntomogram {vol.shape}, train_denoiser defaults on the GPU: {t.s:.1f} s, {tr['epochs_run']} epochs "
          f"(best {tr['best_epoch']}); noise estimate {noise_estimate(np.asarray(vol.data, np.float32)):.3f} -> "
          f"{noise_estimate(out):.3f}", flush=True)


def precision(gpu: RunContext, data: str, quick: bool) -> None:
    clean_v, _, clean, noisy, _ = noisy_phantom(LEVEL, shape=(16, 64, 64) if quick else BIG)
    noisy_v = clean_v.with_data(noisy, name="noisy")
    tomo_v = io.read_volume(Path(data) / "tomo.tif")
    ways = (("bf16 autocast", contextlib.nullcontext, True), ("fp32 + TF32", autocast_off, True),
            ("strict fp32", autocast_off, False))
    for name, vol, score in (("phantom", noisy_v, lambda o: f"PSNR {scores(clean, o)[0]:.2f} dB"),
                             ("tomogram", tomo_v, lambda o: f"noise {noise_estimate(o):.3f}")):
        den = E.train_denoiser(vol, **budget(quick), ctx=gpu)
        print(f"\n{name}: denoiser trained on the GPU (default precision), enhanced with", flush=True)
        for label, ac, t in ways:
            with ac(), tf32(t), Timer() as tm:
                out = np.asarray(E.enhance(den, vol, ctx=gpu).data)
            print(f"  {label:14s}: {score(out)}  ({tm.s:.2f} s)", flush=True)
    with tf32(False), Timer() as tm:
        den = E.train_denoiser(noisy_v, **budget(quick), ctx=gpu)
    with autocast_off(), tf32(False):
        out = np.asarray(E.enhance(den, noisy_v, ctx=gpu).data)
    print(f"phantom denoiser trained with TF32 off ({tm.s:.1f} s, {den.config['training']['epochs_run']} epochs), "
          f"strict fp32 enhance: PSNR {scores(clean, out)[0]:.2f} dB", flush=True)


def profile(gpu: RunContext, data: str, quick: bool) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    vol, truth = _nuclei(data)
    painted = S.sparse_labels(truth, slices=NUCLEI_PAINTED)
    noisy_v = noisy_phantom(LEVEL, shape=(16, 64, 64) if quick else BIG)[0]
    steps = 3 if quick else 50
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    for name, fn in (("train (nuclei)", lambda: S.train(vol, painted, arch="unet", epochs=1, steps=steps, ctx=gpu)),
                     ("train_denoiser (phantom)", lambda: E.train_denoiser(noisy_v, epochs=1, steps=steps, ctx=gpu))):
        fn()  # warm-up
        with prof(activities=acts) as p, Timer() as t:
            fn()
        ev = p.key_averages()
        busy = sum(e.self_device_time_total for e in ev) / 1e6
        print(f"\nprofile, {name}, one epoch of {steps} steps: wall {t.s:.2f} s, GPU busy {busy:.2f} s, "
              f"kernels {sum(e.count for e in ev if e.self_device_time_total > 0)}", flush=True)
        print(ev.table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=48))
        if torch.cuda.is_available():
            print(ev.table(sort_by="self_device_time_total", row_limit=8, max_name_column_width=48), flush=True)


def pipeline(gpu: RunContext, quick: bool) -> None:
    """``bench_pipeline.py`` on the device: the streaming around a 1x1 network against the bare I/O."""
    import bench_pipeline

    size = (16, 128, 128) if quick else (256, 512, 512)
    bench_pipeline.report(size, gpu.device, *bench_pipeline.measure(size, 1 if quick else 3, gpu.device))


def compiled(gpu: RunContext, shape, tmp: Path, quick: bool = False) -> None:
    """``infer`` of the default model with its network eager, through ``torch.compile`` and through
    ``torch.compile(mode="reduce-overhead")`` (CUDA graphs), in channels-last layout, each after a warm-up
    that compiles; labels compared with eager's."""
    from damselfly.engine.segmentation import _inference as inference

    vol, _ = phantoms.casting(shape, seed=0)
    path = tmp / "compile.npy"
    io.write_volume(vol, path)
    scan = io.read_volume(path, mmap=True)
    model = model_io.load_model(MODEL)
    fuse = inference._fuse_batchnorm
    eager = None
    print(f"\ninfer, default model, {shape} uint16 memory-mapped: eager against torch.compile", flush=True)
    for mode, wrap in compile_modes(quick):
        try:
            compiled_fuse = None if wrap is None else (lambda net, wrap=wrap: wrap(fuse(net)))
            with swapped(inference, "_fuse_batchnorm", compiled_fuse):
                S.infer(model, scan, ctx=gpu)  # warm-up: compiles (every slab has the same shape but the last)
                with Timer() as t:
                    lab = np.asarray(S.infer(model, scan, ctx=gpu).data)
        except Exception as e:  # noqa: BLE001 - a mode that does not compile here is a finding, not a crash
            print(f"  {mode:16s}: failed: {e!r}"[:300], flush=True)
            continue
        eager = lab if eager is None else eager
        print(f"  {mode:16s}: {t.s:6.2f} s  {scan.data.size / t.s / 1e6:8.1f} Mvoxel/s  peak {t.peak:.1f} GiB; labels "
              f"agree with eager's on {np.mean(lab == eager):.5f}", flush=True)


def compiled_training(gpu: RunContext, data: str, quick: bool = False) -> None:
    """Training steps with the network eager, through ``torch.compile`` and through
    ``torch.compile(mode="reduce-overhead")`` (CUDA graphs: the answer to ~1,700 small kernels a step if
    any is), swapped in at ``training.step_network``: the U-Net on the nuclei and the 2.5d denoiser on
    the phantom, seconds an epoch after the first (which compiles), and what they score."""
    from damselfly.engine.segmentation import _training as training

    vol, truth = _nuclei(data)
    scored = between(NUCLEI_PAINTED)
    painted = S.sparse_labels(truth, slices=NUCLEI_PAINTED)
    clean_v, _, clean, noisy, _ = noisy_phantom(LEVEL, shape=(16, 64, 64) if quick else BIG)
    noisy_v = clean_v.with_data(noisy, name="noisy")
    kw = {"epochs": 3, "steps": 3, "batch": 2, "patch": 32} if quick else {"epochs": 6}
    print("\ntraining steps eager against torch.compile (seconds an epoch, the first left out: it compiles)", flush=True)
    for mode, wrap in compile_modes(quick):
        try:
            with swapped(training, "step_network", wrap):
                for name, fit, score in (
                        ("U-Net, nuclei", lambda: S.train(vol, painted, arch="unet", patience=99, **kw, ctx=gpu),
                         lambda m: "Dice " + " ".join(f"{x:.3f}" for x in dice_scores(
                             np.asarray(S.infer(m, vol, ctx=gpu).data)[scored], np.asarray(truth.data)[scored], 2))),
                        ("2.5d denoiser, phantom", lambda: E.train_denoiser(noisy_v, **kw, ctx=gpu),
                         lambda m: f"PSNR {scores(clean, np.asarray(E.enhance(m, noisy_v, ctx=gpu).data))[0]:.2f} dB")):
                    m = fit()
                    sec = m.config["history"]["seconds"]
                    print(f"  {mode:16s} {name:24s}: first epoch {sec[0]:6.2f} s, then {np.median(sec[1:]):.3f} s an "
                          f"epoch (median of {len(sec) - 1}); {score(m)}", flush=True)
        except Exception as e:  # noqa: BLE001 - a mode that does not compile here is a finding, not a crash
            print(f"  {mode:16s}: failed: {e!r}"[:300], flush=True)


def seeds(gpu: RunContext, quick: bool, n: int = 3) -> None:
    """The open finding: the 2.5d denoiser's PSNR on the GPU for seeds 0..n-1, then seed 0 with cuDNN off
    (PyTorch's own convolution kernels) and with deterministic algorithms."""
    clean_v, _, clean, noisy, _ = noisy_phantom(LEVEL, shape=(16, 64, 64) if quick else BIG)
    noisy_v = clean_v.with_data(noisy, name="noisy")
    print(f"\n2.5d denoiser on the GPU, defaults, phantom at {LEVEL:.0%} noise: seeds and cuDNN", flush=True)
    runs = [(f"seed {k}", k, True, False) for k in range(n)] + [("seed 0, cuDNN off", 0, False, False),
                                                                 ("seed 0, deterministic", 0, True, True)]
    for label, seed, cudnn, det in runs:
        old = torch.backends.cudnn.enabled, torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
        torch.backends.cudnn.enabled, torch.backends.cudnn.deterministic = cudnn, det
        torch.backends.cudnn.benchmark = False if det else old[2]
        try:
            with Timer() as t:
                den = E.train_denoiser(noisy_v, seed=seed, **budget(quick), ctx=gpu)
            out = np.asarray(E.enhance(den, noisy_v, ctx=gpu).data)
        finally:
            torch.backends.cudnn.enabled, torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old
        tr = den.config["training"]
        print(f"  {label:22s}: PSNR {scores(clean, out)[0]:.2f} dB, {tr['epochs_run']} epochs (best {tr['best_epoch']}), "
              f"{t.s:.1f} s", flush=True)


def batches(gpu: RunContext, data: str, quick: bool) -> None:
    """Training batch sized to the device: the default (8 patches x 50 steps) against 32 x 13 (about the
    same patches an epoch, a quarter of the steps) and 32 x 25 (twice the patches, half the steps; on the
    CPU all three score within the seeds' spread: ``bench_batch.py``) of the U-Net on the nuclei: time, epochs, Dice, and
    the GPU's busy fraction over one epoch from the profiler."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    vol, truth = _nuclei(data)
    zs, scored = NUCLEI_PAINTED, between(NUCLEI_PAINTED)
    painted = S.sparse_labels(truth, slices=zs)
    t_true = np.asarray(truth.data)[scored]
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    print("\ntrain on the nuclei: batch and steps sized to the device", flush=True)
    for batch, steps in ((8, 50), (32, 13), (32, 25)) if not quick else ((2, 3), (4, 2)):
        with prof(activities=acts) as p, Timer() as t1:
            S.train(vol, painted, arch="unet", epochs=1, steps=steps, batch=batch, ctx=gpu)
        busy = sum(e.self_device_time_total for e in p.key_averages()) / 1e6
        kw = {"epochs": 2} if quick else {}
        with Timer() as t:
            m = S.train(vol, painted, arch="unet", steps=steps, batch=batch, **kw, ctx=gpu)
        d = dice_scores(np.asarray(S.infer(m, vol, ctx=gpu).data)[scored], t_true, 2)
        tr = m.config["training"]
        print(f"  batch {batch:2d} x {steps:2d} steps: {t.s:.1f} s, {tr['epochs_run']} epochs, {t.s / tr['epochs_run']:.2f} "
              f"s/epoch, Dice " + " ".join(f"{x:.3f}" for x in d) + f"; one epoch profiled: GPU busy {busy:.2f} of "
              f"{t1.s:.2f} s ({busy / t1.s:.0%})", flush=True)


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="nuclei.tif, nuclei_labels.tif, tomo.tif")
    ap.add_argument("--only", default="infer,denoise,train,tomo")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and budgets on the CPU (checks the script)")
    a = ap.parse_args()
    cuda = torch.cuda.is_available() and not a.quick
    gpu, cpu = RunContext(device="cuda" if cuda else "cpu"), RunContext(device="cpu")
    name = torch.cuda.get_device_name(0) if cuda else "none (--quick or no CUDA): both columns are the CPU"
    print(f"torch {torch.__version__}, GPU: {name}, CPU threads: {torch.get_num_threads()}", flush=True)
    big = (16, 128, 128) if a.quick else (256, 512, 512)
    only = a.only.split(",")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for sec in only:
            try:
                if sec == "infer":
                    infer(gpu, cpu, big, Path(tmp))
                elif sec == "enhance":
                    enhance(gpu, cpu, big, Path(tmp))
                elif sec == "denoise":
                    denoise(gpu, cpu, (16, 64, 64) if a.quick else BIG, big, a.quick)
                elif sec == "train":
                    train(gpu, cpu, a.data, a.quick)
                elif sec == "tomo":
                    tomo(gpu, a.data, a.quick)
                elif sec == "precision":
                    precision(gpu, a.data, a.quick)
                elif sec == "profile":
                    profile(gpu, a.data, a.quick)
                elif sec == "pipeline":
                    pipeline(gpu, a.quick)
                elif sec == "compile":
                    compiled(gpu, (16, 64, 64) if a.quick else big, Path(tmp), a.quick)
                elif sec == "compile_train":
                    compiled_training(gpu, a.data, a.quick)
                elif sec == "seeds":
                    seeds(gpu, a.quick, n=1 if a.quick else 3)
                elif sec == "batch":
                    batches(gpu, a.data, a.quick)
            except Exception as e:  # one broken section must not cost the others' figures
                import traceback

                traceback.print_exc()
                print(f"section {sec} failed: {e!r}", flush=True)
            print(f"[{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
