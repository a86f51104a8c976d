"""What the network and the forest check and record about their training inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..core.data import Labels, Volume
from ..core.errors import InputError, ParameterError


def norm_range(vol: Volume) -> tuple[float, float]:
    from ..core.volume_ops import sample

    s = sample(vol)
    s = s[np.isfinite(s)]
    lo, hi = (float(v) for v in np.percentile(s, [0.5, 99.5])) if s.size else (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def data_hash(images: Sequence[Volume], labels: Labels) -> str:
    h = hashlib.sha256()
    for v in [*images, labels]:
        h.update(v.hash().encode())
    return h.hexdigest()


def check_images(images: Sequence[Volume], labels: Labels) -> None:
    """At least one 3-D input volume, each on the labels' grid, and labels with classes."""
    if not images:
        raise ParameterError("train needs at least one input volume")
    for im in images:
        if im.data.ndim != 3:
            raise InputError(f"expected a 3-D scalar volume, got shape {im.data.shape}", im.source)
        im.check_same_geometry(labels)
    if not labels.classes:
        raise InputError("the labels have no classes", labels.source)
