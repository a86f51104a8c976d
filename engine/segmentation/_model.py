"""Trained segmentation models and their files.

A :class:`Model` is a network's weights plus a JSON document with everything needed to reuse it:
architecture and hyper-parameters, how inputs are built (2d / 2.5d / 3d, number of modalities), the
intensity normalisation and calibration it expects, class names and colours, the training history, the
software versions and a hash of the training data.

A model file (``.dfmodel``) is one `safetensors <https://huggingface.co/docs/safetensors>`_ file: the
weights as tensors and the JSON document in the header's metadata. Loading reads tensors and JSON only —
it never unpickles code — and a corrupt or foreign file gets a clear error naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.data import LabelClass, Table, make_classes
from ..core.errors import InputError, ParameterError

FORMAT = "damselfly-model"
FORMAT_VERSION = 1
SUFFIX = ".dfmodel"


class Model:
    """A trained network and its description (see the module docstring).

    Parameters
    ----------
    config : dict
        The JSON document (``arch``, ``hparams``, ``input``, ``context``, ``inputs``, ``classes``, ...).
    state : dict of str to torch.Tensor
        The network's weights (``state_dict``), on the CPU.
    name : str
        A short name.
    """

    def __init__(self, config: dict[str, Any], state: dict, name: str = "model"):
        self.config = config
        self.state = state
        self.name = name
        self.metadata: dict[str, Any] = {}
        #: A ready network instead of one built from ``state`` (a BioImage Model Zoo package's TorchScript).
        self.module: Any = None

    # -- description ------------------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.config["arch"]

    @property
    def is_forest(self) -> bool:
        """A pixel classifier (:mod:`~damselfly.engine.segmentation._classifier`) rather than a network."""
        return self.config["arch"] == "forest"

    @property
    def task(self) -> str:
        """``"segment"``, or an enhancement: ``"denoise"`` or ``"restore"`` (:mod:`~damselfly.engine.restoration._enhance`)."""
        return self.config.get("task", "segment")

    @property
    def scale(self) -> list[int]:
        """The up-sampling per axis from input to output grid (restoration; 1 otherwise)."""
        return [int(v) for v in self.config.get("scale", (1, 1, 1))]

    @property
    def output_range(self) -> tuple[float, float]:
        """An enhancement's output normalisation: the grey values that 0 and 1 stand for."""
        o = self.config["output"]
        return float(o["low"]), float(o["high"])

    @property
    def out_channels(self) -> int:
        return out_channels(self.config)

    @property
    def hparams(self) -> dict:
        return dict(self.config["hparams"])

    @property
    def input(self) -> str:
        """``"2d"``, ``"2.5d"`` or ``"3d"``."""
        return self.config["input"]

    @property
    def context(self) -> int:
        """Slices per input in 2.5d (1 otherwise)."""
        return int(self.config.get("context", 1))

    @property
    def n_inputs(self) -> int:
        return len(self.config["inputs"])

    @property
    def in_channels(self) -> int:
        return self.n_inputs * (self.context if self.input == "2.5d" else 1)

    @property
    def classes(self) -> list[LabelClass]:
        cs = self.config["classes"]
        return make_classes([c["name"] for c in cs], [c["color"] for c in cs])

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.config["classes"]]

    @property
    def normalization(self) -> list[tuple[float, float]]:
        """Per input, the (low, high) intensities mapped to 0 and 1."""
        return [(float(i["low"]), float(i["high"])) for i in self.config["inputs"]]

    @property
    def history(self) -> Table:
        h = self.config.get("history") or {}
        return Table(h, name=f"{self.name}_history")

    @property
    def hash(self) -> str:
        """SHA-256 of the weights (names, shapes, values)."""
        h = hashlib.sha256()
        for k in sorted(self.state):
            t = self.state[k].detach().cpu().contiguous()
            h.update(f"{k}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()

    def network(self, device="cpu"):
        """The network with the weights loaded, in eval mode, on ``device``."""
        from . import _nets as nets

        if self.is_forest:
            raise ParameterError(f"model '{self.name}' is a random forest, not a network")
        if self.module is not None:
            return self.module.to(device).eval()
        net = nets.build(self.arch, self.in_channels, self.out_channels, self.config["hparams"])
        try:
            net.load_state_dict(self.state, strict=True)
        except RuntimeError as e:
            raise InputError(f"model weights do not fit its architecture: {str(e).splitlines()[0]}",
                             self.metadata.get("source")) from None
        return net.to(device).eval()

    def __repr__(self) -> str:
        return (f"Model(name={self.name!r}, arch={self.arch!r}, input={self.input!r}, "
                f"classes={self.class_names})")


def save_model(model: Model, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``model`` as one safetensors file; its history also goes to ``<stem>.history.csv`` beside it."""
    from safetensors.torch import save_file

    from ..io._files import atomic_path, write_table

    path = Path(path)
    if path.suffix != SUFFIX:
        raise ParameterError(f"a model file must end in {SUFFIX} (or .zip, the BioImage Model Zoo's format, "
                             f"through damselfly.engine.segmentation.save_model), got '{path.name}'")
    if model.module is not None:
        raise ParameterError(f"model '{model.name}' came from a BioImage Model Zoo package: save it as .zip")
    doc = dict(model.config, format=FORMAT, format_version=FORMAT_VERSION, name=model.name)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state.items()}
    with atomic_path(path, overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={"damselfly": json.dumps(doc)})
    if len(model.history):
        write_table(model.history, path.with_suffix(".history.csv"), overwrite=True)
    return path


def load_model(path: str | os.PathLike) -> Model:
    """Read a model file written by :func:`save_model` (never executes code from the file)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    doc = read_document(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"not a readable model file (corrupt or truncated?): {e}", path) from None
    validate_weights(doc, state, path)
    model = Model(doc, state, name=doc.get("name") or path.stem)
    model.metadata["source"] = str(path)
    if not model.is_forest:
        model.network("cpu")  # the shapes were checked: this builds exactly what the file holds
    return model


def read_document(path: str | os.PathLike) -> dict:
    """The JSON document of a model file (classes, architecture, training...), checked, without reading
    the weights: :func:`load_model` starts here, and the checker reads class names here."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError("no such model file", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"not a readable model file (corrupt or truncated?): {e}", path) from None
    if "damselfly" not in meta:
        raise InputError("a safetensors file, but not a Damselfly model (no 'damselfly' document)", path)
    try:
        doc = json.loads(meta["damselfly"])
    except json.JSONDecodeError as e:
        raise InputError(f"the model's JSON document is corrupt: {e}", path) from None
    except RecursionError:
        raise InputError("the model's JSON document is nested too deep to be a model", path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"not a Damselfly model (format {found!r})", path)
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if _is_int(version) and version > FORMAT_VERSION:
        raise InputError(f"model format version {version} is newer than this Damselfly "
                         f"reads ({FORMAT_VERSION}); update Damselfly", path)
    validate_document(doc, path)
    return doc


#: The most inputs (modalities), context slices and classes a model file may describe.
MAX_INPUTS, MAX_CONTEXT, MAX_CLASSES = 16, 31, 255
WEIGHT_DTYPES = ("float32", "float16", "bfloat16", "float64")
#: What a model does: segmentation, or enhancement (:mod:`~damselfly.engine.restoration._enhance`).
TASKS = ("segment", "denoise", "restore")


def validate_document(doc, path) -> None:
    """Check a model file's JSON document field by field, before anything is built from it.

    Raises
    ------
    InputError
        Naming the file and the field that is missing or out of range.
    """
    from . import _nets as nets

    def bad(field, msg):
        return InputError(f"model document field '{field}': {msg}", path)

    if not isinstance(doc, dict):
        raise InputError("the model document is not a JSON object", path)
    missing = [k for k in ("arch", "hparams", "input", "inputs", "classes") if k not in doc]
    if missing:
        raise InputError(f"the model document lacks {', '.join(missing)}", path)
    version = doc.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise bad("format_version", f"this Damselfly reads version {FORMAT_VERSION}, got {version!r}")
    if doc["arch"] not in (*nets.DEFAULTS, "forest"):
        raise bad("arch", f"unknown architecture {doc['arch']!r} (known: {', '.join(nets.DEFAULTS)}, forest)")
    if not isinstance(doc["hparams"], dict):
        raise bad("hparams", "must be an object")
    try:
        if doc["arch"] == "forest":
            from ._forest import check_hparams

            check_hparams(doc["hparams"])
        else:
            with _meta_device():
                nets.build(doc["arch"], 1, 2, doc["hparams"])  # checks names and ranges; allocates nothing
    except ParameterError as e:
        raise bad("hparams", str(e)) from None
    if doc["input"] not in ("2d", "2.5d", "3d"):
        raise bad("input", f"must be 2d, 2.5d or 3d, got {doc['input']!r}")
    context = doc.get("context", 1)
    if not _is_int(context) or not 1 <= context <= MAX_CONTEXT or context % 2 == 0:
        raise bad("context", f"must be an odd whole number 1..{MAX_CONTEXT}, got {context!r}")
    inputs = doc["inputs"]
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_INPUTS:
        raise bad("inputs", f"must be a list of 1..{MAX_INPUTS} inputs")
    for i, one in enumerate(inputs):
        lo, hi = (one.get("low"), one.get("high")) if isinstance(one, dict) else (None, None)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in (lo, hi)) \
                or not lo < hi:
            raise bad(f"inputs[{i}]", f"needs finite numbers low < high for its normalisation, got {lo!r}, {hi!r}")
    task = doc.get("task", "segment")
    if task not in TASKS:
        raise bad("task", f"must be one of {', '.join(TASKS)}, got {task!r}")
    if task != "segment":
        return _validate_enhancement(doc, bad)
    classes = doc["classes"]
    if not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES:
        raise bad("classes", f"must be a list of 2..{MAX_CLASSES} classes")
    for i, c in enumerate(classes):
        color = c.get("color") if isinstance(c, dict) else None
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(color, list) \
                or len(color) not in (3, 4) or not all(_is_int(v) and 0 <= v <= 255 for v in color):
            raise bad(f"classes[{i}]", "needs a 'name' string and a 'color' of 3 or 4 integers 0..255")


def _validate_enhancement(doc: dict, bad) -> None:
    """The fields of a denoising or restoration model: its up-sampling, output range and network."""
    scale = doc.get("scale", [1, 1, 1])
    if not isinstance(scale, list) or len(scale) != 3 or not all(_is_int(v) and 1 <= v <= 8 for v in scale):
        raise bad("scale", f"must be 3 whole numbers 1..8, got {scale!r}")
    out = doc.get("output")
    lo, hi = (out.get("low"), out.get("high")) if isinstance(out, dict) else (None, None)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in (lo, hi)) or not lo < hi:
        raise bad("output", f"needs finite numbers low < high, got {out!r}")
    if (doc["arch"], doc["input"]) not in (("unet", "2d"), ("unet", "2.5d"), ("unet3d", "3d")) \
            or len(doc["inputs"]) != 1:
        raise bad("arch", "an enhancement model is a U-Net on one input: 2-D (2d, 2.5d) or 3-D (3d)")
    if not isinstance(doc.get("residual", False), bool):
        raise bad("residual", "must be true or false")


def out_channels(doc: dict) -> int:
    """Output channels of a model's network: one per class, or one grey value for an enhancement."""
    return len(doc["classes"]) if doc.get("task", "segment") == "segment" else 1


def validate_weights(doc: dict, state: dict, path) -> None:
    """Check the weights against the network the document describes: the same names, shapes and a
    floating-point dtype, all finite. The network is built on PyTorch's ``meta`` device (no memory)."""
    import torch

    from . import _nets as nets

    if doc["arch"] == "forest":
        from ._forest import check_model_arrays

        return check_model_arrays(doc, state, path)
    n_in = len(doc["inputs"]) * (doc.get("context", 1) if doc["input"] == "2.5d" else 1)
    with _meta_device():
        want = {k: (tuple(v.shape), v.dtype) for k, v in nets.build(doc["arch"], n_in, out_channels(doc),
                                                         doc["hparams"]).state_dict().items()}
    if set(want) != set(state):
        extra, lacking = sorted(set(state) - set(want)), sorted(set(want) - set(state))
        raise InputError(f"model weights do not fit its architecture (missing {lacking[:3]}, unexpected "
                         f"{extra[:3]})", path)
    for k, t in state.items():
        shape, dtype = want[k]
        if tuple(t.shape) != shape:
            raise InputError(f"model weight '{k}' has shape {tuple(t.shape)}; the architecture needs {shape}", path)
        if dtype.is_floating_point and str(t.dtype).removeprefix("torch.") not in WEIGHT_DTYPES:
            raise InputError(f"model weight '{k}' is {t.dtype}; weights must be floating point", path)
        if not dtype.is_floating_point and t.dtype != dtype:  # counters such as num_batches_tracked
            raise InputError(f"model buffer '{k}' is {t.dtype}; the architecture needs {dtype}", path)
        if dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            raise InputError(f"model weight '{k}' holds NaN or infinite values", path)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _meta_device():
    import torch

    return torch.device("meta")
