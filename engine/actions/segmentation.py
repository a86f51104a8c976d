"""Deep-learning segmentation actions: train, infer, infer_probabilities, save/load models, helpers."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core._lazy import lazy_module
from ..core.context import RunContext
from ..core.data import Labels, Table, Volume
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import output_like
from ..registry import InputPath, OutputPath, action
from ..segmentation import _model_files as model_io
from ..segmentation._model import Model

# PyTorch loads when an action first trains or infers, not when the actions are listed or checked
autotrain = lazy_module("damselfly.engine.segmentation._autotrain")
inference = lazy_module("damselfly.engine.segmentation._inference")
training = lazy_module("damselfly.engine.segmentation._training")


class _MaskView:
    """A boolean mask computed slab by slab from a volume or labels (memory-mapped inputs stay on disk)."""

    def __init__(self, vol: Volume | Labels, classes: list[str] | None):
        self.vol = vol
        self.shape = vol.shape
        if classes:
            if not isinstance(vol, Labels):
                raise ParameterError("mask_classes needs a Labels mask (a segmentation), not a plain volume")
            self.index: list[int] | None = [vol.class_index(c) for c in classes]
        else:
            self.index = None

    def __getitem__(self, key) -> np.ndarray:
        a = np.asarray(self.vol.data[key])
        return np.isin(a, self.index) if self.index is not None else a != 0


def _mask(mask: Volume | Labels | None, classes: list[str] | None, image: Volume):
    if mask is None:
        if classes:
            raise ParameterError("mask_classes was given without a mask")
        return None
    image.check_same_geometry(mask)
    if mask.data.ndim != 3:
        raise InputError(f"a mask must be 3-D, got shape {mask.data.shape}", mask.source)
    return _MaskView(mask, classes)


def _images(image: Volume | list[Volume]) -> list[Volume]:
    images = list(image) if isinstance(image, (list, tuple)) else [image]
    if not images:
        raise ParameterError("no input volume given")
    return images


@action("train", result="model", category="Segment", toolbar=3, roles={"preview": "box"}, monitor="training",
        basic=("arch", "input", "epochs", "val_labels", "init", "mask", "preview"),
        when={"context": ("input", ("2.5d",))})
def train(image: Volume | list[Volume], labels: Labels,
          arch: Literal["auto", "unet", "msd", "unet3d", "forest"] = "auto",
          input: Literal["2d", "2.5d", "3d"] = "2.5d", context: int = 5, width: int | None = None,
          depth: int | None = None, epochs: int = 30, steps: int = 50, batch: int = 8,
          patch: int | None = None, lr: float = 0.001, validation: float = 0.2,
          val_image: Volume | list[Volume] | None = None, val_labels: Labels | None = None,
          patience: int = 5, seed: int = 0, init: Model | None = None, mask: Volume | Labels | None = None,
          mask_classes: list[str] | None = None, flip: bool = True, rotate: bool = True,
          contrast: float = 0.1, noise: float = 0.1, poisson: float = 0.0, blur: float = 0.0,
          scale: float = 0.0, preview: list[int] | None = None, preview_dir: OutputPath | None = None,
          seconds: float | None = None, *, ctx: RunContext) -> Model:
    """Train a segmentation model from sparse labels (a few painted slices).

    Label 0 is unlabelled and ignored; every class must be painted somewhere. By default (``arch="auto"``)
    the forest and the U-Net are both trained and scored on painted slices held out in turn (every
    painted slice once), and the better is kept: the forest at once, in seconds; the network within a
    time budget on a CPU (20 s plus 0.02 s a painted voxel, at most 15 min), with its full schedule on a
    GPU; within 0.01 mean Dice the forest. ``comparison(model)`` gives the held-out Dice per class of
    each. A network draws patches around labelled voxels, class by class in turn; its best epoch (lowest
    validation loss) is kept; it stops early after ``patience`` epochs without improvement, and Stop
    keeps the best model so far.

    Parameters
    ----------
    image : Volume or list of Volume
        The scan; several volumes of the same geometry (modalities) become extra input channels.
    labels : Labels
        Sparse labels on the scan's grid: 0 = unlabelled, 1..K the classes.
    arch : {"auto", "unet", "msd", "unet3d", "forest"}
        The better of the forest and the U-Net on held-out painted slices (default; needs every class
        painted on two z-slices or more to score them, else the forest is kept), a 2-D U-Net,
        Mixed-Scale Dense network, 3-D U-Net (with ``input="3d"``; best on a GPU), or a random forest on
        multi-scale features (the classic pixel classifier of ilastik: trains in seconds on the CPU; the
        epochs, batches and augmentation settings do not apply to it).
    input : {"2d", "2.5d", "3d"}
        What the network sees: one slice, a slice with its neighbours as channels, or a 3-D patch. The
        forest uses 2-D features of each slice for "2d" and 3-D features otherwise.
    context : int
        Slices per input in 2.5d (odd).
    width : int, optional
        U-Net channels at the top level (default 16); MS-D layer width (default 1).
    depth : int, optional
        U-Net levels (default 4); MS-D layers (default 100).
    epochs : int
        At most this many epochs.
    steps : int
        Batches per epoch.
    batch : int
        Patches per batch.
    patch : int, optional
        Patch edge in voxels (default 64 in 2-D, 48 in 3-D). On three painted slices 64 scored higher
        than 128 on real and phantom scans and trains 2.5-4x faster (benchmarks/README.md).
    lr : float
        Initial learning rate (AdamW, cosine decay to 2 % of it).
    validation : float
        Fraction of labelled blocks held out for validation (0 = none), when no ``val_labels`` is given.
    val_image : Volume or list of Volume, optional
        A separate scan for validation (default: ``image``).
    val_labels : Labels, optional
        Labels for validation on ``val_image``.
    patience : int
        Epochs without a better validation loss before stopping early.
    seed : int
        Random seed; on the CPU the same seed gives the same model.
    init : Model, optional
        Continue training this model (transfer learning); architecture, inputs and classes must match.
    mask : Volume or Labels, optional
        Draw training patches only where the mask is non-zero (or in ``mask_classes`` of a Labels).
    mask_classes : list of str, optional
        Classes of a Labels ``mask`` that count as inside.
    flip, rotate : bool
        In-plane flips and 90-degree rotations.
    contrast : float
        Strength of random intensity scale and shift (0 = off).
    noise : float
        Standard deviation of added Gaussian noise, in normalised units (0 = off). Without enough of it
        a network trained on a clean scan learns grey values instead of shapes: on the casting phantom
        0.03 gave pore Dice 0.66 (0.22 on the noise-free phantom), 0.1 gave 0.96 (benchmarks/README.md).
    poisson : float
        Strength of signal-dependent (shot) noise (0 = off).
    blur : float
        Largest sigma of a random in-plane Gaussian blur, in voxels (0 = off).
    scale : float
        Random in-plane zoom of each patch by a factor from ``1/(1 + scale)`` to ``1 + scale`` (0 = off):
        objects of other sizes than the painted ones.
    preview : list of int, optional
        A box ``[z, y0, x0, z + 1, y1, x1]`` on one slice whose prediction is saved after every epoch.
    preview_dir : path, optional
        Folder for the preview PNGs (default: ``preview`` in the output folder).
    seconds : float, optional
        A network's time budget: training stops (keeping its best epoch) once it is spent. With
        ``arch="auto"`` it replaces the budget scaled to the painted voxels.

    Examples
    --------
    >>> model = train(cal, painted, ctx=ctx)                       # doctest: +SKIP
    >>> comparison(model).row("chosen", True)["method"]            # doctest: +SKIP
    'forest'
    """
    kw = {k: v for k, v in locals().items() if k not in ("image", "labels", "arch", "seconds", "ctx")}
    images = _images(image)
    augment = {"flip": flip, "rotate": rotate, "contrast": contrast, "noise": noise, "poisson": poisson,
               "blur": blur, "scale": scale}
    if arch != "forest":  # the network's settings, checked before any training (auto: the forest's too)
        net = "unet" if arch == "auto" else arch
        hp = _hparams(net, width, depth)
        schedule = training.Schedule(epochs=epochs, steps=steps, batch=batch,
                                     patch=(48 if input == "3d" else 64) if patch is None else patch, lr=lr,
                                     validation=validation, patience=patience, seed=seed, seconds=seconds)
        training.check_settings(images, labels, net, input, context, hp, schedule, augment,
                                init if arch != "auto" else None)
    if arch == "auto":
        if init is not None:
            raise ParameterError("init continues a network: give its arch (e.g. arch=\"unet\") with init")

        def fit(method: str, lab: Labels, budget: float | None) -> Model:
            budget = budget if seconds is None else seconds
            return train(images, lab, arch=method, **{**kw, "preview": None}, seconds=budget, ctx=ctx)

        def predict(model: Model, z: int) -> np.ndarray:
            return inference.predict_slice(model, images, z, device=ctx.device)

        return autotrain.select(images, labels, fit, predict, inference.resolve_device(ctx.device).type)
    if arch == "forest":
        return _train_forest(images, labels, input, seed, init, _mask(mask, mask_classes, images[0]), preview,
                             preview_dir, ctx)
    vimgs = _images(val_image) if val_image is not None else None
    if vimgs is not None and val_labels is None:
        raise ParameterError("val_image needs val_labels")
    pdir = preview_folder(preview, preview_dir, ctx)
    m = _mask(mask, mask_classes, images[0])
    model = training.train(
        images, labels, arch=arch, input=input, context=context, hparams=hp, schedule=schedule,
        val_images=vimgs, val_labels=val_labels, init=init, mask=m, augment_opts=augment,
        preview=preview, preview_dir=pdir, device=ctx.device)
    return model


def _hparams(arch: str, width: int | None, depth: int | None) -> dict:
    """The network's hyper-parameters that ``train``'s ``width`` and ``depth`` set."""
    hp = {}
    if width is not None:
        hp["width" if arch == "msd" else "base"] = width
    if depth is not None:
        hp["depth" if arch == "msd" else "levels"] = depth
    return hp


def _train_forest(images, labels, input, seed, init, mask, preview, preview_dir, ctx) -> Model:
    from pathlib import Path

    from ..segmentation import _classifier as classifier
    from ..segmentation import _features as features

    if init is not None:
        raise ParameterError("a forest cannot continue training from a model (init); train it afresh, it "
                             "takes seconds")
    folder = preview_folder(preview, preview_dir, ctx)
    model = classifier.train(images, labels, input=input, mask=mask, seed=seed)
    if folder is not None:
        pred = classifier.ForestPredictor(model)
        row = model.config["history"]
        row["preview"] = [str(training.save_preview(pred, [im.data for im in images], preview, Path(folder), 1,
                                                    margin=features.feature_halo(model.hparams["sigma_max"])))]
    return model


def preview_folder(preview, preview_dir, ctx: RunContext) -> str | None:
    """Where a trainer's preview PNGs go (``preview_dir``, or ``preview`` in the output folder), after
    checking that ``preview`` is a box on one slice; None without a preview."""
    if preview is None:
        return None
    if len(preview) != 6 or preview[3] - preview[0] != 1:
        raise ParameterError(f"preview must be a box on one slice [z, y0, x0, z + 1, y1, x1], got {preview}")
    return str(preview_dir or ctx.out_dir / "preview")


@action("infer", result="seg", category="Segment", toolbar=4)
def infer(model: Model, image: Volume | list[Volume], mask: Volume | Labels | None = None,
          mask_classes: list[str] | None = None, outside: str | None = None, tile: int | None = None,
          overlap: float = 0.25, blend: Literal["gaussian", "linear"] = "gaussian", tta: bool = False, *,
          ctx: RunContext) -> Labels:
    """Segment a whole volume with a trained model, streamed slab by slab.

    Parameters
    ----------
    model : Model
        A trained model (from ``train`` or ``load_model``).
    image : Volume or list of Volume
        The scan (as many volumes as the model was trained with), calibrated like its training data.
    mask : Volume or Labels, optional
        Segment only where the mask is non-zero (or in ``mask_classes``); other voxels get ``outside``.
    mask_classes : list of str, optional
        Classes of a Labels ``mask`` that count as inside.
    outside : str, optional
        The class given to voxels outside the mask (default: the model's first class).
    tile : int, optional
        Tile edge in voxels (a slice that fits in one tile is predicted whole; 3-D: at most 128 x 64).
        By default chosen from the slice size and the device's memory (:func:`inference.auto_tile`).
    overlap : float
        Fraction of a tile shared with its neighbours; blended so that seams do not show.
    blend : {"gaussian", "linear"}
        The blending window.
    tta : bool
        Average over in-plane flips (test-time augmentation; 4x slower).
    """
    images = _images(image)
    m = _mask(mask, mask_classes, images[0])
    names = model.class_names
    if outside is None:
        out_index = 1
    elif outside in names:
        out_index = names.index(outside) + 1
    else:
        from ..core.data import suggest

        raise ParameterError(f"outside: model '{model.name}' has no class '{outside}'{suggest(outside, names)}"
                             f" (classes: {', '.join(names)})")
    out = output_like(images, images[0].shape, np.uint8 if len(names) < 255 else np.uint16)
    inference.segment(model, images, out, mask=m, outside=out_index, device=ctx.device,
                      tile=tile or inference.auto_tile(model, images[0].shape, ctx.device), overlap=overlap,
                      blend=blend, tta=tta)
    return inference.labels_like(model, images[0], out)


@action("uncertainty", result="uncertainty", category="Segment")
def uncertainty(model: Model, image: Volume | list[Volume], tile: int | None = None, *, ctx: RunContext) -> Volume:
    """Where the model is unsure: the entropy of its class probabilities, from 0 (one class certain) to 1
    (every class as likely). The app draws it over the scan, in orange: where to paint next.

    Parameters
    ----------
    model : Model
        A trained segmentation model.
    image : Volume or list of Volume
        The scan(s), as for ``infer``.
    tile : int, optional
        Tile edge in voxels, as for ``infer``.

    Examples
    --------
    >>> unsure = uncertainty(model, cal, ctx=ctx)                    # doctest: +SKIP
    """
    images = _images(image)
    out = output_like(images, images[0].shape, np.float32)
    inference.uncertainty(model, images, out, device=ctx.device,
                          tile=tile or inference.auto_tile(model, images[0].shape, ctx.device))
    im = images[0]
    # display: an overlay over the scan, not a scan of its own (the app draws it over the grey values)
    return im.as_volume(out, name=f"{im.name}_uncertainty", metadata={"model": model.name, "display": "overlay"})


@action("infer_probabilities", result="prob", category="Segment")
def infer_probabilities(model: Model, image: Volume | list[Volume], class_: str | None = None,
                        mask: Volume | Labels | None = None, mask_classes: list[str] | None = None, tile: int | None = None,
                        overlap: float = 0.25, blend: Literal["gaussian", "linear"] = "gaussian",
                        tta: bool = False, *, ctx: RunContext) -> Volume:
    """Class probabilities (0..1) of a trained model: one class, or all as channels (z, y, x, class).

    Parameters
    ----------
    model : Model
        A trained model.
    image : Volume or list of Volume
        The scan(s), as for ``infer``.
    class_ : str, optional
        The class whose probability to return; all classes when omitted.
    mask : Volume or Labels, optional
        Compute only inside the mask (zero outside).
    mask_classes : list of str, optional
        Classes of a Labels ``mask`` that count as inside.
    tile : int, optional
        Tile edge in voxels (a slice that fits in one tile is predicted whole; 3-D: at most 128 x 64).
        By default chosen from the slice size and the device's memory (:func:`inference.auto_tile`).
    overlap : float
        Fraction of a tile shared with its neighbours.
    blend : {"gaussian", "linear"}
        The blending window.
    tta : bool
        Average over in-plane flips.
    """
    images = _images(image)
    m = _mask(mask, mask_classes, images[0])
    index = None
    if class_ is not None:
        names = model.class_names
        if class_ not in names:
            from ..core.data import suggest

            raise ParameterError(f"model '{model.name}' has no class '{class_}'{suggest(class_, names)}")
        index = names.index(class_) + 1
    shape = images[0].shape + (() if index else (len(model.class_names),))
    out = output_like(images, shape, np.float32)
    inference.probabilities(model, images, out, index=index, mask=m, device=ctx.device,
                            tile=tile or inference.auto_tile(model, images[0].shape, ctx.device),
                            overlap=overlap, blend=blend, tta=tta)
    im = images[0]
    return im.as_volume(out, name=f"{im.name}_{class_ or 'prob'}", metadata={"model": model.name, "class": class_})


@action("save_model", category="File", title="Save model…")
def save_model(model: Model, path: OutputPath, *, ctx: RunContext) -> None:
    """Save a model as one ``.dfmodel`` file (safetensors weights + JSON; the history goes beside it as CSV),
    or as a BioImage Model Zoo package (``.zip``: TorchScript weights, validated with ``bioimageio.spec``)
    that ilastik, deepImageJ, napari and Fiji users can run.

    Parameters
    ----------
    model : Model
        The model to save.
    path : path
        Where to write it: ``.dfmodel``, or ``.zip`` for the BioImage Model Zoo (segmentation networks).

    Examples
    --------
    ``save_model(model, "porosity.zip")``
    """
    model_io.save_model(model, path, overwrite=ctx.may_replace(path))


@action("load_model", result="model", category="File", title="Open model…")
def load_model(path: InputPath) -> Model:
    """Load a model saved by ``save_model``, or a BioImage Model Zoo package with TorchScript weights (no
    Python code from the file is ever executed; a zoo model is tiled and streamed like ours).

    Parameters
    ----------
    path : path
        A ``.dfmodel`` file or a zoo package (``.zip``).

    Examples
    --------
    ``model = load_model("nuclei_from_the_zoo.zip")``
    """
    return model_io.load_model(path)


@action("training_history", result="history", category="Measure")
def training_history(model: Model) -> Table:
    """The per-epoch training history of a model (loss, val_loss, Dice per class, learning rate, seconds).

    The Dice of a network's epochs is scored on held-out blocks of the painted slices it trains on; a
    model trained with ``arch="auto"`` was also scored on whole painted slices held out in turn: those
    Dice per class are in this table's metadata (``held_out_dice``) and, per method, in
    ``comparison(model)``.

    Parameters
    ----------
    model : Model
        A trained model.
    """
    table = model.history
    cmp = model.config.get("comparison") or {}
    cols = cmp.get("columns") or {}
    if cmp.get("auto") and model.config.get("arch") in cols.get("method", []):
        i = cols["method"].index(model.config["arch"])
        table.metadata["held_out_dice"] = {k[5:]: cols[k][i] for k in cols if k.startswith("dice_")}
        table.metadata["held_out_slices"] = cmp["holdout"]
    return table


@action("sparse_labels", result="painted", category="Segment")
def sparse_labels(labels: Labels, slices: list[int], axis: Literal["z", "y", "x"] = "z") -> Labels:
    """Keep only some slices of a labels volume (0 elsewhere): painted slices made from a full truth.

    Parameters
    ----------
    labels : Labels
        Labels to thin out.
    slices : list of int
        Slice indices to keep.
    axis : {"z", "y", "x"}
        The axis the slices are taken across.
    """
    ax = "zyx".index(axis)
    n = labels.shape[ax]
    bad = [s for s in slices if not 0 <= s < n]
    if bad or not slices:
        raise ParameterError(f"slices {bad or slices} are outside 0..{n - 1} along {axis}")
    data = np.zeros(labels.shape, labels.data.dtype)
    idx: list[slice | list[int]] = [slice(None)] * 3
    idx[ax] = list(slices)
    data[tuple(idx)] = np.asarray(labels.data)[tuple(idx)]
    return labels.with_data(data, name=f"{labels.name}_sparse" if labels.name else "painted")

