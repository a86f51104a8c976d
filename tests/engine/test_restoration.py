"""Enhancement: Noise2Void denoising, paired restoration with up-sampling, streamed enhance, model files."""

import json
from functools import partial

import numpy as np
import pytest
import torch
from scipy import ndimage

from damselfly.engine import Cancelled, InputError, ParameterError, Session, Settings
from damselfly.engine.actions import enhancement as E
from damselfly.engine.actions.segmentation import infer
from damselfly.engine.core import phantoms, progress
from damselfly.engine.core.context import RunContext
from damselfly.engine.io import _files as io
from damselfly.engine.restoration import _samples as S
from damselfly.engine.restoration._resample import upsample, upsample_slices
from damselfly.engine.segmentation import _model as model_io

CPU = RunContext(device="cpu")
train_denoiser = partial(E.train_denoiser, ctx=CPU)
train_restoration = partial(E.train_restoration, ctx=CPU)
enhance = partial(E.enhance, ctx=CPU)
TINY = dict(epochs=2, steps=2, batch=2, patch=32, seed=3)


@pytest.fixture(scope="module")
def pair():
    clean, _ = phantoms.casting((16, 48, 48), seed=4, photons=1e9)
    c = np.asarray(clean.data, np.float32)
    noisy = clean.with_data((c + np.random.default_rng(0).normal(0, 2000, c.shape)).astype(np.float32), name="noisy")
    return noisy, clean.with_data(c, name="clean")


@pytest.fixture(scope="module")
def denoiser(pair):
    return train_denoiser(pair[0], **TINY)


def test_blind_spot_hides_one_pixel_per_cell_behind_a_neighbour():
    rng = np.random.default_rng(0)
    x = rng.random((3, 3, 32, 40)).astype(np.float32)
    xm, m = (t.numpy() for t in S.blind_spot(torch.from_numpy(x), rng, channel=1, cell=8, radius=2))
    assert m.shape == (3, 32, 40) and np.all(m.sum(axis=(1, 2)) == 4 * 5)  # one per 8 x 8 cell
    assert np.array_equal(xm[:, [0, 2]], x[:, [0, 2]]) and np.array_equal(xm[:, 1][~m], x[:, 1][~m])
    for b, yy, xx in zip(*np.nonzero(m)):
        v = xm[b, 1, yy, xx]
        assert v != x[b, 1, yy, xx]  # never its own value (random floats: no ties)
        near = x[b, 1, max(0, yy - 2):yy + 3, max(0, xx - 2):xx + 3]
        assert v in near


def test_upsampling_streams_exactly_and_reproduces_quadratics():
    a = np.random.default_rng(1).random((5, 6, 7)).astype(np.float32)
    whole = upsample(a, (2, 3, 2))
    assert whole.shape == (10, 18, 14)
    for z0, z1 in ((0, 3), (3, 7), (7, 10)):
        assert np.array_equal(upsample_slices(a, (2, 3, 2), z0, z1), whole[z0:z1])
    ramp = np.fromfunction(lambda z, y, x: 0.3 * x * x + y - 0.2 * z * z, (6, 8, 9)).astype(np.float32)
    fine = upsample(ramp, (2, 1, 2))
    zf, xf = ((np.arange(n) + 0.5) / 2 - 0.5 for n in (12, 18))
    exact = 0.3 * xf[None, None] ** 2 + np.arange(8)[None, :, None] - 0.2 * zf[:, None, None] ** 2
    np.testing.assert_allclose(fine[3:9, :, 3:15], exact[3:9, :, 3:15], atol=1e-4)  # away from the ends
    smooth = ndimage.gaussian_filter(np.random.default_rng(2).random((8, 20, 20)), 3).astype(np.float32)
    cubic = ndimage.zoom(smooth, 2, order=3, mode="nearest", grid_mode=True)
    assert np.abs(upsample(smooth, (2, 2, 2)) - cubic)[2:-2, 2:-2, 2:-2].max() < 0.01 * np.ptp(smooth)


def test_denoiser_training_is_deterministic_and_records_what_it_is(pair, denoiser):
    again = train_denoiser(pair[0], **TINY)
    assert again.hash == denoiser.hash
    assert denoiser.task == "denoise" and denoiser.scale == [1, 1, 1] and denoiser.config["classes"] == []
    assert denoiser.history["epoch"] == [1, 2] and len(denoiser.history["val_loss"]) == 2
    assert denoiser.config["training"]["data_sha256"]


def test_denoising_a_phantom_comes_closer_to_the_clean_truth(pair):
    noisy, clean = pair
    model = train_denoiser(noisy, epochs=6, steps=40, batch=4, patch=32, lr=0.004, seed=0)
    out = enhance(model, noisy)
    c = np.asarray(clean.data)
    assert out.data.dtype == np.float32 and out.shape == noisy.shape and out.spacing == noisy.spacing
    assert np.mean((np.asarray(out.data) - c) ** 2) < 0.6 * np.mean((np.asarray(noisy.data) - c) ** 2)


def test_stop_keeps_the_best_epoch_so_far(pair):
    epochs = []

    def on_event(name, data):
        epochs.append(data["epoch"])
        rep.cancel()

    rep = progress.Reporter(on_event=on_event)
    with progress.reporting(rep):
        model = train_denoiser(pair[0], **dict(TINY, epochs=10))
    assert model.config["training"]["stopped"] == "cancelled" and model.history["epoch"] == [1]
    rep2 = progress.Reporter()
    rep2.cancel()
    with progress.reporting(rep2), pytest.raises(Cancelled):
        train_denoiser(pair[0], **TINY)


def test_the_kept_model_is_the_moving_average_of_the_weights_of_every_step():
    import torch

    from damselfly.engine.segmentation._training import Schedule, fit_epochs

    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    seen, judged = [], []  # the weights before every step; the networks validated

    def batch_loss():
        seen.append(net[0].weight.item())
        return ((net(torch.tensor([[1.0], [3.0]])) - torch.tensor([[2.0], [-1.0]])) ** 2).mean()

    def validate(m):
        judged.append(m)
        return {"val_loss": -len(judged)}  # every epoch better: the last one is kept

    sc = Schedule(epochs=3, steps=4, lr=0.1, average=0.9)
    _, best, _ = fit_epochs(sc, net, batch_loss, validate, True, ("epoch", "loss", "val_loss"), None, None)
    weights = seen[1:] + [net[0].weight.item()]  # after each of the 12 steps
    avg = seen[0]
    for n, w in enumerate(weights, 1):
        d = min(0.9, (1 + n) / (10 + n))
        avg = d * avg + (1 - d) * w
    assert best["state"]["0.weight"].item() == pytest.approx(avg, rel=1e-5)
    assert abs(avg - weights[-1]) > 1e-3  # not the last step's weights
    assert all(m is not net for m in judged) and best["state"]["1.num_batches_tracked"].item() == 12
    seen.clear()
    _, plain, _ = fit_epochs(Schedule(epochs=1, steps=4, lr=0.1), net, batch_loss, lambda m: {"val_loss": 0.0}
                             if m is net else {}, True, ("epoch",), None, None)
    assert plain["state"]["0.weight"].item() == net[0].weight.item()  # average 0: the weights as they are


def test_upsampling_model_writes_the_finer_grid_and_spacing(pair):
    _, clean = pair
    c = np.asarray(clean.data)
    coarse = clean.with_data(c.reshape(8, 2, 24, 2, 24, 2).mean(axis=(1, 3, 5)), spacing=np.array(clean.spacing) * 2,
                             name="coarse")
    model = train_restoration(coarse, clean, **TINY)
    assert model.task == "restore" and model.scale == [2, 2, 2]
    out = enhance(model, coarse)
    assert out.shape == clean.shape and np.allclose(out.spacing, clean.spacing)
    np.testing.assert_allclose(out.origin, np.array(coarse.origin) - 0.25 * np.array(coarse.spacing))
    with pytest.raises(InputError, match="whole factors"):
        train_restoration(coarse.with_data(c[:, :30, :30], name="odd"), clean, **TINY)
    with pytest.raises(InputError, match="spacing"):
        train_restoration(coarse.with_data(np.asarray(coarse.data), spacing=clean.spacing), clean, **TINY)


def test_model_file_round_trips_and_never_unpickles(pair, denoiser, tmp_path):
    path = model_io.save_model(denoiser, tmp_path / "d.dfmodel")
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    doc = json.loads(header["__metadata__"]["damselfly"])
    assert doc["task"] == "denoise"
    # a safetensors file and nothing else: JSON header, then the tensors' raw bytes end to end (no pickle)
    ends = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert ends[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
    assert 8 + int.from_bytes(raw[:8], "little") + ends[-1][1] == len(raw)
    back = model_io.load_model(path)
    assert back.hash == denoiser.hash and back.task == "denoise" and back.output_range == denoiser.output_range
    assert np.array_equal(np.asarray(enhance(back, pair[0]).data), np.asarray(enhance(denoiser, pair[0]).data))


def test_enhance_averages_the_four_in_plane_flips_by_default(pair, denoiser):
    noisy = pair[0]
    x = np.asarray(noisy.data)
    fast = partial(enhance, denoiser, tta=False)
    flips = [np.flip(np.asarray(fast(noisy.with_data(np.ascontiguousarray(np.flip(x, ax)))).data), ax)
             for ax in ((1,), (2,), (1, 2))]
    mean = (np.asarray(fast(noisy).data) + sum(flips)) / 4
    out = np.asarray(enhance(denoiser, noisy).data)
    np.testing.assert_allclose(out, mean, rtol=0, atol=1e-3 * float(np.ptp(x)))
    assert not np.allclose(out, np.asarray(fast(noisy).data), rtol=0, atol=1e-3 * float(np.ptp(x)))


def test_models_are_used_for_what_they_do(pair, denoiser):
    from damselfly.engine.actions.segmentation import sparse_labels, train

    with pytest.raises(ParameterError, match="use enhance"):
        infer(denoiser, pair[0], ctx=CPU)
    vol, truth = phantoms.casting((16, 32, 32), seed=1)
    seg_model = train(vol, sparse_labels(truth, [4, 8, 12]), epochs=1, steps=1, batch=2, patch=32, ctx=CPU)
    with pytest.raises(ParameterError, match="use infer"):
        enhance(seg_model, vol)
    with pytest.raises(ParameterError, match="patch must be"):
        train_denoiser(pair[0], **dict(TINY, patch=30))
    with pytest.raises(ParameterError, match="average must be"):
        train_restoration(pair[0], pair[1], **dict(TINY, average=1.0))


def test_pairs_refine_a_denoiser_which_keeps_its_form(pair, denoiser):
    noisy, clean = pair
    # with a vanishing learning rate the refined model keeps the denoiser's weights (batch statistics
    # move with every batch), its direct (not residual) output and its normalisation
    still = train_restoration(noisy, clean, init=denoiser, **dict(TINY, epochs=1, lr=1e-12))
    assert still.task == "restore" and still.config["residual"] is False
    assert still.config["training"]["init"] == denoiser.hash
    assert still.normalization == denoiser.normalization and still.output_range == denoiser.output_range
    weights = [k for k in denoiser.state if k.endswith("weight")]
    assert weights and all(np.allclose(still.state[k].numpy(), denoiser.state[k].numpy(), atol=1e-9) for k in weights)
    refined = train_restoration(noisy, clean, init=denoiser, **dict(TINY, epochs=3, steps=20, batch=4))
    c = np.asarray(clean.data)
    err = [np.mean((np.asarray(enhance(m, noisy).data) - c) ** 2) for m in (denoiser, refined)]
    assert err[1] < err[0]  # the clean targets teach what the blind spots could not
    with pytest.raises(ParameterError, match="task 'restore'"):  # the other way round makes no sense
        train_denoiser(noisy, init=refined, **TINY)


def test_a_recorded_denoise_session_replays_to_identical_output(pair, tmp_path):
    from damselfly.macros.recorder import Recorder
    from damselfly.macros.runner import run_file

    io.write_volume(pair[0], tmp_path / "noisy.tif")
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "rec", device="cpu"))
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(tmp_path / "noisy.tif"), target="raw")
    den = s.run("train_denoiser", raw, epochs=1, steps=2, batch=2, patch=32, target="denoiser")
    clean = s.run("enhance", den, raw, target="clean")
    s.run("save", clean, "clean.tif")
    rec.stop()
    macro = rec.save(tmp_path / "denoise.dfm")
    assert "train_denoiser(raw, epochs=1, steps=2, batch=2, patch=32)" in macro.read_text()
    assert run_file(macro, out_dir=tmp_path / "replay", device="cpu").status == "ok"
    a, b = io.read_volume(tmp_path / "rec" / "clean.tif"), io.read_volume(tmp_path / "replay" / "clean.tif")
    assert a.hash() == b.hash()


def test_the_denoise_then_segment_example_runs(tmp_path):
    from pathlib import Path

    from damselfly.macros.runner import run_file

    example = Path(__file__).resolve().parents[2] / "examples" / "denoise_then_segment.dfm"
    r = run_file(example, overrides={"denoise_epochs": 1, "epochs": 1}, out_dir=tmp_path, device="cpu")
    assert r.status == "ok"
    seg = io.read_labels(tmp_path / "casting_seg.tif")
    assert seg.shape == io.read_volume(tmp_path / "casting_denoised.tif").shape
    assert model_io.load_model(tmp_path / "casting_denoiser.dfmodel").task == "denoise"
    assert model_io.load_model(tmp_path / "casting_seg.dfmodel").n_inputs == 2  # the scan and its denoised version


def test_a_mask_centres_the_training_patches_inside_it(pair):
    from damselfly.engine import make_classes

    noisy, _ = pair
    m = np.zeros(noisy.shape, bool)
    m[3:6, 30:34, 5:9] = True
    inside = m.astype(np.float32)  # the "image" is the mask itself: a patch holding a mask voxel has max 1
    data = S.pairs([noisy.with_data(inside)], [noisy.with_data(inside)], (1, 1, 1), (0.0, 1.0), (0.0, 1.0), 0.0,
                    np.random.default_rng(0), m)
    assert data.train == [(0, 3), (0, 4), (0, 5)]  # only slices that hold mask voxels
    rng = np.random.default_rng(1)
    x, y = S.batch(data, S.draw(data, data.train, 50, 1, 16, rng, flip=True), 1, 16, torch.device("cpu"))
    assert x.shape == y.shape == (50, 1, 16, 16)
    assert (x.amax(dim=(1, 2, 3)) == 1).all() and (y.amax(dim=(1, 2, 3)) == 1).all()
    with pytest.raises(InputError, match="no voxel"):
        S.pairs([noisy], [noisy], (1, 1, 1), (0.0, 1.0), (0.0, 1.0), 0.0, np.random.default_rng(0),
                 np.zeros(noisy.shape, bool))
    seg = noisy.as_labels(m.astype(np.uint8) + 1, make_classes(["outside", "inside"]))
    assert train_denoiser(noisy, mask=seg, mask_classes=["inside"], **TINY).task == "denoise"
    with pytest.raises(ParameterError, match="one volume"):
        train_denoiser([noisy, noisy], mask=seg, **TINY)


def test_3d_denoiser_and_3d_upsampling(pair, tmp_path):
    noisy, clean = pair
    model = train_denoiser(noisy, input="3d", epochs=4, steps=20, batch=2, lr=0.004, seed=0)
    assert (model.arch, model.input, model.config["training"]["patch"]) == ("unet3d", "3d", 32)
    out = np.asarray(enhance(model, noisy).data)
    c = np.asarray(clean.data)
    assert out.shape == noisy.shape
    assert np.mean((out - c) ** 2) < 0.6 * np.mean((np.asarray(noisy.data) - c) ** 2)
    back = model_io.load_model(model_io.save_model(model, tmp_path / "d3.dfmodel"))
    assert back.arch == "unet3d" and np.array_equal(np.asarray(enhance(back, noisy).data), out)
    coarse = clean.with_data(np.asarray(clean.data).reshape(8, 2, 24, 2, 24, 2).mean(axis=(1, 3, 5)),
                             spacing=np.array(clean.spacing) * 2)
    up = train_restoration(coarse, clean, input="3d", epochs=1, steps=2, batch=2, seed=0)
    assert enhance(up, coarse).shape == clean.shape
