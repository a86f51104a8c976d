import json
import subprocess
import sys
from pathlib import Path

import pytest

from damselfly.engine.core import phantoms
from damselfly.engine.io import _files as io
from damselfly.macros.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "casting_porosity.dfm"


def write_scan(path, seed, size=(24, 32, 32)):
    v, t = phantoms.casting(size, seed=seed)
    io.write_volume(v, path)
    return t


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_misspelt_action_exits_1_with_position_and_did_you_mean(workdir):
    m = workdir / "bad.dfm"
    m.write_text('version 1\nparam scan = "s.tif"\nraw = load(scan)\ncal = calibrat(raw)\nsave(cal, "out.tif")\n')
    write_scan(workdir / "s.tif", 0)
    r = subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "check", str(m)], capture_output=True, text=True,
                       cwd=workdir)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == f"{m}:4:7: error: unknown action 'calibrat'; did you mean 'calibrate'?"
    assert lines[1] == "    cal = calibrat(raw)" and lines[2] == "          ^~~~~~~~"
    # run refuses too, and nothing ran: no output folder, no files
    assert main(["run", str(m), "--out", str(workdir / "out")]) == 1
    assert not (workdir / "out").exists()


@pytest.mark.parametrize("line, message", [
    ('cal = calibrate(raw, low="high")', "4:26: error: calibrate(): low expects float, got str 'high'"),
    ("cal = calibrate(rwa)", "4:17: error: undefined name 'rwa'; did you mean 'raw'?"),
])
def test_check_wrong_type_or_undefined_name(workdir, capsys, line, message):
    m = workdir / "bad.dfm"
    m.write_text(f'version 1\nparam scan = "s.tif"\nraw = load(scan)\n{line}\nsave(cal, "o.tif")\n')
    write_scan(workdir / "s.tif", 0)
    assert main(["check", str(m)]) == 1
    assert message in capsys.readouterr().err
    assert main(["run", str(m), "--out", "o"]) == 1
    assert not (workdir / "o").exists()


def test_check_ok_and_fmt(workdir, capsys):
    assert main(["check", str(EXAMPLE)]) == 0
    assert main(["fmt", "--check", str(EXAMPLE)]) == 0
    ugly = workdir / "u.dfm"
    ugly.write_text("version 1\nx=load( 'a' )\n")
    assert main(["fmt", str(ugly)]) == 1  # single quotes are not strings: a syntax error
    ugly.write_text('version 1\n\n\nx=load( "a" ) #c\n')
    capsys.readouterr()
    assert main(["fmt", "--check", str(ugly)]) == 1
    assert main(["fmt", str(ugly)]) == 0
    assert capsys.readouterr().out == 'version 1\n\nx = load("a")  #c\n'
    assert main(["fmt", "-w", str(ugly)]) == 0 and main(["fmt", "--check", str(ugly)]) == 0


def test_actions_lists_every_action(capsys):
    assert main(["actions"]) == 0
    out = capsys.readouterr().out
    for name in ("load(", "load_labels(", "save(", "calibrate(", "threshold(", "crop(", "evaluate("):
        assert name in out
    assert main(["actions", "calibrate"]) == 0
    assert "two_point" in capsys.readouterr().out
    assert main(["actions", "calibrat"]) == 1


def test_run_with_set_writes_outputs_and_run_record(workdir, capsys):
    from damselfly.engine.actions.segmentation import sparse_labels

    t = write_scan(workdir / "scan_a.tif", 1)
    io.write_volume(t, workdir / "truth_a.tif")
    io.write_volume(sparse_labels(t, slices=[5, 15]), workdir / "painted_a.tif")
    code = main(["run", str(EXAMPLE), "--set", f"scan={workdir / 'scan_a.tif'}",
                 "--set", f"truth_file={workdir / 'truth_a.tif'}", "--set", f"painted_file={workdir / 'painted_a.tif'}",
                 "--set", "epochs=1", "--set", "movie_seconds=0.4", "--out", "res", "--device", "cpu"])
    assert code == 0
    out = workdir / "res"
    assert sorted(p.name for p in out.iterdir()) == [
        ".damselfly.lock", "run.json", "scan_a.dfmodel", "scan_a.history.csv", "scan_a_class_fractions.csv",
        "scan_a_metal_thickness.csv", "scan_a_metal_thickness.tif", "scan_a_orbit.mp4", "scan_a_orbit.mp4.json",
        "scan_a_otsu_scores.csv", "scan_a_pore_sizes.csv", "scan_a_pore_sizes.png", "scan_a_pores.csv",
        "scan_a_pores_by_volume.png", "scan_a_report.html", "scan_a_scores.csv", "scan_a_seg.tif",
        "scan_a_seg.tif.json", "scan_a_snapshot.png"]
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "ok" and rec["params"]["scan"] == str(workdir / "scan_a.tif")
    assert rec["params"]["epochs"] == 1
    assert rec["macro_text"] == EXAMPLE.read_text() and len(rec["macro_sha256"]) == 64
    assert set(rec["inputs"]) == {str(workdir / n) for n in ("scan_a.tif", "truth_a.tif", "painted_a.tif")}
    assert all(len(h["sha256"]) == 64 and h["size"] > 0 for h in rec["inputs"].values())
    assert set(rec["output_sha256"]) == set(rec["outputs"]) and rec["pending"] == []
    assert [s["action"] for s in rec["statements"]][:5] == ["load", "calibrate", "load_labels", "train",
                                                            "save_model"]
    assert rec["settings"]["device"] == "cpu" and "numpy" in rec["versions"]


def test_dry_run_resolves_inputs_and_computes_nothing(workdir, capsys):
    assert main(["run", str(EXAMPLE), "--dry-run", "--out", "dry"]) == 0
    out = capsys.readouterr().out
    assert str(ROOT / "examples" / "data" / "casting.tif") in out
    assert not (workdir / "dry").exists()
    assert main(["run", str(EXAMPLE), "--dry-run", "--set", "scan=nope.tif"]) == 1
    assert "input file 'nope.tif' not found" in capsys.readouterr().err


def test_runtime_error_names_the_line_and_leaves_no_partial_output(workdir, capsys):
    (workdir / "scan.tif").write_bytes(b"II*\x00garbage")
    m = workdir / "m.dfm"
    m.write_text('version 1\nparam scan = "scan.tif"\nraw = load(scan)\nsave(raw, "copy.tif")\n')
    assert main(["run", str(m), "--out", "o"]) == 1
    err = capsys.readouterr().err
    assert f"{m}:3:7: error: load: " in err and "scan.tif: cannot read TIFF" in err
    assert json.loads((workdir / "o" / "run.json").read_text())["status"] == "failed"
    assert sorted(p.name for p in (workdir / "o").iterdir()) == [".damselfly.lock", "run.json"]


def test_batch_keeps_going_past_a_corrupt_scan(workdir, capsys):
    scans = workdir / "scans"
    scans.mkdir()
    for i in range(3):
        write_scan(scans / f"part_{i}.tif", i)
    good = (scans / "part_1.tif").read_bytes()
    (scans / "part_1.tif").write_bytes(good[: len(good) // 3])  # truncated
    m = workdir / "m.dfm"
    m.write_text('version 1\nparam scan = "x.tif"\nraw = load(scan)\ncal = calibrate(raw)\n'
                 'seg = threshold(cal, names=["air", "metal"])\nsave(seg, "{scan.stem}_seg.tif")\n')
    code = main(["run", str(m), "--batch", str(scans / "*.tif"), "--out", "batch"])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 of 3 scans done, 1 failed" in captured.out
    assert f"FAILED {scans / 'part_1.tif'}" in captured.err and "truncated or corrupt TIFF" in captured.err
    for i in (0, 2):
        assert (workdir / "batch" / f"part_{i}" / f"part_{i}_seg.tif").exists()
    assert not (workdir / "batch" / "part_1" / "part_1_seg.tif").exists()
    summary = json.loads((workdir / "batch" / "batch.json").read_text())
    assert [i["status"] for i in summary["items"]] == ["ok", "failed", "ok"]
    # --resume re-runs only the failed scan (fixed now)
    (scans / "part_1.tif").write_bytes(good)
    assert main(["run", str(m), "--batch", str(scans / "*.tif"), "--out", "batch", "--resume"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (workdir / "batch" / "part_1" / "part_1_seg.tif").exists()


def test_batch_with_two_jobs(workdir, capsys):
    for i in range(2):
        write_scan(workdir / f"s{i}.tif", i)
    m = workdir / "m.dfm"
    m.write_text('version 1\nparam scan = "x.tif"\nraw = load(scan)\nsave(raw, "{scan.stem}.npy")\n')
    assert main(["run", str(m), "--batch", "s*.tif", "--jobs", "2", "--out", "b"]) == 0
    assert (workdir / "b" / "s0" / "s0.npy").exists() and (workdir / "b" / "s1" / "s1.npy").exists()


def test_set_with_an_unknown_param_and_batch_without_the_param(workdir, capsys):
    assert main(["check", str(EXAMPLE), "--set", "sacn=a.tif"]) == 1
    assert "no param 'sacn'; did you mean 'scan'?" in capsys.readouterr().err
    m = workdir / "m.dfm"
    m.write_text("version 1\n")
    assert main(["run", str(m), "--batch", "*.tif"]) == 1
    assert "does not declare" in capsys.readouterr().err


def test_device_cuda_without_a_gpu_is_a_clear_error(workdir, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["run", str(EXAMPLE), "--device", "cuda", "--out", "o"]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err


def test_demo_end_to_end(workdir, capsys):
    assert main(["demo", "--out", "demo", "--size", "48", "--epochs", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Dice per class against the phantom's truth" in out
    res = workdir / "demo" / "results"
    otsu = io.read_table(res / "casting_otsu_scores.csv")
    assert otsu["class"] == ["air", "metal", "pore"]
    # the phantom is made so that grey-value thresholds visibly fail on the pores
    assert otsu.row("class", "air")["dice"] > 0.9 and otsu.row("class", "pore")["dice"] < 0.2
    unet = io.read_table(res / "casting_scores.csv")
    assert unet["class"] == ["air", "metal", "pore"]
    assert json.loads((res / "run.json").read_text())["status"] == "ok"
    # the saved model segmented a second scan, unattended
    applied = json.loads((workdir / "demo" / "applied" / "run.json").read_text())
    assert applied["status"] == "ok"
    seg = io.read_labels(workdir / "demo" / "applied" / "casting_2_seg.tif")
    assert seg.shape == (48, 48, 48) and seg.class_names == ["air", "metal", "pore"]
    assert (res / "casting.history.csv").exists()
    # the metal walls were measured: a thickness map in mm and its statistics
    stats = io.read_table(res / "casting_metal_thickness.csv")
    assert stats["range"][0] == "all" and stats["voxels"][0] > 0 and 0 < stats["mean"][0] <= stats["max"][0]
    assert "Local thickness of the metal" in out
    # the pores were counted and measured, one row each, and the porosity
    pores = io.read_table(res / "casting_pores.csv")
    assert pores["id"] == list(range(1, len(pores["id"]) + 1)) and "equivalent_diameter" in pores.columns
    assert f"Pores (U-Net segmentation): {len(pores['id'])}, porosity" in out
    assert io.read_table(res / "casting_class_fractions.csv").row("class", "pore")["fraction"] > 0


def test_stop_mid_run_records_cancelled_and_writes_no_partial_file(workdir):
    """A Stop (cancel) during an action: the run record says cancelled, no output is half-written."""
    from damselfly.engine.core.progress import Reporter
    from damselfly.macros.runner import run_file

    write_scan(workdir / "s.tif", 0, size=(64, 32, 32))
    m = workdir / "m.dfm"
    m.write_text('version 1\nparam scan = "s.tif"\nraw = load(scan)\nsave(raw, "first.tif")\n'
                 'cal = calibrate(raw)\nsave(cal, "never.tif")\n')
    rep = Reporter(interval=0)
    rep.callback = lambda ev: rep.cancel() if ev.message == "Calibrating" and ev.done >= 16 else None
    result = run_file(m, out_dir=workdir / "o", reporter=rep)
    assert result.status == "cancelled"
    rec = json.loads((workdir / "o" / "run.json").read_text())
    assert rec["status"] == "cancelled" and [s["action"] for s in rec["statements"]] == ["load", "save"]
    assert sorted(p.name for p in (workdir / "o").iterdir()) == [".damselfly.lock", "first.tif", "run.json"]


def test_text_progress_bar_draws_on_a_terminal_only():
    import io as _io

    from damselfly.engine.core.progress import ProgressEvent
    from damselfly.macros.console import TextProgress

    class Tty(_io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), _io.StringIO()
    for stream in (tty, pipe):
        bar = TextProgress(stream)
        bar(ProgressEvent("Calibrating", 5, 10, 1.0))
        bar(ProgressEvent("Calibrating", 10, 10, 2.0, finished=True))
    assert "[###############---------------]  50.0%  Calibrating" in tty.getvalue()
    assert tty.getvalue().endswith("\n") and "100.0%" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_batch_dry_run_computes_and_writes_nothing(workdir, capsys):
    """--batch with --dry-run checks each scan and computes nothing (issue 30: it ran everything and
    wrote outputs); a scan whose extra input is missing is reported."""
    scans = workdir / "scans"
    scans.mkdir()
    for i in range(2):
        write_scan(scans / f"part_{i}.tif", i)
    io.write_volume(phantoms.casting((24, 32, 32), seed=0)[1], workdir / "part_0_truth.tif")
    m = workdir / "m.dfm"
    m.write_text('version 1\nparam scan = "x.tif"\nraw = load(scan)\ncal = calibrate(raw)\n'
                 'seg = threshold(cal, names=["air", "metal"])\nsave(seg, "{scan.stem}_seg.tif")\n'
                 'truth = load_labels("{scan.stem}_truth.tif")\nscores = evaluate(seg, truth)\n'
                 'save(scores, "{scan.stem}_scores.csv")\n')
    code = main(["run", str(m), "--batch", str(scans / "*.tif"), "--out", "batch", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 1 and not (workdir / "batch").exists()
    assert "checked  " in out and "part_0.tif" in out and "1 of 2 scans pass the check" in out
    assert "FAILED" in err and "part_1_truth.tif" in err and "not found" in err
    (workdir / "part_1_truth.tif").write_bytes((workdir / "part_0_truth.tif").read_bytes())
    assert main(["run", str(m), "--batch", str(scans / "*.tif"), "--out", "batch", "--dry-run"]) == 0
    assert not (workdir / "batch").exists()
