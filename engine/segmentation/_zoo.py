"""BioImage Model Zoo packages: ``save_model(model, "x.zip")`` and ``load_model("x.zip")``.

A zoo package is a ``.zip`` with an ``rdf.yaml`` description (format 0.5, read and written with the zoo's
own library, ``bioimageio.spec``), the weights and test tensors.

Export (a segmentation network): TorchScript weights of the network followed by a softmax (class
probabilities, one channel per class, named by the classes); the intensity normalisation as the zoo's
``scale_linear`` pre-processing per channel; tile sizes as the network needs them (a multiple of its
down-sampling); test tensors computed through the exported module; and the ``.dfmodel`` itself as an
attachment, so that Damselfly reads its own package back exactly (classes, colours, 2.5-D context,
history). ``bioimageio.spec`` validates the package when it is written.

Import: a package written here is read from its attachment. A package from elsewhere must have
TorchScript weights — Damselfly never runs a ``pytorch_state_dict`` package, whose architecture is Python
code from the file, nor unpickles one — with axes ``b, c, y, x`` (2-D) or ``b, c, z, y, x`` (3-D) and the
pre-processing ``scale_linear``, ``fixed_zero_mean_unit_variance`` (fixed values), or ``scale_range`` /
``zero_mean_unit_variance`` (per scan: computed on a sample of the scan, like ``calibrate``); the output
is one channel per class (or one foreground channel, read as background/foreground), with ``sigmoid`` or
``softmax`` post-processing applied where declared. It is then tiled and streamed by Damselfly's own
pipeline like any model.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InputError, ParameterError
from ._model import FORMAT, Model, load_model, save_model

SUFFIX = ".zip"
ATTACHMENT = "model.dfmodel"
#: What a package written here says of itself in ``config``.
CONFIG_KEY = "damselfly"
NEEDS = "the BioImage Model Zoo format needs bioimageio.spec: pip install 'damselfly[zoo]'"


def _spec():
    try:
        import bioimageio.spec as spec
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise ParameterError(NEEDS) from None
    return spec, v0_5


# ------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------
def _exported(model: Model, shape: tuple[int, ...]):
    """The network followed by a softmax, as TorchScript (scripted, or traced on an input of ``shape``
    where it cannot be)."""
    import torch

    net = model.network("cpu")

    class Probabilities(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    wrapped = Probabilities(net).eval()
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in PyTorch, but it is the zoo's format
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(wrapped)
    except Exception:  # a construct TorchScript cannot compile: trace it (shapes stay symbolic)
        return torch.jit.trace(wrapped, torch.zeros(shape, dtype=torch.float32))


def _multiple(model: Model) -> int:
    from . import _nets as nets

    return int(nets.build(model.arch, model.in_channels, model.out_channels, model.config["hparams"]).size_multiple)


def _example_shape(model: Model, m: int) -> tuple[int, ...]:
    """The test input's shape for a network whose tiles are multiples of ``m``."""
    side = max(64, 4 * m)
    if model.input == "3d":
        return (1, model.in_channels, min(side, 32 if m <= 16 else side), side, side)
    return (1, model.in_channels, side, side)


def _channel_ranges(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """Per input channel (2.5-D context slices are channels of their input), the (low, high) grey values
    the model's normalisation maps to 0 and 1."""
    per = model.context if model.input == "2.5d" else 1
    lows, highs = (np.repeat(np.asarray(v, np.float64), per) for v in zip(*model.normalization))
    return lows, highs


def _identifier(name: str, i: int) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or f"class{i + 1}"
    return s if s[0].isalpha() else f"c{s}"


def save_zoo_model(model: Model, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``model`` as a BioImage Model Zoo package (``.zip``), validated by ``bioimageio.spec``.

    Parameters
    ----------
    model : Model
        A segmentation network (a random forest or an enhancement has no zoo export here).
    path : path
        Where to write it; must end in ``.zip``.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The package written.
    """
    import torch

    from ..core._atomic import atomic_path
    from ..core._provenance import versions

    spec, v = _spec()
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ParameterError(f"a zoo package must end in {SUFFIX}, got '{path.name}'")
    if model.is_forest or model.task != "segment":
        raise ParameterError(f"model '{model.name}' is a {'random forest' if model.is_forest else model.task} "
                             "model: only segmentation networks are exported to the BioImage Model Zoo")
    m = _multiple(model)
    shape = _example_shape(model, m)
    lows, highs = _channel_ranges(model)
    gain = np.where(highs > lows, 1.0 / np.where(highs > lows, highs - lows, 1.0), 1.0)  # x * gain + offset
    gains, offsets = [float(v) for v in gain], [float(v) for v in -lows * gain]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        save_model(model, d / ATTACHMENT)
        module = _exported(model, shape)
        module.save(str(d / "weights.pt"))
        per_channel = (1, -1) + (1,) * (len(shape) - 2)
        u = np.random.default_rng(0).random(shape, dtype=np.float32)
        x = (lows.reshape(per_channel) + u * (highs - lows).reshape(per_channel)).astype(np.float32)
        g = np.asarray(gains, np.float32).reshape(per_channel)
        o = np.asarray(offsets, np.float32).reshape(per_channel)
        with torch.no_grad():
            y = module(torch.from_numpy(x * g + o)).numpy()
        np.save(d / "input.npy", x)
        np.save(d / "output.npy", y)
        names = [_identifier(c, i) for i, c in enumerate(model.class_names)]
        (d / "README.md").write_text(_readme(model, names), encoding="utf-8")
        space = ["z", "y", "x"] if model.input == "3d" else ["y", "x"]
        in_axes = [v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(f"c{i}") for i in range(shape[1])])]
        in_axes += [v.SpaceInputAxis(id=v.AxisId(a), size=v.ParameterizedSize(min=m, step=m)) for a in space]
        out_axes = [v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(n) for n in names])]
        out_axes += [v.SpaceOutputAxis(id=v.AxisId(a), size=v.SizeReference(tensor_id=v.TensorId("raw"),
                                                                             axis_id=v.AxisId(a))) for a in space]
        identity = all(g == 1.0 for g in gains) and not any(offsets)  # the zoo refuses a scaling that does nothing
        pre = [] if identity else [v.ScaleLinearDescr(kwargs=v.ScaleLinearAlongAxisKwargs(
            axis=v.AxisId("channel"), gain=gains, offset=offsets))]
        descr = v.ModelDescr(
            name=_identifier(model.name, 0).replace("_", " ") or "damselfly model",
            description=f"Damselfly {model.arch} ({model.input}) segmentation into {', '.join(model.class_names)}",
            authors=[v.Author(name="Damselfly user")], license=v.LicenseId("MIT"),
            cite=[v.CiteEntry(text="Damselfly: record once, replay on every scan", url="https://github.com")],
            documentation=v.FileDescr(source=d / "README.md"),
            inputs=[v.InputTensorDescr(id=v.TensorId("raw"), axes=in_axes, preprocessing=pre,
                                       test_tensor=v.FileDescr(source=d / "input.npy"),
                                       data=v.IntervalOrRatioDataDescr(type="float32"))],
            outputs=[v.OutputTensorDescr(id=v.TensorId("probabilities"), axes=out_axes,
                                         test_tensor=v.FileDescr(source=d / "output.npy"),
                                         data=v.IntervalOrRatioDataDescr(type="float32"))],
            weights=v.WeightsDescr(torchscript=v.TorchscriptWeightsDescr(
                source=d / "weights.pt", pytorch_version=v.Version(torch.__version__.split("+")[0]))),
            attachments=[v.FileDescr(source=d / ATTACHMENT)],
            config={CONFIG_KEY: {"format": FORMAT, "attachment": ATTACHMENT, "versions": versions("torch")}},
        )
        with atomic_path(path, overwrite) as out:
            spec.save_bioimageio_package(descr, output_path=out)
    return path


def _readme(model: Model, names: list[str]) -> str:
    return (f"# {model.name}\n\nA segmentation network trained in Damselfly ({model.arch}, {model.input} input"
            f"{f', {model.context} slices of context' if model.input == '2.5d' else ''}).\n\n"
            f"Output: class probabilities, one channel per class: {', '.join(names)}.\n")


# ------------------------------------------------------------------------------------------------
# import
# ------------------------------------------------------------------------------------------------
def _describe(path: Path):
    spec, v = _spec()
    if not path.is_file():
        raise InputError("no such model file", path)
    if not zipfile.is_zipfile(path):
        raise InputError("not a zip file: a BioImage Model Zoo package is a .zip with an rdf.yaml", path)
    try:
        descr = spec.load_model_description(path, perform_io_checks=False)
    except Exception as e:  # the library's validation errors, with the field
        raise InputError(f"not a valid BioImage Model Zoo model: {str(e).splitlines()[0][:300]}", path) from None
    if not isinstance(descr, v.ModelDescr):
        raise InputError(f"a zoo package of format {getattr(descr, 'format_version', '?')}: Damselfly reads "
                         "model format 0.5 (convert it with bioimageio.spec's update_format)", path)
    return descr


def _ours(descr) -> dict | None:
    """What a package written by Damselfly says of itself (``config.damselfly``), or ``None``."""
    cfg = descr.config
    cfg = cfg if isinstance(cfg, dict) else (cfg.model_dump() if hasattr(cfg, "model_dump") else {})
    ours = cfg.get(CONFIG_KEY)
    return ours if isinstance(ours, dict) else None


def _member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        try:
            return z.read(name)
        except KeyError:
            raise InputError(f"the package names '{name}' but does not hold it", path) from None


def _from_attachment(path: Path, descr, read):
    """``read(file)`` of the ``.dfmodel`` a package written by Damselfly attaches, or ``None``."""
    ours = _ours(descr)
    if not (ours and ours.get("attachment")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / ATTACHMENT
        f.write_bytes(_member(path, str(ours["attachment"])))
        return read(f)


def _class_names(t_out) -> list[str]:
    """Class names from an output's channel names; one channel is a foreground on a background."""
    names = [str(n) for n in next(a.channel_names for a in t_out.axes if a.type == "channel")]
    if len(names) == 1:
        names = ["background", names[0] if names[0] not in ("c0", "channel0") else "foreground"]
    return names


def load_zoo_model(path: str | os.PathLike) -> Model:
    """Read a BioImage Model Zoo package (see the module docstring); never executes Python from it."""
    path = Path(path)
    descr = _describe(path)
    model = _from_attachment(path, descr, load_model)
    if model is None:
        return _foreign(descr, path)
    model.metadata["source"] = str(path)
    return model


def _axes(t) -> str:
    return "".join({"batch": "b", "channel": "c"}.get(a.type, str(a.id)) for a in t.axes)


def _size_multiple(t) -> int:
    """The multiple a tile's edge must be: the largest step of the tensor's spatial axes (1 where fixed)."""
    return int(max(getattr(a.size, "step", 1) or 1 for a in t.axes if a.type == "space"))


def _normalization(pre, channels: int, path) -> tuple[list[dict], str | None]:
    """The model's ``inputs`` (low, high per channel) from fixed pre-processing, or the per-scan method."""
    lows, highs, per_scan = [0.0] * channels, [1.0] * channels, None
    for op in pre:
        kw = getattr(op, "kwargs", None)
        if op.id == "scale_linear":
            gain = np.broadcast_to(np.asarray(kw.gain, np.float64), (channels,))
            offset = np.broadcast_to(np.asarray(kw.offset, np.float64), (channels,))
            # x * gain + offset = (x - low) / (high - low)
            lows = list(-offset / gain)
            highs = list(-offset / gain + 1.0 / gain)
        elif op.id == "fixed_zero_mean_unit_variance":
            mean = np.broadcast_to(np.asarray(kw.mean, np.float64), (channels,))
            std = np.broadcast_to(np.asarray(kw.std, np.float64), (channels,))
            lows, highs = list(mean), list(mean + std)
        elif op.id in ("scale_range", "zero_mean_unit_variance"):
            per_scan = op.id if op.id == "zero_mean_unit_variance" else \
                f"scale_range:{kw.min_percentile}:{kw.max_percentile}"
        elif op.id not in ("ensure_dtype", "clip"):
            raise InputError(f"the package's pre-processing '{op.id}' is not supported by Damselfly", path)
    return [{"low": float(lo), "high": float(hi)} for lo, hi in zip(lows, highs)], per_scan


def _foreign(descr, path: Path) -> Model:
    import torch

    from ..core.data import PALETTE

    w = descr.weights.torchscript
    if w is None:
        have = [k for k, val in dict(descr.weights).items() if val is not None]
        raise InputError(f"the package has {', '.join(have)} weights but no torchscript: Damselfly runs "
                         "TorchScript weights only (a pytorch_state_dict package's architecture is Python "
                         "code from the file)", path)
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise InputError("Damselfly runs zoo models with one input and one output tensor", path)
    t_in, t_out = descr.inputs[0], descr.outputs[0]
    axes_in, axes_out = _axes(t_in), _axes(t_out)
    if axes_in not in ("bcyx", "bczyx") or axes_out != axes_in:
        raise InputError(f"axes {axes_in} -> {axes_out}: Damselfly runs zoo models with axes bcyx or bczyx "
                         "in and out", path)
    c_in = next(len(a.channel_names) for a in t_in.axes if a.type == "channel")
    names = _class_names(t_out)
    post = [op.id for op in t_out.postprocessing]
    inputs, per_scan = _normalization(t_in.preprocessing, c_in, path)
    source = w.source if isinstance(w.source, str) else getattr(w.source, "path", str(w.source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(_member(path, Path(str(source)).name)), map_location="cpu")
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"the package's TorchScript weights cannot be loaded: {str(e).splitlines()[0]}", path) from None
    config: dict[str, Any] = {
        "arch": "torchscript", "input": "3d" if axes_in == "bczyx" else "2d", "context": 1, "hparams": {},
        "inputs": inputs, "task": "segment", "per_scan": per_scan, "zoo": {"name": descr.name, "post": post},
        "classes": [{"name": n, "color": list(PALETTE[i % len(PALETTE)])} for i, n in enumerate(names)],
    }
    model = Model(config, {}, name=str(descr.name))
    model.module = _Scores(module, post, single=len(names) == 2 and _n_out(t_out) == 1,
                           multiple=_size_multiple(t_in))
    model.metadata["source"] = str(path)
    return model


def _n_out(t) -> int:
    return next(len(a.channel_names) for a in t.axes if a.type == "channel")


def _Scores(module, post: list[str], single: bool, multiple: int):
    """The foreign module as Damselfly's pipeline takes it: scores whose softmax are the class
    probabilities (the pipeline takes the softmax), one channel per class."""
    import torch

    class Scores(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module
            self.size_multiple = multiple

        def forward(self, x):
            y = self.module(x)
            if "sigmoid" in post:
                y = torch.sigmoid(y)
            if single:  # one foreground probability: background and foreground, as log-probabilities
                p = y.clamp(1e-7, 1 - 1e-7)
                return torch.log(torch.cat([1 - p, p], dim=1))
            if "softmax" in post or "sigmoid" in post:
                return torch.log(y.clamp_min(1e-7))
            return y  # scores (logits): the pipeline's softmax gives probabilities

    return Scores().eval()


def scan_normalization(model: Model, images) -> list[tuple[float, float]]:
    """Per input, (low, high) of a zoo model whose pre-processing is computed per scan, from a sample of
    each scan (percentiles for ``scale_range``, mean and mean + std for ``zero_mean_unit_variance``)."""
    from ..core.volume_ops import sample

    method = model.config.get("per_scan")
    out = []
    for img in images:
        s = sample(img).astype(np.float64)
        s = s[np.isfinite(s)]
        if method == "zero_mean_unit_variance":
            mean, std = float(s.mean()), float(s.std())
            out.append((mean, mean + (std if std > 0 else 1.0)))
        else:
            _, lo_p, hi_p = str(method).split(":")
            lo, hi = np.percentile(s, [float(lo_p), float(hi_p)])
            out.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    return out


def document(path: str | os.PathLike) -> dict:
    """The model document of a package (class names for the checker), without loading weights."""
    from ._model import read_document

    path = Path(path)
    descr = _describe(path)
    doc = _from_attachment(path, descr, read_document)
    return doc if doc is not None else {"classes": [{"name": n} for n in _class_names(descr.outputs[0])]}


