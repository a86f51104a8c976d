"""The device pipeline (issue 34): slabs read ahead and moved to the device, normalised, stacked with
their context, tiled, blended and reduced to labels there, written behind. Checked against the old
pipeline written out here in NumPy (normalise the volume, mirror it at its ends, stack each slice's
context, cut mirrored-padded tiles, softmax, blend with the window, argmax) for 2-D, 2.5-D, 3-D, two
inputs, uint16 casting_scans, masks, flips, tiles smaller than a slice, and enhancement with up-sampling; and
the threads: they end on Stop, on errors and after out-of-memory back-off, leaving nothing behind."""

import threading
from functools import partial
from itertools import product

import numpy as np
import pytest
import torch

from damselfly.engine import Cancelled
from damselfly.engine.actions import enhancement as E
from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.core import progress
from damselfly.engine.core.context import RunContext
from damselfly.engine.restoration import _enhance as R
from damselfly.engine.restoration._resample import upsample
from damselfly.engine.segmentation import _inference as inf
from damselfly.engine.segmentation import _streaming
from damselfly.engine.segmentation import _tiling as tiling
from damselfly.engine.segmentation import _training as training
from damselfly.engine.segmentation._model import Model

CPU = RunContext(device="cpu")
TINY = dict(epochs=1, steps=2, batch=2, patch=32, seed=5)


def jolted(model: Model, seed: int = 0) -> Model:
    """``model`` with random changes to its convolution weights: a few training steps predict one class
    everywhere, and outputs that vary from voxel to voxel are what a comparison needs."""
    g = torch.Generator().manual_seed(seed)
    state = {k: v + 2 * v.std() * torch.randn(v.shape, generator=g) if k.endswith("weight") and v.ndim > 1 else v
             for k, v in model.state.items()}
    return Model(model.config, state, model.name)


@pytest.fixture(scope="module")
def models(casting_scans):
    vol, raw, second, lab = casting_scans
    train = partial(seg_actions.train, ctx=CPU, arch="unet", **TINY)
    return {"2.5d": jolted(train(vol, lab)), "2d": jolted(train(vol, lab, input="2d")),
            "uint16": jolted(train(raw, lab)), "two inputs": jolted(train([vol, second], lab, input="2d")),
            "3d": jolted(training.train([vol], lab, arch="unet3d", input="3d", hparams={"levels": 2}, device="cpu",
                                        schedule=training.Schedule(epochs=1, steps=2, batch=2, patch=16)))}


# -- the old pipeline, in NumPy ---------------------------------------------------------------------
def blend_numpy(items, forward, tiles, overlap, blend, multiple, masks=None):
    """Tiles of ``items`` (n, C, *spatial) through ``forward``, blended by the window: the old
    ``sliding_window``, item by item and tile by tile."""
    n, spatial = items.shape[0], items.shape[2:]
    padded = [s if s >= t else tiling.round_up(s, multiple) for s, t in zip(spatial, tiles)]
    tiles = [min(t, p) for t, p in zip(tiles, padded)]
    pad = [(0, p - s) for p, s in zip(padded, spatial)]
    mode = "reflect" if all(s > p[1] for s, p in zip(spatial, pad)) else "symmetric"
    items = np.pad(items, [(0, 0), (0, 0)] + pad, mode=mode)
    masks = None if masks is None else np.pad(masks, [(0, 0)] + pad)
    starts = list(product(*[tiling.tile_starts(p, t, overlap) for p, t in zip(padded, tiles)]))
    w = tiling.window(tiles, blend) if len(starts) > 1 else np.ones(tiles, np.float32)
    acc, wsum = None, np.zeros((n, *padded), np.float32)
    for i, st in product(range(n), starts):
        sl = tuple(slice(s, s + t) for s, t in zip(st, tiles))
        if masks is not None and not masks[(i,) + sl].any():
            continue
        p = forward(items[(slice(i, i + 1), slice(None)) + sl])[0]
        if acc is None:
            acc = np.zeros((n, p.shape[0], *padded), np.float32)
        acc[(i, slice(None)) + sl] += p * w
        wsum[(i,) + sl] += w
    acc = acc / np.maximum(wsum, 1e-12)[:, None]
    return acc[(slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)]


def softmax_forward(net, tta, activation=True):
    def forward(x):
        t = torch.from_numpy(np.ascontiguousarray(x))
        with torch.inference_mode():
            def once(v):
                y = net(v).float()
                return torch.softmax(y, 1) if activation else y
            if not tta:
                return once(t).numpy()
            a, b = t.ndim - 2, t.ndim - 1  # the in-plane axes
            flips = [(), (b,), (a,), (a, b)]
            return (sum(torch.flip(once(torch.flip(t, f)), f) if f else once(t) for f in flips) / 4).numpy()
    return forward


def old_probabilities(model, arrays, pred, tta=False, mask=None, step=7):
    """(z, K, y, x): the old pipeline over the whole volume (3-D: in slabs of ``step``)."""
    norm = [(np.float32(lo), np.float32(1.0 / (hi - lo))) for lo, hi in model.normalization]
    vols = np.stack([(np.asarray(a).astype(np.float32) - lo) * s for a, (lo, s) in zip(arrays, norm)])
    nz = vols.shape[1]
    forward = softmax_forward(model.network(torch.device("cpu")).eval(), tta)
    if model.input == "3d":  # slab by slab (``step`` slices), each with a mirrored halo
        h, parts = pred.halo, []
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            zi = tiling.reflect_index(np.arange(z0 - h, z1 + h), nz)
            m = None if mask is None else mask[zi][None]
            p = blend_numpy(vols[:, zi][None], forward, [pred.tile_z, pred.tile, pred.tile], pred.overlap,
                            pred.blend, pred.multiple, m)[0]
            parts.append(p[:, h:h + z1 - z0].transpose(1, 0, 2, 3))
        return np.concatenate(parts)
    k = model.context if model.input == "2.5d" else 1
    zi = tiling.reflect_index(np.arange(nz)[:, None] + np.arange(k)[None] - k // 2, nz)  # (z, k)
    items = vols[:, zi].transpose(1, 0, 2, 3, 4).reshape(nz, -1, *vols.shape[2:])
    return blend_numpy(items, forward, [pred.tile, pred.tile], pred.overlap, pred.blend, pred.multiple, mask)


def near_ties(p: np.ndarray) -> np.ndarray:
    top = np.sort(p, axis=1)
    return top[:, -1] - top[:, -2] < 1e-5


CASES = {  # name: (model, options, masked)
    "2.5d, one tile": ("2.5d", dict(tile=48), False),
    "2.5d, blended tiles, flips": ("2.5d", dict(tile=24, overlap=0.5, tta=True), False),
    "2d, overlapping tiles, masked": ("2d", dict(tile=32), True),
    "2.5d, slices padded to the network": ("2.5d", dict(tile=64), False),
    "uint16": ("uint16", dict(tile=48), False),
    "two inputs, linear blend, masked": ("two inputs", dict(tile=24, blend="linear"), True),
    "3d": ("3d", dict(tile=32), False),
    "3d, masked": ("3d", dict(tile=32), True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_device_pipeline_equals_the_old_one(casting_scans, models, monkeypatch, case):
    vol, raw, second, _ = casting_scans
    name, options, masked = CASES[case]
    model = models[name]
    images = {"uint16": [raw], "two inputs": [vol, second]}.get(name, [vol])
    if "padded" in case:  # 45 x 46 slices: the U-Net takes multiples of 8
        images = [vol.with_data(np.asarray(vol.data)[:, :45, :46].copy())]
        vol = images[0]
    mask = None
    if masked:
        mask = np.zeros(vol.shape, bool)
        mask[:, 8:40, 4:30] = True
        mask[12:15] = False  # slices with nothing to label
    options = dict(device="cpu", **options)
    pred = inf.Predictor(model, **options)
    old = old_probabilities(model, [im.data for im in images], pred, options.get("tta", False), mask)
    inside = np.ones(vol.shape, bool) if mask is None else mask
    monkeypatch.setattr(inf, "slab_size", lambda *a, **k: 7)  # several slabs: reads ahead, writes behind
    monkeypatch.setattr(inf, "applies", lambda *a, **k: False)  # not the compiled passes of the CPU
    k = old.shape[1]
    probs = np.zeros(vol.shape + (k,), np.float32)
    inf.probabilities(model, images, probs, mask=mask, **options)
    np.testing.assert_allclose(probs, old.transpose(0, 2, 3, 1) * inside[..., None], atol=2e-5)
    labels = np.zeros(vol.shape, np.uint8)
    inf.segment(model, images, labels, mask=mask, outside=1, **options)
    expected = np.where(inside, old.argmax(1) + 1, 1)
    differ = labels != expected
    assert not (differ & ~near_ties(old)).any() and differ.mean() < 1e-3
    entropy = np.zeros(vol.shape, np.float32)
    inf.uncertainty(model, images, entropy, mask=mask, **options)
    q = np.clip(old, 1e-12, 1)
    np.testing.assert_allclose(entropy, -(q * np.log(q)).sum(1) / np.log(k) * inside, atol=5e-5)
    assert len(np.unique(expected[inside])) >= 2 and probs[..., 0].std() > 0.01  # a real comparison
    wide = np.zeros(vol.shape, np.uint16)  # labels as uint16 travel as int16 from the device
    inf.segment(model, images, wide, mask=mask, outside=1, **options)
    assert np.array_equal(wide, labels)


@pytest.fixture(scope="module")
def pair():
    from damselfly.engine.core import phantoms

    clean, _ = phantoms.casting((16, 48, 48), seed=4, photons=1e9)
    c = np.asarray(clean.data, np.float32)
    noisy = clean.with_data((c + np.random.default_rng(0).normal(0, 2000, c.shape)).astype(np.float32), name="noisy")
    coarse = clean.with_data(c.reshape(8, 2, 24, 2, 24, 2).mean(axis=(1, 3, 5)), spacing=np.array(clean.spacing) * 2,
                             name="coarse")
    return noisy, clean.with_data(c, name="clean"), coarse


def old_enhanced(model, data, enh):
    """The old enhancement: up-sample, normalise, mirror, context, tiles, blend, residual, output range."""
    lo, hi = model.normalization[0]
    vol = (upsample(data, model.scale) if any(f > 1 for f in model.scale) else np.asarray(data, np.float32))
    vol = (vol.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    nz = vol.shape[0]
    forward = softmax_forward(model.network(torch.device("cpu")).eval(), enh.run.tta, activation=False)
    if enh.three_d:
        zi = tiling.reflect_index(np.arange(-enh.h, nz + enh.h), nz)
        y = blend_numpy(vol[zi][None, None], forward, [enh.tile_z, enh.tile, enh.tile], enh.overlap, enh.blend,
                        enh.multiple)[0, 0, enh.h:enh.h + nz]
        centre = vol
    else:
        c = model.context
        zi = tiling.reflect_index(np.arange(nz)[:, None] + np.arange(c)[None] - c // 2, nz)
        y = blend_numpy(vol[zi], forward, [enh.tile, enh.tile], enh.overlap, enh.blend, enh.multiple)[:, 0]
        centre = vol
    if model.config.get("residual"):
        y = y + centre
    out_lo, out_hi = model.output_range
    return y * np.float32(out_hi - out_lo) + np.float32(out_lo)


@pytest.mark.parametrize("kind", ["2.5d denoiser", "3d denoiser", "up-sampling restoration"])
def test_enhance_on_the_device_pipeline_equals_the_old_one(pair, kind):
    noisy, clean, coarse = pair
    if kind == "2.5d denoiser":
        model, image = E.train_denoiser(noisy, ctx=CPU, **TINY), noisy
    elif kind == "3d denoiser":
        model, image = E.train_denoiser(noisy, ctx=CPU, input="3d", **TINY), noisy
    else:
        model, image = E.train_restoration(coarse, clean, ctx=CPU, **TINY), coarse
    model = jolted(model, 1)
    shape = tuple(s * f for s, f in zip(image.shape, model.scale))
    out = np.zeros(shape, np.float32)
    R.enhance(model, image, out, device="cpu", tile=32, tta=True, budget=6 * 48 * 48 * 4 * (3 * model.context + 4))
    old = old_enhanced(model, image.data, R.Enhancer(model, "cpu", tile=32, tta=True))
    scale = float(np.abs(old).max())
    np.testing.assert_allclose(out, old, atol=2e-5 * scale)
    assert np.abs(old - np.asarray(clean.data)).mean() > 0 and old.std() > 0.01 * scale


# -- the threads -------------------------------------------------------------------------------------
def io_threads() -> list:
    return [t for t in threading.enumerate() if t.name.startswith("damselfly-io")]


@pytest.mark.parametrize("path", ["device pipeline", "compiled passes"])
def test_the_threads_end_on_stop_errors_and_out_of_memory(casting_scans, models, monkeypatch, path):
    """The read and write threads of the device pipeline (and of the CPU's compiled passes for one-tile
    labels): after a run, a Stop, an error in the network, an error writing, and a simulated
    out-of-memory (the batch halves, the result is the same) none is left, and every staging object
    released its buffers."""
    vol = casting_scans[0]
    model = models["2.5d"]
    monkeypatch.setattr(inf, "slab_size", lambda *a, **k: 5)
    if path == "device pipeline":
        monkeypatch.setattr(inf, "applies", lambda *a, **k: False)
    stagings = []
    real_close = _streaming.Staging.close

    def close(self):
        stagings.append(self)
        real_close(self)

    monkeypatch.setattr(_streaming.Staging, "close", close)
    expected = np.zeros(vol.shape, np.uint8)
    inf.segment(model, [vol], expected, device="cpu", tile=48, batch=8)
    assert io_threads() == []

    calls = []

    class Failing(torch.nn.Module):
        size_multiple = 8

        def forward(self, x):
            calls.append(len(x))
            if len(calls) == 2:
                raise RuntimeError("the network broke")
            return torch.zeros((len(x), 3) + x.shape[2:])

    out = np.zeros(vol.shape, np.uint8)
    with pytest.raises(RuntimeError, match="the network broke"):
        inf.segment(model, [vol], out, device="cpu", tile=48, network=Failing())
    assert io_threads() == [] and len(calls) == 2

    class Unwritable(np.ndarray):
        def __setitem__(self, key, value):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        inf.segment(model, [vol], np.zeros(vol.shape, np.uint8).view(Unwritable), device="cpu", tile=48)
    assert io_threads() == []

    stop = progress.Reporter()
    stop.cancel()
    with progress.reporting(stop), pytest.raises(Cancelled):
        inf.segment(model, [vol], out, device="cpu", tile=48)
    assert io_threads() == []

    if path == "compiled passes":  # they run on the CPU only: no out-of-memory back-off, no staging
        assert stagings == []
        return
    seen = []
    real = inf.NetworkPredictor._forward

    def tight(self, x):
        seen.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, x)

    monkeypatch.setattr(inf.NetworkPredictor, "_forward", tight)
    inf.segment(model, [vol], out, device="cpu", tile=48, batch=8)
    assert seen[:3] == [5, 4, 2] and max(seen[3:]) == 2  # slabs of 5 slices; batches of 8, then 4, then 2
    assert np.array_equal(out, expected) and io_threads() == []
    assert len(stagings) == 5 and all(s.pinned == {} for s in stagings)


# -- training batches: gathered and augmented on the device -------------------------------------------
@pytest.mark.parametrize("mode", ["2.5d", "3d"])
def test_patches_gathered_in_one_operation_equal_patch_by_patch_slicing(casting_scans, mode):
    from damselfly.engine.segmentation._patches import PatchSource

    vol, _, second, lab = casting_scans
    patch = (16, 24, 24) if mode == "3d" else (24, 24)
    src = PatchSource([vol.data, second.data], lab.data, [(0.0, 30000.0)] * 2, mode, 5, patch, 3,
                      np.random.default_rng(0), split=0.2)
    centres = src.centres(False, np.random.default_rng(1))
    x, y = src.batch(centres, 12, np.random.default_rng(2))
    items, origins = src.draw(centres, 12, np.random.default_rng(2))
    for j, (item, o) in enumerate(zip(items, origins)):
        sl = tuple(slice(a, a + p) for a, p in zip(o, patch))
        if mode == "3d":
            want = src.inputs[(slice(None),) + sl]
        else:
            want = src.inputs[:, src.channel_index[item]][(slice(None), slice(None)) + sl].reshape(-1, *patch)
        assert np.array_equal(x[j].numpy(), want) and np.array_equal(y[j].numpy(), src.labels[item][sl])
    assert x.shape == (12, 2 if mode == "3d" else 10, *patch) and y.dtype == torch.int64  # 2 inputs (x 5 slices)
    xv, yv = src.batch(src.centres(True, np.random.default_rng(1)), 4, np.random.default_rng(3), val=True)
    assert (yv > 0).any() and not np.array_equal(yv.numpy(), y[:4].numpy())


def test_augmenting_a_batch_at_once_equals_one_sample_at_a_time():
    from damselfly.engine.segmentation._patches import augment

    x, y = torch.rand(9, 3, 16, 16), torch.randint(0, 4, (9, 16, 16))
    xa, ya = augment(x, y, {"flip": True, "rotate": True}, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    for i in range(9):  # the same draws, one sample at a time
        f = torch.rand(2, generator=g)
        r = int(torch.randint(0, 4, (1,), generator=g))
        xi, yi = x[i], y[i]
        if f[0] < 0.5:
            xi, yi = xi.flip(-1), yi.flip(-1)
        if f[1] < 0.5:
            xi, yi = xi.flip(-2), yi.flip(-2)
        assert torch.equal(xa[i], torch.rot90(xi, r, (-2, -1))) and torch.equal(ya[i], torch.rot90(yi, r, (-2, -1)))
    assert not torch.equal(xa, x)


@pytest.mark.parametrize("context", [5, 0])
def test_enhancement_batches_gathered_at_once_equal_patch_by_patch_slicing(pair, context):
    from damselfly.engine.restoration import _samples as S

    noisy, clean, _ = pair
    data = S.pairs([noisy], [clean], (1, 1, 1), (0.0, 30000.0), (0.0, 30000.0), 0.25, np.random.default_rng(0))
    rows = S.draw(data, data.train, 10, context, 16, np.random.default_rng(1), flip=True)
    x, y = S.batch(data, rows, context, 16, torch.device("cpu"))
    vol, tgt = data.inputs[0], data.targets[0]
    assert set(rows[:, 4]) > {0} and set(rows[:, 5]) == {0, 1}  # turned and mirrored patches
    for j, (_, z, y0, x0, turns, mirror) in enumerate(rows):
        if context:
            planes = tiling.reflect_index(np.arange(z - 2, z + 3), vol.shape[0])
            want_x, want_y = vol[planes, y0:y0 + 16, x0:x0 + 16], tgt[z, y0:y0 + 16, x0:x0 + 16][None]
        else:
            want_x, want_y = vol[None, z:z + 16, y0:y0 + 16, x0:x0 + 16], tgt[None, z:z + 16, y0:y0 + 16, x0:x0 + 16]
        want_x, want_y = np.rot90(want_x, turns, (-2, -1)), np.rot90(want_y, turns, (-2, -1))
        if mirror:
            want_x, want_y = want_x[..., ::-1], want_y[..., ::-1]
        assert np.array_equal(x[j].numpy(), want_x) and np.array_equal(y[j].numpy(), want_y)


def test_training_data_stays_on_the_host_when_a_quarter_of_the_gpu_cannot_hold_it(monkeypatch):
    from damselfly.engine.core._device import holding_device

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 8000))  # 1000 bytes free
    gpu = torch.device("cuda")
    assert holding_device(gpu, 250) == gpu and holding_device(gpu, 251) == torch.device("cpu")
    assert holding_device(torch.device("cpu"), 1) == torch.device("cpu")


def test_batches_made_a_step_ahead_in_a_thread_train_the_same_weights(casting_scans, pair, monkeypatch):
    """On a GPU the next batch is made in a thread while the current one trains; forced on the CPU here,
    the trained weights equal those of batches made in turn (the thread is the only user of the
    generators), and no thread is left after training or after a Stop. Both trainers run every training
    step through ``training.step_network`` (where a compiled network goes in), and only there."""
    vol, _, _, lab = casting_scans
    noisy = pair[0]

    def weights():
        seg = training.train([vol], lab, device="cpu", schedule=training.Schedule(epochs=2, steps=3, batch=4, patch=32))
        den = R.train("denoise", [noisy], [noisy], device="cpu",
                      schedule=training.Schedule(epochs=2, steps=3, batch=2, patch=32, average=0.9))
        return [v.clone() for m in (seg, den) for v in m.state.values()]

    in_turn = weights()
    made = []
    real = training.Ahead.__call__
    monkeypatch.setattr(training, "AHEAD_ON", ("cuda", "cpu"))
    monkeypatch.setattr(training.Ahead, "__call__", lambda self: made.append(self.pool is not None) or real(self))
    steps = []

    def counted(net):
        return lambda x: steps.append(net.training) or net(x)

    monkeypatch.setattr(training, "step_network", counted)
    ahead = weights()
    assert made and all(made) and all(torch.equal(a, b) for a, b in zip(in_turn, ahead))
    assert steps == [True] * 12  # 2 epochs of 3 steps, each trainer; validation stays eager
    assert [t for t in threading.enumerate() if t.name.startswith("damselfly-batches")] == []

    stop = progress.Reporter()  # Stop after the first epoch: the thread was making the next batch
    with progress.reporting(stop):
        model = training.train([vol], lab, device="cpu", on_epoch=lambda row: stop.cancel(),
                               schedule=training.Schedule(epochs=3, steps=2, batch=2, patch=32))
    assert model.config["training"]["stopped"] == "cancelled"
    assert [t for t in threading.enumerate() if t.name.startswith("damselfly-batches")] == []


def test_to_device_on_the_cpu_shares_the_arrays_memory_and_keeps_tensors_as_they_are():
    """The helper that keeps a GPU's host running ahead (pinned memory and an asynchronous copy on CUDA,
    where a plain ``.to`` from pageable memory waits for the queued kernels) costs the CPU nothing: no
    copy of an array, the same tensor back."""
    from damselfly.engine.core._device import to_device

    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    t = to_device(a, torch.device("cpu"))
    a[1, 2] = 42
    assert t.dtype == torch.int64 and int(t[1, 2]) == 42
    b = torch.ones(3)
    assert to_device(b, torch.device("cpu")) is b
    strided = to_device(np.arange(10)[::2], torch.device("cpu"))  # a view NumPy cannot hand over as it is
    assert strided.tolist() == [0, 2, 4, 6, 8]
