"""Deep-learning segmentation: loss, augmentation, training, tiled streaming inference, model files."""

import contextlib
import json
from functools import partial

import numpy as np
import pytest
import torch
import zarr

from damselfly.engine import Cancelled, InputError, Labels, ParameterError, Session, Settings, make_classes
from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.core import progress
from damselfly.engine.core.context import RunContext
from damselfly.engine.io import _files as io
from damselfly.engine.segmentation import _inference as inf
from damselfly.engine.segmentation import _model as model_io
from damselfly.engine.segmentation import _tiling as tiling
from damselfly.engine.segmentation import _training as training

TINY = dict(arch="unet", epochs=2, steps=3, batch=4, patch=32, seed=5)

CPU = RunContext(device="cpu")
train = partial(seg_actions.train, ctx=CPU)
infer = partial(seg_actions.infer, ctx=CPU)
infer_probabilities = partial(seg_actions.infer_probabilities, ctx=CPU)


@pytest.fixture(scope="module")
def painted(casting_small):
    vol, truth = casting_small
    return vol, truth, sparse_labels(truth, slices=[8, 20, 31])


@pytest.fixture(scope="module")
def tiny_model(painted):
    vol, _, lab = painted
    return train(vol, lab, **TINY)


# -- loss ------------------------------------------------------------------------------------------
def test_unlabelled_voxels_do_not_change_the_loss_or_get_gradient():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 16, 16), generator=g)
    logits = torch.randn(2, 3, 16, 16, generator=g)
    base = training.masked_loss(logits, target)
    wild = logits.clone()
    unl = (target == 0).unsqueeze(1).expand_as(wild)
    wild[unl] = torch.randn(int(unl.sum()), generator=g) * 1e4
    assert torch.isclose(training.masked_loss(wild, target), base, rtol=1e-6)
    x = logits.clone().requires_grad_(True)
    training.masked_loss(x, target).backward()
    assert torch.all(x.grad[unl] == 0)
    assert torch.any(x.grad[~unl] != 0)


def test_loss_prefers_the_right_answer():
    target = torch.randint(1, 4, (1, 8, 8))
    right = torch.nn.functional.one_hot(target - 1, 3).movedim(-1, 1).float() * 10
    wrong = right.roll(1, dims=1)
    assert training.masked_loss(right, target) < 0.01 < training.masked_loss(wrong, target)


def test_augmentation_moves_image_and_labels_together():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 3, (6, 16, 16))
    x = y[:, None].float().repeat(1, 2, 1, 1)
    xa, ya = training.augment(x, y, {"flip": True, "rotate": True}, g)
    assert torch.equal(xa[:, 0].long(), ya) and torch.equal(xa[:, 1].long(), ya)
    assert not torch.equal(ya, y)  # something moved
    xn, _ = training.augment(x, y, {"noise": 0.1, "contrast": 0.2, "blur": 1.0, "poisson": 0.1}, g)
    assert xn.shape == x.shape and torch.isfinite(xn).all() and not torch.equal(xn, x)


def test_zoom_augmentation_scales_image_and_labels_together():
    g = torch.Generator().manual_seed(5)
    yy, xx = np.mgrid[:48, :48]
    disk = torch.from_numpy(((yy - 23.5) ** 2 + (xx - 23.5) ** 2 < 8 ** 2).astype(np.int64) + 1)  # 2 in, 1 out
    y = disk[None].repeat(16, 1, 1)
    x = y[:, None].float()
    xa, ya = training.augment(x, y, {"scale": 0.5}, g)
    assert ya.dtype == y.dtype and set(ya.unique().tolist()) <= {0, 1, 2}
    area = (ya == 2).sum(dim=(1, 2)).float() / (y[0] == 2).sum()
    assert area.min() < 0.8 and area.max() > 1.25 and area.min() > 0.4 and area.max() < 2.3  # (1/1.5)^2 .. 1.5^2
    inside = ya > 0  # beyond the zoomed-out patch's edge: unlabelled; the image there is mirrored, labels not
    agree = (xa[:, 0].round().long() == ya) | ~inside
    assert agree.float().mean() > 0.97  # bilinear image and nearest labels differ only along the disk's edge
    x3, y3 = x[:2, :, None].repeat(1, 1, 4, 1, 1), y[:2, None].repeat(1, 4, 1, 1)  # 3-D blocks: in-plane only
    xa3, ya3 = training.augment(x3, y3, {"scale": 0.5}, g)
    assert xa3.shape == x3.shape and all(torch.equal(ya3[:, 0], ya3[:, k]) for k in range(4))


# -- helpers ---------------------------------------------------------------------------------------
def test_reflect_index_matches_numpy_reflect_padding():
    a = np.arange(5)
    padded = np.pad(a, 7, mode="reflect")
    assert np.array_equal(a[tiling.reflect_index(np.arange(-7, 12), 5)], padded)
    assert np.array_equal(tiling.reflect_index(np.arange(-2, 3), 1), np.zeros(5))


def test_context_stacking_puts_neighbours_in_order():
    slab = np.arange(2 * 7 * 1 * 1, dtype=np.float32).reshape(2, 7, 1, 1)  # 2 inputs, 7 slices
    out = tiling.stack_context(slab, 5)                                     # 3 slices with 5 neighbours each
    assert out.shape == (3, 10, 1, 1)
    assert list(out[1, :, 0, 0]) == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]


def test_tiles_cover_everything_and_windows_are_smooth():
    assert tiling.tile_starts(100, 40, 0.25) == [0, 30, 60]
    assert tiling.tile_starts(30, 40, 0.25) == [0]
    for blend in ("gaussian", "linear"):
        w = tiling.window((32, 32), blend)
        assert w.min() > 0 and w.max() == 1 and w[16, 16] == 1


# -- training --------------------------------------------------------------------------------------
def test_training_is_deterministic_on_cpu(painted, tiny_model):
    vol, _, lab = painted
    again = train(vol, lab, **TINY)
    assert again.hash == tiny_model.hash
    assert train(vol, lab, **dict(TINY, seed=6)).hash != tiny_model.hash


def test_training_skips_the_nan_filling_of_new_tensors_and_gets_the_same_weights(painted, tiny_model, monkeypatch):
    """deterministic() turns off PyTorch's NaN filling of uninitialised tensors (cost only) and restores
    both settings; training with the filling forced on gives the same model bit for bit."""
    import torch

    vol, _, lab = painted
    seen = []
    real = training.deterministic

    @contextlib.contextmanager
    def filled(seed):
        with real(seed):
            seen.append(torch.utils.deterministic.fill_uninitialized_memory)
            torch.utils.deterministic.fill_uninitialized_memory = True
            yield

    before = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    monkeypatch.setattr(training, "deterministic", filled)
    assert train(vol, lab, **TINY).hash == tiny_model.hash
    assert seen == [False]
    assert (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory) == before


def test_model_records_history_and_what_it_needs(painted, tiny_model):
    vol, truth, lab = painted
    cfg = tiny_model.config
    assert cfg["input"] == "2.5d" and cfg["context"] == 5 and cfg["arch"] == "unet"
    assert tiny_model.class_names == truth.class_names
    assert [c["color"] for c in cfg["classes"]] == [list(c.color) for c in truth.classes]
    h = tiny_model.history
    assert h["epoch"] == [1, 2] and len(h["loss"]) == 2
    assert {"val_loss", "lr", "seconds"} | {f"dice_{n}" for n in truth.class_names} <= set(h.columns)
    assert cfg["training"]["data_sha256"] == training.data_hash([vol], lab)
    assert cfg["training"]["labelled_voxels"]["pore"] > 0
    lo, hi = tiny_model.normalization[0]
    assert lo < hi
    assert set(cfg["versions"]) >= {"damselfly", "torch", "numpy"}


def test_a_missing_class_is_a_clear_error(painted):
    vol, truth, lab = painted
    data = np.asarray(lab.data).copy()
    data[data == truth.class_index("pore")] = 0
    no_pore = lab.with_data(data)
    no_pore.metadata["source"] = "painted.tif"
    with pytest.raises(InputError, match="painted.tif: class 'pore' has no labelled voxel"):
        train(vol, no_pore, **TINY)


def test_labels_of_the_wrong_shape_are_refused(painted):
    vol, _, lab = painted
    small = Labels(np.asarray(lab.data)[:-1], classes=lab.classes)
    with pytest.raises(InputError, match="shape"):
        train(vol, small, **TINY)


def test_bad_settings_are_refused(painted):
    vol, _, lab = painted
    with pytest.raises(ParameterError, match="unet3d"):
        train(vol, lab, arch="unet", input="3d")
    with pytest.raises(ParameterError, match="odd"):
        train(vol, lab, context=4)
    with pytest.raises(ParameterError, match="multiple of 8"):
        train(vol, lab, patch=36)


def test_mask_limits_where_training_draws_and_where_inference_runs(painted):
    vol, truth, lab = painted
    # a mask that excludes everything but a box without pores: pores then have no labels inside
    m = np.zeros(vol.shape, np.uint8)
    m[:, :6, :6] = 1
    with pytest.raises(InputError, match="pore.*inside the mask"):
        train(vol, lab, mask=vol.with_data(m), **TINY)
    model = train(vol, lab, **TINY)
    inside = np.zeros(vol.shape, np.uint8)
    inside[:, 10:30, 10:30] = 1
    seg = infer(model, vol, mask=vol.with_data(inside), outside="air", tile=32)
    assert np.all(np.asarray(seg.data)[inside == 0] == seg.class_index("air"))
    full = infer(model, vol, tile=32)
    assert np.array_equal(np.asarray(seg.data)[inside == 1], np.asarray(full.data)[inside == 1])
    with pytest.raises(ParameterError, match="no class 'ari'; did you mean 'air'"):
        infer(model, vol, mask=vol.with_data(inside), outside="ari")


def test_stop_keeps_the_best_model_so_far(painted):
    vol, _, lab = painted
    epochs = []

    def on_event(name, data):
        epochs.append(data["epoch"])
        if len(epochs) == 2:
            rep.cancel()

    rep = progress.Reporter(on_event=on_event)
    with progress.reporting(rep):
        model = train(vol, lab, **dict(TINY, epochs=10))
    assert model.config["training"]["stopped"] == "cancelled"
    assert model.history["epoch"] == [1, 2]
    # before any epoch ends there is nothing to keep: Stop is a plain cancel
    rep2 = progress.Reporter()
    rep2.cancel()
    with progress.reporting(rep2), pytest.raises(Cancelled):
        train(vol, lab, **TINY)


def test_stop_in_a_session_keeps_the_model_and_stops_the_run(painted):
    vol, _, lab = painted
    rep = progress.Reporter(on_event=lambda name, data: rep.cancel())
    s = Session(Settings(device="cpu"), reporter=rep)
    with pytest.raises(Cancelled, match="kept as 'model'"):
        s.run("train", vol, lab, target="model", **TINY)
    assert s.objects["model"].config["training"]["stopped"] == "cancelled"


def test_early_stopping_and_separate_validation_volume(painted, casting_small):
    vol, truth, lab = painted
    model = train(vol, lab, val_labels=sparse_labels(truth, slices=[14]), **dict(TINY, epochs=6, patience=1, lr=0.05))
    t = model.config["training"]
    assert t["validation_voxels"]["air"] > 0
    assert all(np.isfinite(model.history["val_loss"]))
    best = int(np.argmin(model.history["val_loss"])) + 1
    assert t["best_epoch"] == best
    if t["stopped"] == "early":
        assert t["epochs_run"] == best + 1


def test_transfer_learning_continues_from_a_model(painted, tiny_model):
    vol, truth, lab = painted
    more = train(vol, lab, init=tiny_model, **TINY)
    assert more.config["training"]["init"] == tiny_model.hash
    assert more.normalization == tiny_model.normalization
    other = lab.with_data(np.asarray(lab.data), classes=make_classes(["a", "b", "c"]))
    with pytest.raises(ParameterError, match="classes"):
        train(vol, other, init=tiny_model, **TINY)


def test_preview_png_after_every_epoch(painted, tmp_path):
    import imageio.v3 as iio

    vol, _, lab = painted
    events = []
    with progress.reporting(progress.Reporter(on_event=lambda name, data: events.append((name, data)))):
        train(vol, lab, preview=[20, 4, 4, 21, 36, 44], preview_dir=str(tmp_path), **TINY)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["epoch_001.png", "epoch_002.png"]
    # the app hears of each epoch with its losses and the preview to show
    assert [(n, d["epoch"], d["preview"]) for n, d in events] == [
        ("epoch", 1, str(tmp_path / "epoch_001.png")), ("epoch", 2, str(tmp_path / "epoch_002.png"))]
    assert all(np.isfinite(d["loss"]) for _, d in events)
    img = iio.imread(tmp_path / files[0])
    assert img.shape == (32, 40 * 2 + 4, 3)


def test_multi_modality_inputs_become_channels(painted):
    vol, truth, lab = painted
    second = vol.with_data(np.asarray(vol.data)[:, ::-1].copy(), name="flipped")
    model = train([vol, second], lab, input="2d", **TINY)
    assert model.in_channels == 2 and model.n_inputs == 2
    seg = infer(model, [vol, second], tile=32)
    assert seg.shape == vol.shape
    # segment-and-correct predicts one slice from every input, exactly as infer does
    images = inf.model_inputs(model, [second, vol], shown=vol)
    assert [im.name for im in images] == [vol.name, "flipped"]
    assert np.array_equal(inf.predict_slice(model, images, 12, device="cpu", tile=32), np.asarray(seg.data[12]))
    with pytest.raises(ParameterError, match="none is loaded under the name"):
        inf.model_inputs(model, [vol], shown=vol)
    with pytest.raises(ParameterError, match="takes 2 input"):
        infer(model, vol)


@pytest.mark.parametrize("arch,inp,extra", [("msd", "2d", {"depth": 6}), ("unet3d", "3d", {"levels": 2})])
def test_other_architectures_train_and_infer(painted, arch, inp, extra):
    vol, truth, lab = painted
    model = training.train([vol], lab, arch=arch, input=inp, hparams=extra, device="cpu",
                           schedule=training.Schedule(epochs=1, steps=2, batch=2, patch=16))
    seg = np.zeros(vol.shape, np.uint8)
    inf.segment(model, [vol], seg, device="cpu", tile=32)
    assert set(np.unique(seg)) <= {1, 2, 3}
    assert model.arch == arch


# -- inference -------------------------------------------------------------------------------------
def test_tiled_prediction_equals_whole_slice_within_blending_tolerance(painted, tiny_model):
    vol = painted[0]
    arrays = [vol.data]
    whole = inf.Predictor(tiny_model, "cpu", tile=64).predict_slab(arrays, 10, 30)
    tiled = inf.Predictor(tiny_model, "cpu", tile=24, overlap=0.5).predict_slab(arrays, 10, 30)
    assert whole.shape == tiled.shape == (3, 20, 48, 48)
    np.testing.assert_allclose(whole.sum(0), 1, atol=1e-5)
    np.testing.assert_allclose(tiled.sum(0), 1, atol=1e-5)
    diff = np.abs(whole - tiled)
    assert diff.mean() < 0.02
    assert np.mean(whole.argmax(0) == tiled.argmax(0)) > 0.98


def test_streaming_in_small_slabs_gives_the_same_labels(painted, tiny_model, monkeypatch):
    vol = painted[0]
    whole = np.zeros(vol.shape, np.uint8)
    inf.segment(tiny_model, [vol], whole, device="cpu", tile=48)
    monkeypatch.setattr(inf, "slab_size", lambda pred, shape, budget=0: 3)
    slabs = np.zeros(vol.shape, np.uint8)
    inf.segment(tiny_model, [vol], slabs, device="cpu", tile=48)
    assert np.array_equal(whole, slabs)


def test_slabs_are_whole_output_chunks_so_blocks_can_go_to_workers(tiny_model):
    from damselfly.engine.core.volume_ops import SLAB

    pred = inf.predictor(tiny_model, device="cpu", tile=64)
    for shape in [(300, 256, 256), (2000, 1024, 1024), (900, 700, 500)]:
        n = inf.slab_size(pred, shape)
        assert n % SLAB == 0 or SLAB % n == 0, (shape, n)
        groups = inf.slabs(shape[0], n, chunk=SLAB)
        assert len(groups) == -(-shape[0] // max(n, SLAB)) and all(a % SLAB == 0 for a, _ in groups)
    assert inf.slab_size(pred, (5, 64, 64)) == 5  # a small scan: one slab
    from types import SimpleNamespace

    from damselfly.engine.segmentation._classifier import ForestPredictor

    depth = ForestPredictor.slab_depth  # the forest's slabs too, for tiles of 512
    assert all(SLAB % d == 0 or d % SLAB == 0 for d in (depth(SimpleNamespace(tile=512), (999, n, n))
                                                        for n in (64, 512, 2000)))


def test_memory_mapped_input_gives_disk_backed_output(painted, tiny_model, tmp_path):
    vol = painted[0]
    io.write_volume(vol, tmp_path / "scan.npy")
    mapped = io.read_volume(tmp_path / "scan.npy", mmap=True)
    assert isinstance(mapped.data, np.memmap)
    seg = infer(tiny_model, mapped, tile=48)
    assert isinstance(seg.data, zarr.Array)  # chunked scratch storage, not RAM
    assert np.array_equal(np.asarray(seg.data), np.asarray(infer(tiny_model, vol, tile=48).data))
    assert seg.class_names == tiny_model.class_names and seg.spacing == mapped.spacing


def test_probabilities_agree_with_labels(painted, tiny_model):
    vol = painted[0]
    allp = infer_probabilities(tiny_model, vol, tile=48)
    assert allp.data.shape == vol.shape + (3,)
    np.testing.assert_allclose(allp.data.sum(-1), 1, atol=1e-5)
    seg = infer(tiny_model, vol, tile=48)
    assert np.array_equal(np.argmax(allp.data, -1) + 1, seg.data)
    pore = infer_probabilities(tiny_model, vol, class_="pore", tile=48)
    np.testing.assert_allclose(pore.data, allp.data[..., seg.class_index("pore") - 1], atol=1e-6)


def test_flip_tta_is_the_mean_of_the_four_flipped_predictions(painted, tiny_model):
    """TTA's probabilities are a distribution and equal the mean of the predictions of the four in-plane
    flips of the slices, each flipped back (not, say, the unflipped prediction alone)."""
    vol = np.asarray(painted[0].data)[:4]
    probs = inf.Predictor(tiny_model, "cpu", tile=48, tta=True).predict_slab([vol], 0, 4)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
    plain = inf.Predictor(tiny_model, "cpu", tile=48)
    flips = [(), (2,), (1,), (1, 2)]  # axes of (z, y, x): none, x, y, both
    mean = sum(np.flip(plain.predict_slab([np.flip(vol, f).copy() if f else vol], 0, 4), [a + 1 for a in f])
               if f else plain.predict_slab([vol], 0, 4) for f in flips) / 4
    np.testing.assert_allclose(probs, mean, atol=1e-5)
    assert np.abs(probs - plain.predict_slab([vol], 0, 4)).max() > 1e-4  # the flips do change it


# -- model files -----------------------------------------------------------------------------------
def test_model_file_round_trip(painted, tiny_model, tmp_path):
    vol = painted[0]
    path = model_io.save_model(tiny_model, tmp_path / "pores.dfmodel")
    assert (tmp_path / "pores.history.csv").exists()
    back = model_io.load_model(path)
    assert back.hash == tiny_model.hash
    for key in ("arch", "hparams", "input", "context", "inputs", "classes", "history", "training", "versions"):
        assert back.config[key] == json.loads(json.dumps(tiny_model.config[key]))
    a = infer(tiny_model, vol, tile=48)
    b = infer(back, vol, tile=48)
    assert np.array_equal(a.data, b.data)
    assert io.read_table(tmp_path / "pores.history.csv")["epoch"] == [1, 2]


def test_corrupt_and_foreign_model_files_are_clear_errors(tiny_model, tmp_path):
    from safetensors.torch import save_file

    good = model_io.save_model(tiny_model, tmp_path / "good.dfmodel")
    cut = tmp_path / "cut.dfmodel"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.dfmodel.*corrupt or truncated"):
        model_io.load_model(cut)
    junk = tmp_path / "junk.dfmodel"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="junk.dfmodel"):
        model_io.load_model(junk)
    foreign = tmp_path / "foreign.dfmodel"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(InputError, match="not a Damselfly model"):
        model_io.load_model(foreign)
    with pytest.raises(InputError, match="no such model file"):
        model_io.load_model(tmp_path / "missing.dfmodel")
    with pytest.raises(ParameterError, match="must end in .dfmodel"):
        model_io.save_model(tiny_model, tmp_path / "m.pt")


def test_model_file_never_unpickles(tiny_model, tmp_path):
    """The file is safetensors: a header of JSON and raw tensor bytes, no pickle opcodes at the start."""
    path = model_io.save_model(tiny_model, tmp_path / "m.dfmodel")
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert "damselfly" in header["__metadata__"]
    # an 8-byte length, then the JSON header, then raw tensor bytes to the end: no room for a pickle (the
    # length's first byte may be 0x80, as a pickle's PROTO opcode is, so that is not the test)
    assert raw[8:9] == b"{" and 8 + n + sum(t.numel() * t.element_size() for t in tiny_model.state.values()) \
        == len(raw)


def test_out_of_memory_halves_the_batch_and_carries_on(painted, tiny_model, monkeypatch):
    pred = inf.Predictor(tiny_model, "cpu", tile=16, overlap=0.0, batch=8)
    real = pred.run._forward
    seen = []

    def forward(x):
        seen.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x)

    monkeypatch.setattr(pred.run, "_forward", forward)
    probs = pred.predict_slab([painted[0].data], 0, 2)
    assert pred.run.batch == 2 and seen[:3] == [8, 4, 2]
    expected = inf.Predictor(tiny_model, "cpu", tile=16, overlap=0.0).predict_slab([painted[0].data], 0, 2)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_3d_streaming_in_slabs_agrees_with_one_slab(painted, monkeypatch):
    vol, _, lab = painted
    model = training.train([vol], lab, arch="unet3d", input="3d", hparams={"levels": 2}, device="cpu",
                           schedule=training.Schedule(epochs=1, steps=3, batch=2, patch=16))
    one = np.zeros(vol.shape, np.uint8)
    inf.segment(model, [vol], one, device="cpu", tile=48)
    monkeypatch.setattr(inf, "slab_size", lambda pred, shape, budget=0: 16)
    slabs = np.zeros(vol.shape, np.uint8)
    inf.segment(model, [vol], slabs, device="cpu", tile=48)
    assert np.mean(one == slabs) > 0.98


def test_sliding_window_serves_any_predictor_with_masks_and_upsampling():
    rng = np.random.default_rng(0)
    items = rng.random((2, 1, 50, 37)).astype(np.float32)
    same = tiling.sliding_window(items, lambda x: x + 1, tile=(16, 16), overlap=0.25)
    np.testing.assert_allclose(same, items + 1, rtol=1e-5)  # a pointwise predictor: blending is exact
    masks = np.zeros((2, 50, 37), bool)
    masks[0, :10, :10] = True
    part = tiling.sliding_window(items, lambda x: x + 1, tile=(16, 16), masks=masks)
    assert np.all(part[1] == 0) and np.allclose(part[0, 0, :10, :10], items[0, 0, :10, :10] + 1)
    up = tiling.sliding_window(items, lambda x: x.repeat(2, axis=2).repeat(3, axis=3), tile=(16, 16),
                               scale=(2, 3))
    assert up.shape == (2, 1, 100, 111)
    np.testing.assert_allclose(up[:, :, ::2, ::3], items, rtol=1e-5)
    with pytest.raises(ParameterError, match="predictor returned shape"):
        tiling.sliding_window(items, lambda x: x[:, :, :8], tile=(16, 16))


def test_infer_chooses_its_tile_from_the_slice_and_the_device(tiny_model, painted):
    assert inf.auto_tile(tiny_model, (8, 1024, 1024), "cpu") == 1024  # one tile per slice
    assert inf.auto_tile(tiny_model, (8, 3000, 300), "cpu") == inf.CPU_TILE
    assert inf.auto_tile(tiny_model, (8, 40, 30), "cpu") == 64
    vol, _, _ = painted
    whole = infer(tiny_model, vol)  # the default: the slice (48 x 48) in one tile
    assert np.array_equal(np.asarray(whole.data), np.asarray(infer(tiny_model, vol, tile=64).data))
