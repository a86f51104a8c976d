"""BioImage Model Zoo packages: our models exported, validated by bioimageio.spec and read back with the same
labels; a foreign TorchScript package (written here with bioimageio.spec) runs through our pipeline."""

import zipfile
from functools import partial
from pathlib import Path

import bioimageio.spec as spec  # the dev extra installs it: these tests never skip
import numpy as np
import pytest
import torch
from bioimageio.spec.model import v0_5 as v

from damselfly.engine import InputError, Labels, ParameterError, Volume, make_classes
from damselfly.engine.actions import segmentation as seg_actions
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.core.context import RunContext
from damselfly.engine.segmentation import _model as dfmodel
from damselfly.engine.segmentation import _model_files as model_io

CPU = RunContext(device="cpu")
train = partial(seg_actions.train, ctx=CPU)
infer = partial(seg_actions.infer, ctx=CPU)
infer_probabilities = partial(seg_actions.infer_probabilities, ctx=CPU)


@pytest.fixture(scope="module")
def trained(casting_small):
    vol, truth = casting_small
    return vol, train(vol, sparse_labels(truth, slices=[8, 20, 31]), arch="unet", epochs=2, steps=3, batch=4,
                      patch=32, seed=5)


def test_our_model_round_trips_through_a_valid_zoo_package_with_the_same_labels(trained, tmp_path):
    vol, model = trained
    path = model_io.save_model(model, tmp_path / "casting.zip")
    descr = spec.load_model_description(path, perform_io_checks=True)  # the zoo's own validation
    assert isinstance(descr, v.ModelDescr), getattr(descr, "validation_summary", descr)
    assert descr.weights.torchscript is not None and [str(n) for n in descr.outputs[0].axes[1].channel_names] \
        == model.class_names
    back = model_io.load_model(path)
    assert back.class_names == model.class_names and back.hash == model.hash and back.context == model.context
    a, b = infer(model, vol), infer(back, vol)
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))


def test_the_exported_torchscript_gives_the_packages_test_output_and_our_probabilities(trained, tmp_path):
    """What a zoo consumer runs (pre-processing, then the TorchScript) is what we compute."""
    vol, model = trained
    path = model_io.save_model(model, tmp_path / "m.zip")
    descr = spec.load_model_description(path, perform_io_checks=False)
    with zipfile.ZipFile(path) as z:
        ts = torch.jit.load(z.open("weights.pt"))
        x = np.load(z.open("input.npy"))
        y = np.load(z.open("output.npy"))
    kw = next(op.kwargs for op in descr.inputs[0].preprocessing if op.id == "scale_linear")
    gain = np.asarray(kw.gain, np.float32).reshape(1, -1, 1, 1)
    offset = np.asarray(kw.offset, np.float32).reshape(1, -1, 1, 1)
    with torch.no_grad():
        got = ts(torch.from_numpy(x * gain + offset)).numpy()
        ours = torch.softmax(model.network("cpu")(torch.from_numpy(x * gain + offset)), 1).numpy()
    np.testing.assert_allclose(got, y, atol=1e-6)
    np.testing.assert_allclose(got, ours, atol=1e-5)
    # the normalisation as scale_linear: low -> 0, high -> 1
    (low, high), = model.normalization
    assert np.allclose(low * gain[0, :, 0, 0] + offset[0, :, 0, 0], 0, atol=1e-6)
    assert np.allclose(high * gain[0, :, 0, 0] + offset[0, :, 0, 0], 1, atol=1e-5)


class Thresholds(torch.nn.Module):
    """A foreign 'network': two classes by a fixed rule, in logits (bright -> class 2)."""

    def forward(self, x):
        return torch.cat([-(x - 0.5) * 20, (x - 0.5) * 20], dim=1)


def foreign_package(tmp_path: Path, net: torch.nn.Module, names, pre, post=(), axes="yx", norm=lambda x: x) -> Path:
    """A zoo package as another tool writes it; ``norm``: its pre-processing, for the test output."""
    d = tmp_path / "src"
    d.mkdir()
    torch.jit.script(net).save(str(d / "w.pt"))
    shape = (1, 1) + (16,) * len(axes)
    x = np.random.default_rng(0).random(shape, dtype=np.float32) * 1000
    np.save(d / "in.npy", x)
    with torch.no_grad():
        y = net(torch.from_numpy(norm(x).astype(np.float32))).numpy()
    if "sigmoid" in [op.id for op in post]:
        y = 1 / (1 + np.exp(-y))
    np.save(d / "out.npy", y.astype(np.float32))
    (d / "README.md").write_text("# foreign\n")
    space_in = [v.SpaceInputAxis(id=v.AxisId(a), size=v.ParameterizedSize(min=8, step=8)) for a in axes]
    space_out = [v.SpaceOutputAxis(id=v.AxisId(a), size=v.SizeReference(tensor_id=v.TensorId("raw"),
                                                                       axis_id=v.AxisId(a))) for a in axes]
    descr = v.ModelDescr(
        name="foreign thresholds", description="written by a test", authors=[v.Author(name="someone else")],
        cite=[v.CiteEntry(text="x", url="https://example.org")], license=v.LicenseId("MIT"),
        documentation=v.FileDescr(source=d / "README.md"),
        inputs=[v.InputTensorDescr(id=v.TensorId("raw"), axes=[v.BatchAxis(), v.ChannelAxis(
            channel_names=[v.Identifier("c0")]), *space_in], preprocessing=list(pre),
            test_tensor=v.FileDescr(source=d / "in.npy"), data=v.IntervalOrRatioDataDescr(type="float32"))],
        outputs=[v.OutputTensorDescr(id=v.TensorId("out"), axes=[v.BatchAxis(), v.ChannelAxis(
            channel_names=[v.Identifier(n) for n in names]), *space_out], postprocessing=list(post),
            test_tensor=v.FileDescr(source=d / "out.npy"), data=v.IntervalOrRatioDataDescr(type="float32"))],
        weights=v.WeightsDescr(torchscript=v.TorchscriptWeightsDescr(source=d / "w.pt", pytorch_version=v.Version("2.0"))),
    )
    return spec.save_bioimageio_package(descr, output_path=tmp_path / "foreign.zip")


def test_a_foreign_torchscript_package_runs_through_our_tiled_pipeline(tmp_path):
    rng = np.random.default_rng(1)
    data = (rng.random((5, 70, 90)) * 1000).astype(np.float32)
    pre = [v.ScaleLinearDescr(kwargs=v.ScaleLinearKwargs(gain=0.001, offset=0.0))]  # 0..1000 -> 0..1
    path = foreign_package(tmp_path, Thresholds(), ["dark", "bright"], pre, norm=lambda x: x * 0.001)
    model = model_io.load_model(path)
    assert model.class_names == ["dark", "bright"] and model.normalization == [(0.0, 1000.0)]
    seg = infer(model, Volume(data), tile=32)  # several tiles a slice, blended
    assert isinstance(seg, Labels)
    expect = np.where(data * 0.001 > 0.5, 2, 1)
    near = np.abs(data * 0.001 - 0.5) < 0.01  # blending may move values this close to the threshold
    assert np.array_equal(np.asarray(seg.data)[~near], expect[~near])


def test_a_foreign_package_with_per_scan_normalisation_and_one_sigmoid_channel(tmp_path):
    class Logit(torch.nn.Module):
        def forward(self, x):
            return x * 10.0  # after zero-mean unit-variance: positive above the scan's mean

    data = np.concatenate([np.full((2, 32, 32), 100.0), np.full((2, 32, 32), 300.0)]).astype(np.float32)
    pre = [v.ZeroMeanUnitVarianceDescr(kwargs=v.ZeroMeanUnitVarianceKwargs(axes=[v.AxisId("y"), v.AxisId("x")]))]
    path = foreign_package(tmp_path, Logit(), ["cell"], pre, post=[v.SigmoidDescr()],
                           norm=lambda x: (x - x.mean()) / x.std())
    model = model_io.load_model(path)
    assert model.class_names == ["background", "cell"]
    seg = np.asarray(infer(model, Volume(data)).data)
    assert (seg[:2] == 1).all() and (seg[2:] == 2).all()  # the mean (200) splits the scan
    probs = np.asarray(infer_probabilities(model, Volume(data)).data)
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
    assert probs[3, 5, 5, 1] > 0.99


def test_packages_damselfly_will_not_run_get_clear_errors(tmp_path, trained):
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError, match="junk.zip"):
        model_io.load_model(tmp_path / "junk.zip")
    with zipfile.ZipFile(tmp_path / "norfd.zip", "w") as z:
        z.writestr("README.md", "x")
    with pytest.raises(InputError, match="not a valid BioImage Model Zoo model"):
        model_io.load_model(tmp_path / "norfd.zip")
    pre = [v.ScaleLinearDescr(kwargs=v.ScaleLinearKwargs(gain=0.001, offset=0.0))]
    path = foreign_package(tmp_path, Thresholds(), ["a", "b"], pre, axes="zyx", norm=lambda x: x * 0.001)
    model = model_io.load_model(path)  # 3-D runs
    assert model.input == "3d"
    with pytest.raises(ParameterError, match="random forest|only segmentation"):
        forest = dfmodel.Model({"arch": "forest", "classes": [], "inputs": []}, {})
        model_io.save_model(forest, tmp_path / "f.zip")


def test_a_macro_exports_and_reloads_a_zoo_package(trained, tmp_path):
    from damselfly.engine import Session, Settings

    vol, model = trained
    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "out", device="cpu"))
    s.run("save_model", model, "m.zip")
    back = s.run("load_model", str(tmp_path / "out" / "m.zip"), target="back")
    assert back.class_names == model.class_names
    assert make_classes(back.class_names)[0].name == model.class_names[0]


def test_the_checker_reads_class_names_from_a_zoo_package(trained, tmp_path):
    import subprocess
    import sys

    from damselfly.engine import io

    vol, model = trained
    model_io.save_model(model, tmp_path / "m.zip")
    io.write_volume(vol, tmp_path / "scan.tif")
    m = tmp_path / "m.dfm"
    m.write_text('version 1\nraw = load("scan.tif")\nmodel = load_model("m.zip")\nseg = infer(model, raw)\n'
                 'thick = local_thickness(seg, class="metl")\n')
    r = subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "check", str(m)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "m.dfm:5" in r.stdout + r.stderr and "metal" in r.stdout + r.stderr
