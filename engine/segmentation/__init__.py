"""Segmentation: networks and the pixel classifier, trained from painted slices and applied to
whole scans.

- ``_model``: :class:`Model` and its file (``.dfmodel``, safetensors); ``_zoo``: BioImage Model Zoo packages
  (``.zip``); ``_model_files``: either, by suffix; ``_nets``: the networks.
- ``_training``: training a network; ``_patches``: its patches and augmentation; ``_trainset``: checks of
  training inputs; ``_autotrain``: choosing the method (``arch="auto"``).
- ``_classifier``, ``_forest``, ``_features``: the random-forest pixel classifier (the ilastik approach).
- ``_inference``: applying a model to whole scans in slabs; ``_streaming``: slabs read ahead onto the
  device, computed there, written behind; ``_tiling``: sliding-window prediction over any predictor;
  ``_slab_labels`` and ``_slab_kernels``: on the CPU, labels straight from the network where a slice is
  one tile.

PyTorch loads when one of these names is first read, not when the package is imported.
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports

__all__ = ["Model", "save_model", "load_model", "sliding_window", "segment", "probabilities", "uncertainty", "predictor", "dice_scores"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "Model": "._model",
    "save_model": "._model_files",
    "load_model": "._model_files",
    "sliding_window": "._tiling",
    "segment": "._inference",
    "probabilities": "._inference",
    "uncertainty": "._inference",
    "predictor": "._inference",
    "dice_scores": "._training",
})

if TYPE_CHECKING:
    from ._inference import predictor, probabilities, segment, uncertainty
    from ._model import Model
    from ._model_files import load_model, save_model
    from ._tiling import sliding_window
    from ._training import dice_scores
