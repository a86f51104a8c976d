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
import platform
from pathlib import Path
from typing import Any

import numpy as np

from .data import LabelClass, Table, make_classes
from .errors import InputError, ParameterError

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

    # -- description ------------------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.config["arch"]

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
        from . import nets

        net = nets.build(self.arch, self.in_channels, len(self.config["classes"]), self.config["hparams"])
        try:
            net.load_state_dict(self.state, strict=True)
        except RuntimeError as e:
            raise InputError(f"model weights do not fit its architecture: {str(e).splitlines()[0]}",
                             self.metadata.get("source")) from None
        return net.to(device).eval()

    def __repr__(self) -> str:
        return (f"Model(name={self.name!r}, arch={self.arch!r}, input={self.input!r}, "
                f"classes={self.class_names})")


def versions() -> dict[str, str]:
    import torch

    from . import __version__

    return {"damselfly": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def save_model(model: Model, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``model`` as one safetensors file; its history also goes to ``<stem>.history.csv`` beside it."""
    from safetensors.torch import save_file

    from .io import atomic_path, write_table

    path = Path(path)
    if path.suffix != SUFFIX:
        raise ParameterError(f"a model file must end in {SUFFIX}, got '{path.name}'")
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
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError("no such model file", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"not a readable model file (corrupt or truncated?): {e}", path) from None
    if "damselfly" not in meta:
        raise InputError("a safetensors file, but not a Damselfly model (no 'damselfly' document)", path)
    try:
        doc = json.loads(meta["damselfly"])
    except json.JSONDecodeError as e:
        raise InputError(f"the model's JSON document is corrupt: {e}", path) from None
    if doc.get("format") != FORMAT:
        raise InputError(f"not a Damselfly model (format {doc.get('format')!r})", path)
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(f"model format version {doc['format_version']} is newer than this Damselfly "
                         f"reads ({FORMAT_VERSION}); update Damselfly", path)
    missing = [k for k in ("arch", "hparams", "input", "inputs", "classes") if k not in doc]
    if missing:
        raise InputError(f"the model document lacks {', '.join(missing)}", path)
    model = Model(doc, state, name=doc.get("name") or path.stem)
    model.metadata["source"] = str(path)
    model.network("cpu")  # fails clearly now if weights and architecture disagree
    return model
