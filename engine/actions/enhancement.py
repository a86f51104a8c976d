"""Deep-learning enhancement actions: train a denoiser or a restoration model, and enhance a scan."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core._lazy import lazy_module
from ..core.context import RunContext
from ..core.data import Labels, Volume
from ..core.volume_ops import output_like
from ..registry import OutputPath, action
from ..segmentation._model import Model
from .segmentation import _mask, preview_folder

restoration = lazy_module("damselfly.engine.restoration._enhance")  # PyTorch loads when first used


def _schedule(epochs, steps, batch, patch, lr, validation, patience, seed, average):
    from ..segmentation._training import Schedule

    return Schedule(epochs=epochs, steps=steps, batch=batch, patch=patch, lr=lr, validation=validation,
                    patience=patience, seed=seed, average=average)


@action("train_denoiser", result="denoiser", category="Enhance", roles={"preview": "box"}, monitor="training",
        basic=("input", "epochs", "init", "preview"), when={"context": ("input", ("2.5d",))})
def train_denoiser(image: Volume | list[Volume], input: Literal["2d", "2.5d", "3d"] = "2.5d", context: int = 5,
                   epochs: int = 60, steps: int = 50, batch: int = 8, patch: int = 64, lr: float = 0.002,
                   validation: float = 0.2, patience: int = 30, seed: int = 0, average: float = 0.99, init: Model | None = None,
                   mask: Volume | Labels | None = None, mask_classes: list[str] | None = None,
                   preview: list[int] | None = None, preview_dir: OutputPath | None = None, *,
                   ctx: RunContext) -> Model:
    """Train a denoiser on the noisy scan itself (Noise2Void: no clean data, no labels).

    Blind-spot training: a few pixels of each patch are hidden and the network learns to predict them
    from their neighbours, which carry the signal but not the (pixel-wise independent) noise. The best
    epoch (lowest validation loss on held-out slices) is kept; Stop keeps the best so far.

    Parameters
    ----------
    image : Volume or list of Volume
        The noisy scan; several scans of one kind (same noise) train one denoiser.
    input : {"2d", "2.5d", "3d"}
        One slice, a slice with its neighbours as channels (their noise is independent), or 3-D blocks
        (a 3-D U-Net on blocks of half the patch edge; slower, best on a GPU).
    context : int
        Slices per input in 2.5d (odd).
    epochs, steps, batch, patch : int
        At most ``epochs`` of ``steps`` batches of ``batch`` patches of ``patch`` pixels a side.
    lr : float
        Initial learning rate (AdamW, cosine decay).
    validation : float
        Fraction of slices held out for validation (0 = none).
    patience : int
        Epochs without a better validation loss before stopping early.
    seed : int
        Random seed; on the CPU the same seed gives the same model.
    average : float
        The model is the moving average of the weights, each step moving it ``1 - average`` of the way
        (0 = the weights of the last step): steadier from epoch to epoch than single steps.
    init : Model, optional
        Continue training this denoiser.
    mask : Volume or Labels, optional
        Centre training patches only where the mask is non-zero (or in ``mask_classes`` of a Labels).
    mask_classes : list of str, optional
        Classes of a Labels ``mask`` that count as inside.
    preview : list of int, optional
        A box ``[z, y0, x0, z + 1, y1, x1]``: before and after are saved as a PNG after every epoch.
    preview_dir : path, optional
        Folder for the preview PNGs (default: ``preview`` in the output folder).
    """
    images = list(image) if isinstance(image, (list, tuple)) else [image]
    return restoration.train("denoise", images, images, input=input, context=context, init=init,
                             mask=_mask(mask, mask_classes, images[-1]),
                             schedule=_schedule(epochs, steps, batch, patch, lr, validation, patience, seed, average),
                             preview=preview, preview_dir=preview_folder(preview, preview_dir, ctx), device=ctx.device)


@action("train_restoration", result="restorer", category="Enhance", roles={"preview": "box"}, monitor="training",
        basic=("input", "epochs", "init", "preview"), when={"context": ("input", ("2.5d",))})
def train_restoration(source: Volume | list[Volume], target: Volume | list[Volume],
                      input: Literal["2d", "2.5d", "3d"] = "2.5d", context: int = 5, epochs: int = 60, steps: int = 50,
                      batch: int = 8, patch: int = 64, lr: float = 0.001, validation: float = 0.2,
                      patience: int = 30, seed: int = 0, average: float = 0.99, init: Model | None = None,
                      mask: Volume | Labels | None = None, mask_classes: list[str] | None = None,
                      preview: list[int] | None = None, preview_dir: OutputPath | None = None, *,
                      ctx: RunContext) -> Model:
    """Train a restoration model on registered pairs: a fast, noisy or coarse scan and a slow, clean or
    fine scan of the same sample (CARE).

    A target whose shape is the source's times whole factors (1..8 per axis, z included) makes an
    up-sampling model: the source is up-sampled to the target's grid (cubic convolution) and the network
    learns the rest. Such a model writes the finer grid and its spacing.

    Parameters
    ----------
    source : Volume or list of Volume
        The fast/noisy/coarse scan(s).
    target : Volume or list of Volume
        The matching slow/clean/fine scan(s), one per source, registered to it.
    input : {"2d", "2.5d", "3d"}
        One slice, a slice with its neighbours as channels, or 3-D blocks (half the patch edge).
    context : int
        Slices per input in 2.5d (odd).
    epochs, steps, batch, patch : int
        At most ``epochs`` of ``steps`` batches of ``batch`` patches of ``patch`` pixels a side.
    lr : float
        Initial learning rate (AdamW, cosine decay).
    validation : float
        Fraction of slices held out for validation (0 = none).
    patience : int
        Epochs without a better validation loss before stopping early.
    seed : int
        Random seed; on the CPU the same seed gives the same model.
    average : float
        The model is the moving average of the weights, each step moving it ``1 - average`` of the way
        (0 = the weights of the last step): steadier from epoch to epoch than single steps.
    init : Model, optional
        Continue training this restoration model, or refine a denoiser (``train_denoiser``, same input
        and context) with the pairs: it has learnt from the whole noisy scan, the pairs then add what
        blind spots cannot.
    mask : Volume or Labels, optional
        Centre training patches only where the mask is non-zero (or in ``mask_classes`` of a Labels), on
        the target's grid; one pair only.
    mask_classes : list of str, optional
        Classes of a Labels ``mask`` that count as inside.
    preview : list of int, optional
        A box ``[z, y0, x0, z + 1, y1, x1]`` on the target's grid: before and after after every epoch.
    preview_dir : path, optional
        Folder for the preview PNGs (default: ``preview`` in the output folder).
    """
    sources = list(source) if isinstance(source, (list, tuple)) else [source]
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    return restoration.train("restore", sources, targets, input=input, context=context, init=init,
                             mask=_mask(mask, mask_classes, targets[-1]),
                             schedule=_schedule(epochs, steps, batch, patch, lr, validation, patience, seed, average),
                             preview=preview, preview_dir=preview_folder(preview, preview_dir, ctx), device=ctx.device)


@action("enhance", result="enhanced", category="Enhance")
def enhance(model: Model, image: Volume, tile: int = 512, overlap: float = 0.25,
            blend: Literal["gaussian", "linear"] = "gaussian", tta: bool = True, *, ctx: RunContext) -> Volume:
    """Denoise or restore a whole scan with a trained enhancement model, streamed slab by slab.

    Parameters
    ----------
    model : Model
        From ``train_denoiser`` or ``train_restoration`` (or ``load_model``).
    image : Volume
        The scan, of the kind the model was trained on.
    tile : int
        Tile edge in pixels; tiles overlap and are blended so that seams do not show.
    overlap : float
        Fraction of a tile shared with its neighbours.
    blend : {"gaussian", "linear"}
        The blending window.
    tta : bool
        Average the model's output over the four in-plane flips of the input (test-time augmentation,
        as training flips its patches): four times the work, and on the noisy casting phantom +2.2 dB
        PSNR for a denoiser, with a better segmentation after it (``benchmarks/README.md``). False is
        the fast preview.

    Returns
    -------
    Volume
        float32 grey values; an up-sampling model's output has the finer grid and spacing.

    Notes
    -----
    To segment a denoised scan, train on the scan and its denoised version together,
    ``train([scan, denoised], painted)``: the denoised channel shows the shapes, the noisy one the small
    features that denoising softens. That beat the noisy scan alone on a noisy phantom and on real
    nuclei, where the denoised scan alone did not always (``examples/denoise_then_segment.dfm``;
    ``benchmarks/README.md``, Enhancement, row 4).
    """
    scale = model.scale if model.task != "segment" else [1, 1, 1]
    shape = tuple(int(n) * f for n, f in zip(image.shape, scale))
    out = output_like([image], shape, np.float32)
    restoration.enhance(model, image, out, device=ctx.device, tile=tile, overlap=overlap, blend=blend, tta=tta)
    spacing = tuple(s / f for s, f in zip(image.spacing, scale))
    # the first fine voxel's centre lies (1/f - 1)/2 of a coarse voxel before the first coarse one's
    origin = tuple(o + (0.5 / f - 0.5) * s for o, s, f in zip(image.origin, image.spacing, scale))
    return image.as_volume(out, name=f"{image.name}_{model.task}d" if image.name else "enhanced", spacing=spacing,
                           origin=origin,
                           metadata={"model": model.name, "model_sha256": model.hash, "task": model.task})
