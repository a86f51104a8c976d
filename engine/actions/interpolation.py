"""``interpolate_labels``: dense labels between a few painted slices, guided by the image."""

from __future__ import annotations

import warnings

import numpy as np

from ..core import progress
from ..core.data import Labels, Volume
from ..core.errors import InputError, ParameterError
from ..core.volume_ops import output_like, require_finite
from ..registry import action


@action("interpolate_labels", result="filled", category="Segment")
def interpolate_labels(image: Volume, labels: Labels, beta: float = 130.0, tol: float = 1e-3) -> Labels:
    """Labels for the slices between painted slices, following the image's edges (the random walker of
    Grady 2006, ``skimage.segmentation.random_walker``): a full ground truth, or a first segmentation,
    from a few painted slices without training; usable as training labels.

    Between each two consecutive painted z-slices, every unpainted voxel gets the class that a random
    walk started there most probably reaches first among the painted voxels of the two slices (and of
    any painted voxels in between), where steps across strong grey-value edges are unlikely. Painted
    voxels keep their class; slices before the first and after the last painted slice stay unlabelled
    (0). Each gap is solved on its own, so memory grows with the gap, not with the scan.

    Parameters
    ----------
    image : Volume
        The scan (grey values; its scale does not matter).
    labels : Labels
        Sparse labels on the scan's grid: 0 = unpainted, 1..K the classes. At least two z-slices must
        hold painted voxels.
    beta : float
        Edge sensitivity: larger follows weaker edges more strictly.
    tol : float
        Tolerance of the conjugate-gradient solver.

    Returns
    -------
    Labels
        The same classes, painted slices and everything between them labelled.

    Examples
    --------
    >>> import numpy as np
    >>> from damselfly.engine import Labels, Volume, make_classes
    >>> img = np.zeros((9, 20, 20), np.float32); img[:, 5:15, 5:15] = 1.0   # a bright square prism
    >>> lab = np.zeros(img.shape, np.uint8); lab[[0, 8]] = 1; lab[[0, 8], 5:15, 5:15] = 2
    >>> out = interpolate_labels(Volume(img), Labels(lab, classes=make_classes(["air", "box"])))
    >>> bool((np.asarray(out.data)[4] == lab[0]).all())
    True
    """
    from skimage.segmentation import random_walker

    image.check_same_geometry(labels)
    require_finite(image)
    if image.channels != 1:
        raise InputError("interpolate_labels works on single-channel volumes", image.source)
    if beta <= 0 or tol <= 0:
        raise ParameterError(f"beta and tol must be positive, got beta={beta}, tol={tol}")
    painted = [z for z in range(labels.shape[0]) if np.any(labels.data[z])]
    if len(painted) < 2:
        raise InputError(f"interpolate_labels needs at least two painted z-slices, found {len(painted)}",
                         labels.source)
    out = output_like([image, labels], labels.shape, labels.data.dtype)
    for z in range(0, labels.shape[0], 16):  # painted voxels and the unlabelled ends, as they are
        out[z:z + 16] = np.asarray(labels.data[z:z + 16])
    task = progress.task("Interpolating labels between painted slices", total=len(painted) - 1)
    for a, b in zip(painted[:-1], painted[1:]):
        if b > a + 1:
            seeds = np.asarray(labels.data[a:b + 1]).astype(np.int32)
            grey = np.asarray(image.data[a:b + 1], dtype=np.float64)
            if np.ptp(grey) == 0:  # a flat image: no edges, every step equally likely (a faint ramp keeps
                grey = np.broadcast_to(np.arange(b - a + 1.0)[:, None, None] * 1e-6, grey.shape).copy()
                # the solver's normalisation by the standard deviation defined)
            present = np.unique(seeds[seeds > 0])
            if len(present) == 1:  # one class painted here: it is everywhere in between
                gap = np.where(seeds > 0, seeds, present[0])
            else:
                with warnings.catch_warnings():  # "probability range outside [0, 1]" by the solver's
                    warnings.filterwarnings("ignore", "The probability range", UserWarning)  # tolerance:
                    gap = random_walker(grey, seeds, beta=beta, mode="cg_j", tol=tol,  # the argmax holds
                                        spacing=tuple(float(s) for s in image.spacing))
            out[a + 1:b] = gap[1:-1].astype(out.dtype)
        task.advance()
    task.finish()
    return labels.as_labels(out, labels.classes, name=f"{labels.name}_interpolated",
                            metadata={"interpolated_between": painted})
