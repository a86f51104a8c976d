"""Actions from other packages (entry-point group ``damselfly.actions``): the example plugin under
``examples/plugin`` (installed by ``setup.sh test``), and what a broken or colliding plugin gives."""

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from damselfly.engine import BUILTIN, Volume
from damselfly.engine.builtin import PLUGINS
from damselfly.engine.core._provenance import versions
from damselfly.engine.plugins import GROUP, PluginError, load_plugins
from damselfly.engine.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "damselfly-unsharp"


def installed():
    try:
        return metadata.version(PLUGIN)
    except metadata.PackageNotFoundError:
        pytest.fail(f"the example plugin is not installed: `bash setup.sh test` installs it "
                    f"(pip install -e {ROOT / 'examples' / 'plugin'})")


def test_the_example_plugin_is_registered_with_its_package_and_version():
    version = installed()
    spec = BUILTIN.get("unsharp_mask")
    assert spec.category == "Process" and [p.name for p in spec.params] == ["volume", "sigma", "amount"]
    assert [(p.action, p.package, p.version) for p in PLUGINS] == [("unsharp_mask", PLUGIN, version)]
    assert versions()[f"plugin {PLUGIN}"] == version


def fake_plugins(tmp_path, *packages):
    """Distributions on ``tmp_path`` (name, {entry name: value}, module source): their entry points."""
    for name, entries, source in packages:
        mod = name.replace("-", "_")
        (tmp_path / f"{mod}.py").write_text(source)
        info = tmp_path / f"{mod}-1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    sys.path.insert(0, str(tmp_path))
    eps = [ep for d in metadata.distributions(path=[str(tmp_path)]) for ep in d.entry_points if ep.group == GROUP]
    return eps


ACTION = ("from damselfly.engine import Volume, action\n"
          "@action('{name}')\n"
          "def f(volume: Volume) -> Volume:\n"
          "    '''Do nothing.'''\n"
          "    return volume\n")


@pytest.fixture
def clean_path():
    """The fake packages leave neither their folder on ``sys.path`` nor their modules imported."""
    before, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = before
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def test_a_plugin_named_like_a_built_in_is_an_error_naming_both_packages(tmp_path, clean_path):
    eps = fake_plugins(tmp_path, ("dup-pkg", {"calibrate": "dup_pkg:f"}, ACTION.format(name="calibrate")))
    reg = Registry([BUILTIN.get("calibrate")])
    with pytest.raises(PluginError, match=r"'calibrate' of the package dup-pkg 1\.2 .*damselfly \(built in\)"):
        load_plugins(reg, eps)


def test_two_plugins_with_one_name_is_an_error_naming_both(tmp_path, clean_path):
    eps = fake_plugins(tmp_path, ("aa-pkg", {"x": "aa_pkg:f"}, ACTION.format(name="smooth")),
                       ("bb-pkg", {"y": "bb_pkg:f"}, ACTION.format(name="smooth")))
    with pytest.raises(PluginError, match=r"'smooth' of the package bb-pkg 1\.2 .*the package aa-pkg 1\.2"):
        load_plugins(Registry(), eps)


def test_a_plugin_that_fails_to_load_or_is_no_action_is_an_error_naming_it(tmp_path, clean_path):
    eps = fake_plugins(tmp_path, ("broken-pkg", {"b": "broken_pkg:f"}, "raise RuntimeError('no GPU driver')\n"))
    with pytest.raises(PluginError, match=r"broken-pkg 1\.2 \(broken_pkg:f\) cannot be loaded: RuntimeError: no GPU"):
        load_plugins(Registry(), eps)
    (tmp_path / "n").mkdir()
    eps = fake_plugins(tmp_path / "n", ("plain-pkg", {"p": "plain_pkg:f"}, "def f(volume):\n    return volume\n"))
    with pytest.raises(PluginError, match="plain-pkg 1.2 .* is not an action: decorate it"):
        load_plugins(Registry(), eps)


def test_plugins_load_in_a_stable_order_and_register_their_actions(tmp_path, clean_path):
    eps = fake_plugins(tmp_path, ("zz-pkg", {"z": "zz_pkg:f"}, ACTION.format(name="zeta")),
                       ("aa-pkg", {"a": "aa_pkg:f"}, ACTION.format(name="alpha")))
    reg = Registry()
    got = load_plugins(reg, eps)
    assert [(p.package, p.action) for p in got] == [("aa-pkg", "alpha"), ("zz-pkg", "zeta")]
    assert [s.name for s in reg.all()] == ["alpha", "zeta"]


def write_scan(folder: Path, name="s.npy", seed=0):
    data = np.random.default_rng(seed).random((6, 20, 20), dtype=np.float32)
    np.save(folder / name, data)
    return data


def expected(data, sigma, amount):
    """Unsharp masking, written out here: the image plus amount times (image - its in-plane blur)."""
    out = np.empty_like(data)
    for z in range(data.shape[0]):
        out[z] = data[z] + amount * (data[z] - ndimage.gaussian_filter(data[z], sigma, mode="reflect"))
    return out


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "damselfly.macros.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_a_macro_using_the_plugin_checks_with_a_type_error_caught_and_runs_with_its_version_recorded(tmp_path):
    version = installed()
    data = write_scan(tmp_path)
    bad = tmp_path / "bad.dfm"
    bad.write_text('version 1\nraw = load("s.npy")\nsharp = unsharp_mask(raw, sigma="wide")\n')
    r = cli("check", str(bad), cwd=tmp_path)
    assert r.returncode != 0 and "bad.dfm:3" in r.stdout + r.stderr and "sigma" in r.stdout + r.stderr
    good = tmp_path / "m.dfm"
    good.write_text('version 1\nraw = load("s.npy")\nsharp = unsharp_mask(raw, sigma=1.5, amount=0.8)\n'
                    'save(sharp, "sharp.tif")\n')
    r = cli("check", str(good), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("run", str(good), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    import tifffile

    np.testing.assert_allclose(tifffile.imread(tmp_path / "o" / "sharp.tif"), expected(data, 1.5, 0.8), atol=1e-5)
    record = json.loads((tmp_path / "o" / "run.json").read_text())
    assert record["versions"][f"plugin {PLUGIN}"] == version


@pytest.mark.slow
def test_the_plugin_runs_in_batch_worker_processes(tmp_path):
    installed()
    from damselfly.macros.batch import run_batch

    scans = tmp_path / "scans"
    scans.mkdir()
    data = [write_scan(scans, f"s{i}.npy", seed=i) for i in range(3)]
    m = tmp_path / "m.dfm"
    m.write_text('version 1\nparam scan = "x.npy"\nraw = load(scan)\nsharp = unsharp_mask(raw, sigma=1.0)\n'
                 'save(sharp, "{scan.stem}_sharp.tif")\n')
    res = run_batch(m, str(scans / "*.npy"), out_dir=tmp_path / "out", jobs=2, device="cpu")
    assert [r.status for r in res] == ["ok"] * 3
    import tifffile

    for i, d in enumerate(data):
        got = tifffile.imread(next((tmp_path / "out").rglob(f"s{i}_sharp.tif")))
        np.testing.assert_allclose(got, expected(d, 1.0, 1.0), atol=1e-5)


def test_the_plugin_action_runs_on_a_volume_like_a_built_in():
    installed()
    from damselfly.engine import Session

    data = np.random.default_rng(3).random((4, 16, 16), dtype=np.float32)
    s = Session()
    out = s.run("unsharp_mask", Volume(data, spacing=(2.0, 1.0, 1.0)), sigma=2.0, target="sharp")
    assert s.objects["sharp"] is out
    assert out.spacing == (2.0, 1.0, 1.0)
    np.testing.assert_allclose(np.asarray(out.data), expected(data, 2.0, 1.0), atol=1e-5)


@pytest.mark.slow
def test_the_plugin_runs_on_a_dask_cluster_like_a_built_in(tmp_path, monkeypatch):
    installed()
    from damselfly.macros.batch import run_batch

    scans = tmp_path / "scans"
    scans.mkdir()
    data = [write_scan(scans, f"s{i}.npy", seed=i) for i in range(2)]
    (tmp_path / "worker-tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "worker-tmp"))
    m = tmp_path / "m.dfm"
    m.write_text('version 1\nparam scan = "x.npy"\nraw = load(scan)\nsharp = unsharp_mask(raw, sigma=2.0)\n'
                 'save(sharp, "{scan.stem}_sharp.tif")\n')
    res = run_batch(m, str(scans / "*.npy"), out_dir=tmp_path / "out", cluster="local:2", device="cpu")
    assert [r.status for r in res] == ["ok", "ok"], [r.error for r in res]
    import tifffile

    for i, d in enumerate(data):
        got = tifffile.imread(next((tmp_path / "out").rglob(f"s{i}_sharp.tif")))
        np.testing.assert_allclose(got, expected(d, 2.0, 1.0), atol=1e-5)


def test_a_recorded_session_writes_the_plugin_action_and_replays_it(tmp_path):
    """Recorded like a built-in: the recorder writes the plugin's statement, and the macro replays to the
    same output."""
    installed()
    from damselfly.engine import Settings
    from damselfly.engine.io import _files as io
    from damselfly.macros.recorder import Recorder
    from damselfly.macros.runner import run_file

    data = np.random.default_rng(7).random((5, 18, 18), dtype=np.float32)
    io.write_volume(Volume(data), tmp_path / "scan.tif")
    from damselfly.engine import Session

    s = Session(Settings(base_dir=tmp_path, out_dir=tmp_path / "rec"))
    rec = Recorder(s, macro_dir=tmp_path)
    raw = s.run("load", str(tmp_path / "scan.tif"), target="raw")
    sharp = s.run("unsharp_mask", raw, sigma=1.5, amount=0.5, target="sharp")
    s.run("save", sharp, "sharp.tif")
    rec.stop()
    macro = rec.save(tmp_path / "recorded.dfm")
    assert "unsharp_mask(raw, sigma=1.5, amount=0.5)" in macro.read_text()
    assert run_file(macro, out_dir=tmp_path / "replay").status == "ok"
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(tmp_path / "replay" / "sharp.tif"),
                                  tifffile.imread(tmp_path / "rec" / "sharp.tif"))
