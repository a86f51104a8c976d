"""Deep-learning enhancement against classic filters, on a phantom with known clean truth and on a real
cryo-electron tomogram (issue 18).

    .venv/bin/python benchmarks/bench_restoration.py [--small] [--tomo ../shared/data/tomo.tif] [--epochs E]
    .venv/bin/python benchmarks/bench_restoration.py --segment-noise 0.5 [--noise-seed 1] [--small] [--aug 0.3]  # row 4
    .venv/bin/python benchmarks/bench_restoration.py --nuclei ../shared/data [--nuclei-noise 0.5]  # row 4, real data

Phantom: the casting phantom (64 x 128 x 128; ``--small``: 32 x 96 x 96) rendered without photon noise
is the clean truth; the noisy scan adds Gaussian noise of 15 % of the clean grey-value range (a known
kind). Rows:

1. denoising, PSNR and SSIM (whole volume): the noisy scan, the best Gaussian filter and the best
   non-local means (each parameter chosen on the truth: an upper bound for them), and ``train_denoiser``
   (Noise2Void, trained on the noisy scan alone) with its defaults;
2. paired restoration (``train_restoration`` on the first half of the slices of the noisy/clean pair)
   against the denoiser trained on the same noisy half, and against the denoiser of row 1 (which
   trained on the whole noisy scan, the scored slices included), all scored on the second half; and
   the denoiser of row 1 refined with the pairs (``init=``);
3. 2x up-sampling (the clean truth averaged over 2 x 2 x 2 blocks is the coarse scan; trained on the
   first half, scored on the second) against cubic interpolation;
4. segmentation Dice on the unpainted slices, the same 3 painted slices and training budget, of the
   noisy scan, of the denoised scan, and of both as two input channels, at noise of 50 % of the range
   (its own noisy scan and denoiser: heavy noise, where people denoise before they segment).

``--tomo``: the tomogram denoised by ``train_denoiser`` (defaults), with a noise estimate before and
after (Immerkaer's fast noise estimate per slice, in units of the slice's grey-value standard deviation)
and a before/after PNG of the middle slice (``docs/images/tomo_denoised.png``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from damselfly.engine.actions import enhancement as E
from damselfly.engine.actions import segmentation as S
from damselfly.engine.core import phantoms
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation._training import dice_scores

CTX = RunContext(device="cpu")


def scores(truth: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    rng = float(truth.max() - truth.min())
    return (peak_signal_noise_ratio(truth, x, data_range=rng),
            structural_similarity(truth, x.astype(np.float32), data_range=rng))


def best_of(truth, noisy, fn, params) -> tuple[float, float, float, float]:
    """The parameter with the highest PSNR: (parameter, PSNR, SSIM, seconds of that run)."""
    best = None
    for p in params:
        t0 = time.perf_counter()
        out = fn(noisy, p)
        sec = time.perf_counter() - t0
        ps, ss = scores(truth, out)
        if best is None or ps > best[1]:
            best = (p, ps, ss, sec)
    return best


def nlm(noisy, h, sigma):
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(noisy, h=h * sigma, sigma=sigma, patch_size=3, patch_distance=5, fast_mode=True)


#: The phantoms: the default, and the small one of earlier measurements (``--small``).
BIG, SMALL = (64, 128, 128), (32, 96, 96)
#: Noise of rows 1-3 and of row 4 (times the clean range), and the network's stronger noise augmentation.
LEVEL, SEG_LEVEL, STRONG_AUG = 0.15, 0.5, 0.3


def noisy_phantom(level: float, seed: int = 0, shape=SMALL):
    """The clean casting phantom, its truth and a noisy copy (Gaussian noise of ``level`` times the range,
    drawn with ``seed``)."""
    clean_v, truth = phantoms.casting(shape, seed=1, photons=1e9)
    clean = np.asarray(clean_v.data, np.float32)
    sigma = level * float(clean.max() - clean.min())
    noisy = (clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)).astype(np.float32)
    print(f"casting phantom {clean.shape}, Gaussian noise sigma = {100 * level:.0f} % of the range ({sigma:.0f}), "
          f"noise seed {seed}", flush=True)
    return clean_v, truth, clean, noisy, sigma


def phantom(epochs: int | None, shape=BIG, seg_level: float = SEG_LEVEL) -> None:
    """Rows 1-4 on the casting phantom of ``shape`` (default :data:`BIG`): rows 1-3 at 15 % noise, row 4
    at ``seg_level``."""
    budget = {} if epochs is None else {"epochs": epochs}
    clean_v, truth, clean, noisy, sigma = noisy_phantom(LEVEL, shape=shape)
    noisy_v = clean_v.with_data(noisy, name="noisy")
    rows = [("noisy scan", *scores(clean, noisy), "", 0.0)]
    g = best_of(clean, noisy, lambda a, s: ndimage.gaussian_filter(a, s), [0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
    rows.append(("best Gaussian", g[1], g[2], f"sigma {g[0]}", g[3]))
    n = best_of(clean, noisy, lambda a, h: nlm(a, h, sigma), [0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0])
    rows.append(("best non-local means", n[1], n[2], f"h {n[0]} sigma", n[3]))
    t0 = time.perf_counter()
    den = E.train_denoiser(noisy_v, **budget, ctx=CTX)
    t1 = time.perf_counter()
    denoised = np.asarray(E.enhance(den, noisy_v, ctx=CTX).data)
    rows.append(("train_denoiser (Noise2Void)", *scores(clean, denoised),
                 f"{den.config['training']['epochs_run']} epochs, enhance {time.perf_counter() - t1:.1f} s", t1 - t0))
    print("\n1. denoising (whole volume)")
    for label, ps, ss, note, sec in rows:
        print(f"  {label:30s} PSNR {ps:6.2f} dB  SSIM {ss:.3f}  {sec:7.1f} s  {note}")
    print(f"  Noise2Void - best classic filter: {rows[-1][1] - max(rows[1][1], rows[2][1]):+.2f} dB", flush=True)

    print("\n2. paired restoration", flush=True)
    paired(clean_v, clean, noisy, den, denoised, budget)
    upsampling(clean_v, clean, budget)
    if seg_level == LEVEL:  # the same noisy scan: its denoiser is already trained
        segmentation(truth, noisy_v, clean_v.with_data(denoised, name="denoised"))
    else:
        segment_only(seg_level, epochs, shape=shape)


def upsampling(clean_v, clean, budget) -> None:
    """Row 3: 2x up-sampling in z, y and x (the clean truth averaged over 2 x 2 x 2 blocks is the coarse
    scan), trained on the first half of the slices, scored on the second, against cubic interpolation."""
    nz, ny, nx = (n // 2 for n in clean.shape)
    coarse = clean[:2 * nz, :2 * ny, :2 * nx].reshape(nz, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5)).astype(np.float32)
    coarse_v = clean_v.with_data(coarse, spacing=tuple(2 * s for s in clean_v.spacing), name="coarse")
    h = nz // 2
    t0 = time.perf_counter()
    up = E.train_restoration(coarse_v.with_data(coarse[:h]), clean_v.with_data(clean[:2 * h, :2 * ny, :2 * nx]),
                             **budget, ctx=CTX)
    sec = time.perf_counter() - t0
    fine = np.asarray(E.enhance(up, coarse_v.with_data(coarse[h:]), ctx=CTX).data)
    cubic = ndimage.zoom(coarse[h:], 2, order=3, mode="nearest", grid_mode=True)
    truth = clean[2 * h:2 * nz, :2 * ny, :2 * nx]
    print(f"\n3. 2x up-sampling (z, y, x), trained on coarse slices 0-{h - 1}, scored on {h}-{nz - 1}")
    for label, out, s in (("cubic interpolation", cubic, None), ("train_restoration (2x)", fine, sec)):
        ps, ss = scores(truth, out)
        print(f"  {label:30s} PSNR {ps:6.2f} dB  SSIM {ss:.3f}" + (f"  {s:7.1f} s" if s else ""), flush=True)


def paired(clean_v, clean, noisy, den, denoised, budget) -> None:
    """Row 2: ``train_restoration`` on the first half of the noisy/clean pair against the denoiser trained
    on the same noisy half and against ``den`` (the whole-scan denoiser; ``denoised``, its output), all
    scored on the second half; and ``train_restoration`` refining ``den`` with the same pairs."""
    noisy_v = clean_v.with_data(noisy, name="noisy")
    half = clean.shape[0] // 2
    t0 = time.perf_counter()
    rest = E.train_restoration(noisy_v.with_data(noisy[:half]), clean_v.with_data(clean[:half]), **budget, ctx=CTX)
    sec = time.perf_counter() - t0
    restored = np.asarray(E.enhance(rest, noisy_v.with_data(noisy[half:]), ctx=CTX).data)
    t0 = time.perf_counter()
    den_half = E.train_denoiser(noisy_v.with_data(noisy[:half]), **budget, ctx=CTX)
    sec_half = time.perf_counter() - t0
    denoised_half = np.asarray(E.enhance(den_half, noisy_v.with_data(noisy[half:]), ctx=CTX).data)
    t0 = time.perf_counter()
    refined = E.train_restoration(noisy_v.with_data(noisy[:half]), clean_v.with_data(clean[:half]), init=den,
                                  **budget, ctx=CTX)
    sec_ref = time.perf_counter() - t0
    print(f"  trained on slices 0-{half - 1}, scored on {half}-{clean.shape[0] - 1}")
    for label, out, s in (("train_denoiser, whole scan", denoised[half:], None),
                          (f"train_denoiser, slices 0-{half - 1}", denoised_half, sec_half),
                          ("train_restoration", restored, sec),
                          ("train_restoration, init=den", np.asarray(E.enhance(refined, noisy_v.with_data(
                              noisy[half:]), ctx=CTX).data), sec_ref)):
        ps, ss = scores(clean[half:], out)
        print(f"  {label:30s} PSNR {ps:6.2f} dB  SSIM {ss:.3f}" + (f"  {s:7.1f} s" if s else ""), flush=True)


def segmentation(truth, noisy_v, denoised_v, aug: float = STRONG_AUG, zs=None, scored=None) -> None:
    """Dice on the ``scored`` slices (default: the unpainted ones) of the forest and the network (train's
    defaults, painted slices ``zs``, default 3 spread over the depth; and the network with the noise
    augmentation ``aug``) trained on the noisy scan, on the denoised one, and on both as two channels."""
    nz = truth.shape[0]
    zs = zs or [round(nz * f) for f in (5 / 32, 16 / 32, 27 / 32)]  # 5, 16, 27 of 32 slices
    painted = S.sparse_labels(truth, slices=zs)
    unseen = np.setdiff1d(np.arange(nz), zs) if scored is None else scored
    print(f"\n4. segmentation, painted z = {zs}, Dice ({', '.join(truth.class_names)}) on slices "
          f"{unseen[0]}..{unseen[-1]} unpainted, train's defaults")
    for arch, extra in (("forest", {}), ("unet", {}), ("unet", {"noise": aug})):
        for label, vol in (("noisy scan", noisy_v), ("denoised scan", denoised_v),
                           ("noisy + denoised", [noisy_v, denoised_v])):
            t0 = time.perf_counter()
            seg = np.asarray(S.infer(S.train(vol, painted, arch=arch, **extra, ctx=CTX), vol, ctx=CTX).data)
            d = dice_scores(seg[unseen], np.asarray(truth.data)[unseen], len(truth.classes))
            name = f"{arch}{f' noise={aug}' if extra else ''}"
            print(f"  {name:15s} {label:16s} " + " ".join(f"{x:.3f}" for x in d) + f"  mean {np.mean(d):.3f}  "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)


def denoise(noisy_v, epochs: int | None) -> tuple[np.ndarray, str]:
    """``train_denoiser`` (its defaults, or ``epochs``) on ``noisy_v`` and ``enhance``: the denoised array and
    a line on the training (best epoch, epochs run, seconds)."""
    t0 = time.perf_counter()
    den = E.train_denoiser(noisy_v, **({} if epochs is None else {"epochs": epochs}), ctx=CTX)
    denoised = np.asarray(E.enhance(den, noisy_v, ctx=CTX).data)
    tr = den.config["training"]
    return denoised, f"best epoch {tr['best_epoch']} of {tr['epochs_run']}, {time.perf_counter() - t0:.0f} s"


def segment_only(level: float, epochs: int | None, seed: int = 0, shape=BIG, aug: float = STRONG_AUG) -> None:
    """Only row 4, at another noise level, noise seed or phantom shape: the denoiser trained on the noisy
    scan, then segmentation."""
    clean_v, truth, clean, noisy, _ = noisy_phantom(level, seed, shape)
    noisy_v = clean_v.with_data(noisy, name="noisy")
    denoised, about = denoise(noisy_v, epochs)
    print(f"  denoiser: PSNR {scores(clean, denoised)[0]:.2f} dB (noisy {scores(clean, noisy)[0]:.2f} dB), {about}",
          flush=True)
    segmentation(truth, noisy_v, clean_v.with_data(denoised, name="denoised"), aug)


def nuclei(folder: str, epochs: int | None, noise: float, aug: float = STRONG_AUG) -> None:
    """Row 4 on real data: the fluorescence nuclei (``nuclei.tif``, truth ``nuclei_labels.tif > 0``) under
    ``bench_accuracy.py``'s bias field and Gaussian noise of ``noise`` times the grey-value standard
    deviation, painted at z = 15, 30, 45 and scored on the slices between, as ``bench_accuracy.py --real``."""
    from bench_accuracy import NUCLEI_PAINTED, _nuclei, between, noisy

    vol, truth = _nuclei(folder)
    noisy_v = noisy(vol, noise=noise)
    denoised, about = denoise(noisy_v, epochs)
    print(f"nuclei {vol.shape} + bias field + noise {noise} x std: denoiser {about}; noise estimate "
          f"{noise_estimate(np.asarray(noisy_v.data)):.3f} -> {noise_estimate(denoised):.3f}", flush=True)
    segmentation(truth, noisy_v, noisy_v.with_data(denoised, name="denoised"), aug, NUCLEI_PAINTED,
                 between(NUCLEI_PAINTED))


def noise_estimate(x: np.ndarray) -> float:
    """Immerkaer's (1996) fast noise estimate per slice, relative to the slice's grey-value spread, averaged
    over the slices."""
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    return float(np.mean([np.sqrt(np.pi / 2) * np.abs(ndimage.convolve(s.astype(np.float64), k))[1:-1, 1:-1].mean()
                          / 6 / s.std() for s in x]))


def tomogram(path: str, epochs: int | None) -> None:
    import imageio.v3 as iio

    from damselfly.engine.io import _files as io

    vol = io.read_volume(path)
    a = np.asarray(vol.data, np.float32)
    t0 = time.perf_counter()
    den = E.train_denoiser(vol, **({} if epochs is None else {"epochs": epochs}), ctx=CTX)
    sec = time.perf_counter() - t0
    out = np.asarray(E.enhance(den, vol, ctx=CTX).data)

    print(f"\ntomogram {a.shape}: noise estimate (sigma / grey-value std, mean over slices) "
          f"{noise_estimate(a):.3f} before, {noise_estimate(out):.3f} after; training {sec:.0f} s, "
          f"{den.config['training']['epochs_run']} epochs")
    z = a.shape[0] // 2
    lo, hi = np.percentile(a[z], [0.5, 99.5])

    def grey(x):
        return (np.clip((x - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)

    png = Path(__file__).resolve().parents[1] / "docs" / "images" / "tomo_denoised.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    img = np.concatenate([grey(a[z]), np.full((a.shape[1], 4), 255, np.uint8), grey(out[z])], axis=1)
    iio.imwrite(png, np.kron(img, np.ones((2, 2), np.uint8)))
    print(f"  before | after, slice {z}: {png}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tomo", metavar="TIF", help="also the real tomogram (../shared/data/tomo.tif)")
    ap.add_argument("--epochs", type=int, help="training epochs (default: the actions' defaults)")
    ap.add_argument("--no-phantom", action="store_true")
    ap.add_argument("--small", action="store_true", help=f"the small phantom {SMALL} instead of {BIG}")
    ap.add_argument("--segment-noise", type=float, metavar="LEVEL",
                    help="only row 4 (denoise, then segment), with noise of LEVEL times the range (e.g. 0.3)")
    ap.add_argument("--noise-seed", type=int, default=0, help="with --segment-noise: the noise's seed")
    ap.add_argument("--aug", type=float, default=STRONG_AUG,
                    help=f"row 4: the network's stronger noise augmentation (train's noise=; default {STRONG_AUG})")
    ap.add_argument("--nuclei", metavar="FOLDER", help="only row 4 on the real nuclei of FOLDER (../shared/data) "
                    "under a bias field and noise")
    ap.add_argument("--nuclei-noise", type=float, default=0.5, help="with --nuclei: noise times the grey-value std")
    a = ap.parse_args()
    shape = SMALL if a.small else BIG
    if a.nuclei:
        nuclei(a.nuclei, a.epochs, a.nuclei_noise, a.aug)
    elif a.segment_noise is not None:
        segment_only(a.segment_noise, a.epochs, a.noise_seed, shape, a.aug)
    elif not a.no_phantom:
        phantom(a.epochs, shape)
    if a.tomo:
        tomogram(a.tomo, a.epochs)


if __name__ == "__main__":
    main()
