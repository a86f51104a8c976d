"""No output may destroy data: confinement to the output folder, inputs never replaced, foreign folders
never deleted, detached data files confined (issue: data safety)."""

import json
import os

import numpy as np
import pytest

from damselfly.engine.core import phantoms
from damselfly.engine.core.errors import InputError
from damselfly.engine.io import _files as io
from damselfly.macros.cli import main

from .kit import write_scans


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_scans(tmp_path, 1, (12, 16, 16), name="g.tif")


def macro(workdir, body, name="m.dfm"):
    m = workdir / name
    m.write_text('version 1\nparam scan = "g.tif"\nraw = load(scan)\n' + body)
    return m


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_existing_user_folder_as_output_is_never_deleted(workdir, capsys):
    victim = workdir / "o" / "v"
    (victim / "sub").mkdir(parents=True)
    (victim / "keep.txt").write_text("x")
    m = macro(workdir, 'save(raw, "v")\n')
    assert main(["run", str(m), "--out", "o"]) == 1
    err = capsys.readouterr().err
    assert "is an existing folder that Damselfly did not write" in err and "m.dfm:4:1" in err
    assert (victim / "keep.txt").read_text() == "x" and (victim / "sub").is_dir()
    # the reproducer from the issue: an absolute folder elsewhere is refused before anything runs
    outside = workdir / "v2"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    m2 = macro(workdir, f'save(raw, "{outside}")\n', "m2.dfm")
    assert main(["run", str(m2), "--out", "o"]) == 1
    assert "m2.dfm:4:11: error: output" in capsys.readouterr().err
    assert main(["run", str(m2), "--out", "o", "--allow-outside-out"]) == 1
    assert "did not write" in capsys.readouterr().err and tree(outside) == ["keep.txt"]


def test_own_slice_folder_is_replaced_but_not_once_a_user_file_is_in_it(workdir, capsys):
    m = macro(workdir, 'save(raw, "slices")\n')
    assert main(["run", str(m), "--out", "o"]) == 0
    assert main(["run", str(m), "--out", "o"]) == 0  # our own folder: replaced
    slices = workdir / "o" / "slices"
    assert len(list(slices.glob("slice_*.tif"))) == 12
    (slices / "notes.txt").write_text("mine")
    assert main(["run", str(m), "--out", "o"]) == 1
    assert (slices / "notes.txt").read_text() == "mine" and len(list(slices.glob("slice_*.tif"))) == 12


@pytest.mark.parametrize("path, words", [
    (".", "is the output folder itself"),
    ("../x.tif", "leaves the output folder"),
    ("~/x.csv", "leaves the output folder"),
    ("/abs/x.tif", "leaves the output folder"),
    ("sub/../../x.tif", "leaves the output folder"),
])
def test_escaping_outputs_are_positioned_check_errors_and_nothing_runs(workdir, capsys, path, words):
    m = macro(workdir, f'save(raw, "{path}")\n')
    assert main(["check", str(m)]) == 1
    err = capsys.readouterr().err
    assert f"{m}:4:11: error: output '{path}'" in err and words in err
    assert main(["run", str(m), "--out", "o"]) == 1
    assert words in capsys.readouterr().err
    assert not (workdir / "o").exists() and not (workdir / "x.tif").exists()


def test_symlinked_subfolder_leading_out_is_refused(workdir, capsys):
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    (workdir / "o").mkdir()
    os.symlink(elsewhere, workdir / "o" / "link")
    m = macro(workdir, 'save(raw, "link/x.tif")\n')
    assert main(["run", str(m), "--out", "o"]) == 1
    assert "through a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_allow_outside_out_is_a_run_setting_and_inputs_stay_protected(workdir, capsys):
    target = workdir / "elsewhere" / "copy.tif"
    m = macro(workdir, f'save(raw, "{target}")\n')
    assert main(["run", str(m), "--out", "o", "--allow-outside-out"]) == 0
    assert io.read_volume(target).shape == (12, 16, 16)
    before = (workdir / "g.tif").read_bytes()
    m2 = macro(workdir, 'save(raw, "{scan}")\n', "m2.dfm")
    assert main(["run", str(m2), "--out", "o", "--allow-outside-out", "--set", f"scan={workdir / 'g.tif'}"]) == 1
    assert "would replace the run's input" in capsys.readouterr().err
    m3 = macro(workdir, 'save(raw, "../m3.dfm")\n', "m3.dfm")
    assert main(["run", str(m3), "--out", "o", "--allow-outside-out"]) == 1
    assert "would replace the run's input" in capsys.readouterr().err
    assert (workdir / "g.tif").read_bytes() == before


def test_batch_output_onto_the_scan_is_refused_and_the_scan_survives(workdir, capsys):
    scans = workdir / "scans"
    scans.mkdir()
    for i in range(2):
        v, _ = phantoms.casting((8, 16, 16), seed=i)
        io.write_volume(v, scans / f"s{i}.tif")
    before = {p.name: p.read_bytes() for p in scans.iterdir()}
    m = macro(workdir, 'cal = calibrate(raw)\nsave(cal, "{scan}")\n')
    assert main(["run", str(m), "--batch", str(scans / "*.tif"), "--out", "b"]) == 1
    assert "m.dfm:5:11: error: output" in capsys.readouterr().err
    assert main(["run", str(m), "--batch", str(scans / "*.tif"), "--out", "b", "--allow-outside-out"]) == 1
    assert "would replace the run's input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in scans.iterdir()} == before


def test_input_folder_is_not_written_into(workdir, capsys):
    v, _ = phantoms.casting((6, 16, 16), seed=0)
    io.write_volume(v, workdir / "o" / "stack")  # a slice folder, used as the input
    m = macro(workdir, 'save(raw, "stack/extra.tif")\n')
    assert main(["run", str(m), "--out", "o", "--set", f"scan={workdir / 'o' / 'stack'}"]) == 1
    assert "inside the run's input folder" in capsys.readouterr().err


@pytest.mark.parametrize("name, words", [
    ("x" * 300 + ".tif", "file names can be at most 255"),
    ("x/" * 2500 + ".tif", "paths can be at most 4096"),
    ("a\\u0000b.tif", "NUL"),
    ("a\\ud800b.tif", "lone surrogates"),
])
def test_unwritable_output_names_get_clear_errors(workdir, capsys, name, words):
    m = macro(workdir, f'save(raw, "{name}")\n')
    assert main(["check", str(m)]) == 1
    err = capsys.readouterr().err
    assert "m.dfm:4:11: error: output path" in err and words in err


def _detached_nrrd(folder, data_file: str, sizes="4 4 2"):
    hdr = folder / "scan.nhdr"
    hdr.write_text(f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {sizes}\nencoding: raw\n"
                   f"data file: {data_file}\n\n")
    return hdr


def test_detached_nrrd_reads_only_beside_its_header(tmp_path):
    (tmp_path / "d").mkdir()
    secret = tmp_path / "secret.raw"
    secret.write_bytes(bytes(range(32)))
    for name in ("/etc/passwd", "../secret.raw", str(secret)):
        hdr = _detached_nrrd(tmp_path / "d", name)
        with pytest.raises(InputError, match="outside the header's folder"):
            io.read_volume(hdr)
    (tmp_path / "d" / "scan.raw").write_bytes(bytes(range(32)))
    vol = io.read_volume(_detached_nrrd(tmp_path / "d", "scan.raw"))
    assert vol.shape == (2, 4, 4) and int(np.asarray(vol.data).max()) == 31
    assert vol.metadata["files"][1] == str((tmp_path / "d" / "scan.raw").resolve())


def test_detached_nrrd_data_file_is_listed_in_the_run_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scan.raw").write_bytes(bytes(range(32)))
    hdr = _detached_nrrd(tmp_path, "scan.raw")
    m = tmp_path / "m.dfm"
    m.write_text(f'version 1\nparam scan = "{hdr.name}"\nraw = load(scan)\nsave(raw, "x.tif")\n')
    assert main(["run", str(m), "--out", "o"]) == 0
    rec = json.loads((tmp_path / "o" / "run.json").read_text())
    assert str((tmp_path / "scan.raw").resolve()) in rec["inputs"]


def test_an_output_folder_that_cannot_be_written_is_a_clear_error_not_a_traceback(workdir, capsys, monkeypatch):
    """issue 31: a read-only output folder gave a Python traceback from the folder lock."""
    m = macro(workdir, 'save(raw, "copy.tif")\n')
    out = workdir / "ro"
    out.mkdir()
    (out / ".damselfly.lock").mkdir()  # the lock file cannot be opened (as in a folder one may not write)
    assert main(["run", str(m), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "cannot write the run's lock file" in err and "Traceback" not in err
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("ro2") else real(p, mode))
    (workdir / "ro2").mkdir()
    assert main(["run", str(m), "--out", str(workdir / "ro2")]) == 1
    err = capsys.readouterr().err
    assert "not writable" in err and "Traceback" not in err and not list((workdir / "ro2").iterdir())


@pytest.mark.parametrize("name", ["copy.tif", "copy.ome.zarr", "copy.npy"])
def test_a_full_disk_is_a_clear_error_the_partial_file_removed_the_record_failed(workdir, capsys, monkeypatch, name):
    """issue 31: a full disk was "internal error OSError" (and a segfault for .h5): ENOSPC is injected in
    the middle of the write."""
    import errno

    import numpy as np

    from damselfly.engine.io import _files as io_mod


    def full(*args, **kwargs):
        target = args[0]
        Path = type(workdir)
        if isinstance(target, Path):
            target.write_bytes(b"half a file")  # something partial on disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_mod, "write_tiff", full)
    monkeypatch.setattr(io_mod, "write_ome_zarr", full)
    monkeypatch.setattr(np.lib.format, "open_memmap", full)
    m = macro(workdir, f'save(raw, "{name}")\n')
    assert main(["run", str(m), "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert "the disk is full" in err and "free on that filesystem" in err and "internal error" not in err
    assert sorted(p.name for p in (workdir / "out").iterdir()) == [".damselfly.lock", "run.json"]
    assert json.loads((workdir / "out" / "run.json").read_text())["status"] == "failed"


def test_hdf5_is_not_written_where_it_cannot_fit(workdir, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 6, 10 ** 6 - 1000, 1000))
    m = macro(workdir, 'save(raw, "copy.h5")\n')
    assert main(["run", str(m), "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert "needs up to" in err and "free; nothing was written" in err
    assert not list((workdir / "out").glob("*.h5*")) and not list((workdir / "out").glob(".copy*"))


def test_an_output_that_cannot_be_replaced_is_a_clear_error(workdir, capsys, monkeypatch):
    """issue 31: an immutable file (chattr +i) in the way was "internal error"; the rename is refused here."""
    import errno

    real = os.replace

    def refuse(src, dst):
        if str(dst).endswith("copy.tif"):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    m = macro(workdir, 'save(raw, "copy.tif")\n')
    assert main(["run", str(m), "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert "copy.tif: cannot write it: Operation not permitted" in err and "internal error" not in err
    assert not list((workdir / "out").glob(".copy*"))
