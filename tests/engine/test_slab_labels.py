"""Labels straight from the network when a slice is one tile (issue 34): the same labels as the general
path (normalise, context stack, tiles, softmax, blending, argmax) for 2-D, 2.5-D, multi-input, masked
and flipped (TTA) inference, from uint16 and float casting_scans; other models take the general path."""

from functools import partial

import numpy as np
import pytest

from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation import _inference as inf
from damselfly.engine.segmentation import _slab_labels as fast

TINY = dict(arch="unet", epochs=2, steps=3, batch=4, patch=32, seed=5)
train = partial(seg_actions.train, ctx=RunContext(device="cpu"))


@pytest.fixture(scope="module")
def models(casting_scans):
    vol, raw, second, lab = casting_scans
    return {"2.5d": train(vol, lab, **TINY), "2d": train(vol, lab, input="2d", **TINY),
            "uint16": train(raw, lab, **TINY), "two inputs": train([vol, second], lab, input="2d", **TINY)}


def scrambled(model):
    """The model's network plus a random 1x1 convolution of its input: a few training steps predict one
    class everywhere, and labels that vary with the grey values are what the comparison needs."""
    import torch

    class Mixed(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            torch.manual_seed(0)
            self.net, self.size_multiple = net, getattr(net, "size_multiple", 1)
            self.mix = torch.nn.Conv2d(model.in_channels, len(model.config["classes"]), 1)

        def forward(self, x):
            return self.net(x) + 20 * self.mix(x)

    return Mixed(model.network(torch.device("cpu"))).eval()


def general(monkeypatch):
    """Switch the fast path off (the labels then come from probabilities and their argmax)."""
    monkeypatch.setattr(inf, "applies", lambda *a, **k: False)


def near_ties(model, images, **options) -> np.ndarray:
    """Where the two most probable classes are within 1e-5 (labels there may go either way)."""
    p = np.zeros(images[0].shape + (len(model.config["classes"]),), np.float32)
    inf.probabilities(model, images, p, **options)
    top = np.sort(p, axis=-1)
    return top[..., -1] - top[..., -2] < 1e-5


@pytest.mark.parametrize("name, tta, masked", [("2.5d", False, False), ("2.5d", True, False), ("2d", False, True),
                                               ("uint16", False, False), ("two inputs", True, True)])
def test_labels_equal_the_general_path(casting_scans, models, monkeypatch, name, tta, masked):
    vol, raw, second, _lab = casting_scans
    model = models[name]
    images = {"uint16": [raw], "two inputs": [vol, second]}.get(name, [vol])
    mask = None
    if masked:
        mask = np.zeros(vol.shape, bool)
        mask[:, 8:40, 4:30] = True
        mask[12:15] = False  # slices with nothing to label
    options = dict(device="cpu", tile=48, tta=tta, network=scrambled(model))
    assert fast.applies(inf.Predictor(model, **options), vol.shape)
    quick = np.zeros(vol.shape, np.uint8)
    inf.segment(model, images, quick, mask=mask, outside=1, **options)
    with monkeypatch.context() as m:
        general(m)
        slow = np.zeros(vol.shape, np.uint8)
        inf.segment(model, images, slow, mask=mask, outside=1, **options)
    differ = quick != slow
    assert differ.mean() < 1e-3 and not (differ & ~near_ties(model, images, **options)).any()
    assert len(np.unique(quick[:, 8:40, 4:30])) >= 2  # labels that vary: a real comparison


def test_where_the_path_does_not_apply(casting_scans, models):
    vol = casting_scans[0]
    small_tiles = inf.Predictor(models["2.5d"], device="cpu", tile=32)  # a 48 x 48 slice is two tiles a side
    assert not fast.applies(small_tiles, vol.shape)
    assert fast.slab_labels(small_tiles, [vol.data], 0, 4) is None
    odd = inf.Predictor(models["2.5d"], device="cpu", tile=64)
    assert not fast.applies(odd, (10, 50, 48))  # 50 is not a multiple of the U-Net's 8: padded, general path
