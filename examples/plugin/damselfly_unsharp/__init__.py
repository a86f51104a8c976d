"""An example Damselfly plugin: unsharp masking, slice by slice, streamed for scans on disk."""

from __future__ import annotations

from functools import partial

import numpy as np
from scipy import ndimage

from damselfly.engine import Volume, action
from damselfly.engine.core.errors import ParameterError
from damselfly.engine.core.volume_ops import map_slabs


def _sharpen(slab: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    x = slab.astype(np.float32)
    blurred = ndimage.gaussian_filter(x, sigma=(0, sigma, sigma), mode="reflect")  # in each slice
    return x + amount * (x - blurred)


@action("unsharp_mask", result="sharp", category="Process")
def unsharp_mask(volume: Volume, sigma: float = 1.0, amount: float = 1.0) -> Volume:
    """Sharpen each slice: add ``amount`` times the difference between the slice and its blurred copy.

    Parameters
    ----------
    volume : Volume
        The scan.
    sigma : float
        Width of the blur, in voxels (in-plane).
    amount : float
        Strength of the sharpening (0: unchanged).

    Returns
    -------
    Volume
        The sharpened scan, float32, the same geometry.

    Examples
    --------
    ``sharp = unsharp_mask(raw, sigma=1.5, amount=0.8)``
    """
    if not sigma > 0 or not amount >= 0:
        raise ParameterError(f"unsharp_mask needs sigma > 0 and amount >= 0, got sigma={sigma}, amount={amount}")
    # a picklable function: on a cluster the slabs of a Zarr scan go to the workers
    data = map_slabs(volume, partial(_sharpen, sigma=float(sigma), amount=float(amount)), np.float32, "Unsharp mask")
    return volume.as_volume(data)
