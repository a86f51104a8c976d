"""Enhancement by deep learning: self-supervised denoising, paired restoration, up-sampling.

- ``_enhance``: training and applying enhancers; ``_resample``: cubic up-sampling of any slice range.
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports

__all__ = ["Enhancer", "enhance", "train", "upsample"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "Enhancer": "._enhance",
    "enhance": "._enhance",
    "train": "._enhance",
    "upsample": "._resample",
})

if TYPE_CHECKING:
    from ._enhance import Enhancer, enhance, train
    from ._resample import upsample
