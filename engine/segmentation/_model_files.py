"""Model files of both kinds, by their suffix: ``.dfmodel`` (Damselfly's, :mod:`._model`) and ``.zip``
(BioImage Model Zoo packages, :mod:`._zoo`). The actions, the checker and the faces use these.

Examples
--------
>>> save_model(model, "porosity.zip")          # doctest: +SKIP
>>> load_model("porosity.zip").class_names     # doctest: +SKIP
['air', 'metal', 'pore']
"""

from __future__ import annotations

import os
from pathlib import Path

from . import _model
from ._model import Model

ZOO_SUFFIX = ".zip"


def _is_zoo(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() == ZOO_SUFFIX


def save_model(model: Model, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``model`` as a ``.dfmodel`` file, or as a zoo package where ``path`` ends in ``.zip``."""
    if _is_zoo(path):
        from ._zoo import save_zoo_model

        return save_zoo_model(model, path, overwrite)
    return _model.save_model(model, path, overwrite)


def load_model(path: str | os.PathLike) -> Model:
    """Read a ``.dfmodel`` file or a zoo package (``.zip``); never executes Python code from the file."""
    if _is_zoo(path):
        from ._zoo import load_zoo_model

        return load_zoo_model(path)
    return _model.load_model(path)


def read_document(path: str | os.PathLike) -> dict:
    """A model file's document (its classes, for the checker) without loading its weights."""
    if _is_zoo(path):
        from ._zoo import document

        return document(path)
    return _model.read_document(path)
