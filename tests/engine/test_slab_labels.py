"""Labels straight from the network when a slice is one tile (issue 34): the same labels as the general
path (normalise, context stack, tiles, softmax, blending, argmax) for 2-D, 2.5-D, multi-input, masked
and flipped (TTA) inference, from uint16 and float scans; other models take the general path."""

from functools import partial

import numpy as np
import pytest

from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation import _inference as inf
from damselfly.engine.segmentation import _slab_labels as fast

TINY = dict(arch="unet", epochs=2, steps=3, batch=4, patch=32, seed=5)
train = partial(seg_actions.train, ctx=RunContext(device="cpu"))


@pytest.fixture(scope="module")
def scans(casting_small):
    vol, truth = casting_small  # (40, 48, 48) float32 grey values
    lab = sparse_labels(truth, slices=[8, 20, 31])
    raw = vol.with_data((np.clip(np.asarray(vol.data), 0, None) * 4000).astype(np.uint16), name="raw")
    second = vol.with_data(np.asarray(vol.data)[:, ::-1].copy(), name="flipped")
    return vol, raw, second, lab


@pytest.fixture(scope="module")
def models(scans):
    vol, raw, second, lab = scans
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
    monkeypatch.setattr(inf, "slab_labels", lambda *a, **k: None)
    monkeypatch.setattr(inf, "applies", lambda *a, **k: False)


def near_ties(model, images, **options) -> np.ndarray:
    """Where the two most probable classes are within 1e-5 (labels there may go either way)."""
    p = np.zeros(images[0].shape + (len(model.config["classes"]),), np.float32)
    inf.probabilities(model, images, p, **options)
    top = np.sort(p, axis=-1)
    return top[..., -1] - top[..., -2] < 1e-5


@pytest.mark.parametrize("name, tta, masked", [("2.5d", False, False), ("2.5d", True, False), ("2d", False, True),
                                               ("uint16", False, False), ("two inputs", True, True)])
def test_labels_equal_the_general_path(scans, models, monkeypatch, name, tta, masked):
    vol, raw, second, _lab = scans
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


def test_where_the_path_does_not_apply(scans, models):
    vol = scans[0]
    small_tiles = inf.Predictor(models["2.5d"], device="cpu", tile=32)  # a 48 x 48 slice is two tiles a side
    assert not fast.applies(small_tiles, vol.shape)
    assert fast.slab_labels(small_tiles, [vol.data], 0, 4) is None
    odd = inf.Predictor(models["2.5d"], device="cpu", tile=64)
    assert not fast.applies(odd, (10, 50, 48))  # 50 is not a multiple of the U-Net's 8: padded, general path


def io_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("damselfly-io")]


def test_the_io_thread_ends_with_the_work_on_stop_and_on_errors(scans, models):
    """Reads ahead and writes behind run in one thread per call: after a finished run, a Stop and an error
    in the network, none is left, and the error is the network's."""
    import torch

    from damselfly.engine import Cancelled
    from damselfly.engine.core import progress

    vol = scans[0]
    model = models["2.5d"]
    out = np.zeros(vol.shape, np.uint8)
    inf.segment(model, [vol], out, device="cpu", tile=48)
    assert io_threads() == []

    calls = []

    class Failing(torch.nn.Module):
        size_multiple = 8

        def forward(self, x):
            calls.append(len(x))
            if len(calls) == 2:
                raise RuntimeError("the network broke")
            return torch.zeros((len(x), 3) + x.shape[2:])

    with pytest.raises(RuntimeError, match="the network broke"):
        inf.segment(model, [vol], out, device="cpu", tile=48, batch=2, network=Failing())
    assert io_threads() == [] and len(calls) == 2

    stop = progress.Reporter()
    stop.cancel()
    with progress.reporting(stop), pytest.raises(Cancelled):
        inf.segment(model, [vol], out, device="cpu", tile=48)
    assert io_threads() == []


@pytest.mark.parametrize("name, tta, masked", [("2.5d", False, False), ("2d", True, True), ("two inputs", False, False)])
def test_probabilities_and_uncertainty_equal_the_general_path(scans, models, monkeypatch, name, tta, masked):
    vol, _raw, second, _lab = scans
    model = models[name]
    images = [vol, second] if name == "two inputs" else [vol]
    mask = None
    if masked:
        mask = np.zeros(vol.shape, bool)
        mask[:, 8:40, 4:30] = True
    options = dict(device="cpu", tile=48, tta=tta, network=scrambled(model))
    k = len(model.config["classes"])
    results = {}
    for path in ("one tile", "general"):
        with monkeypatch.context() as m:
            if path == "general":
                general(m)
                m.setattr(inf, "slab_probabilities", lambda *a, **k: None)
            every, one, entropy = (np.zeros(vol.shape + (k,), np.float32), np.zeros(vol.shape, np.float32),
                                   np.zeros(vol.shape, np.float32))
            inf.probabilities(model, images, every, mask=mask, **options)
            inf.probabilities(model, images, one, index=2, mask=mask, **options)
            inf.uncertainty(model, images, entropy, mask=mask, **options)
            results[path] = (every, one, entropy)
    for fast_, slow_ in zip(results["one tile"], results["general"]):
        np.testing.assert_allclose(fast_, slow_, atol=2e-6)
    every = results["one tile"][0]
    assert np.allclose(every.sum(-1)[mask if masked else slice(None)], 1.0, atol=1e-5)
    assert every[..., 1].std() > 0.01  # probabilities that vary: a real comparison
