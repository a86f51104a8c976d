"""--resume never reports stale or mixed results as done; one run at a time per output folder; what
interrupted writes left is removed (issue: data safety)."""

import json
import os

import pytest

from damselfly.engine.core import phantoms
from damselfly.engine.core.errors import DamselflyError
from damselfly.engine.core.progress import Reporter
from damselfly.engine.io import _files as io
from damselfly.macros.batch import run_batch
from damselfly.macros.runner import run_file
from damselfly.macros.runrecord import FolderLock, done_reason, read_record

from .kit import write_scans

BODY = ('version 1\nparam scan = "x.tif"\nraw = load(scan)\ncal = calibrate(raw)\nsave(cal, "{scan.stem}_cal.tif")\n'
        'seg = threshold(cal, names=["air", "metal"])\nsave(seg, "{scan.stem}_seg.tif")\n')


@pytest.fixture
def batch(tmp_path):
    scans = write_scans(tmp_path / "scans", 3)
    m = tmp_path / "m.dfm"
    m.write_text(BODY)
    return m, str(scans / "*.tif"), tmp_path / "out"


def statuses(results):
    return [r.status for r in results]


def test_resume_skips_only_what_is_really_done(batch):
    m, pattern, out = batch
    assert statuses(run_batch(m, pattern, out_dir=out)) == ["ok"] * 3
    assert statuses(run_batch(m, pattern, out_dir=out, resume=True)) == ["skipped"] * 3
    # a deleted output, a changed output and a changed input each make their scan run again
    (out / "p0" / "p0_seg.tif").unlink()
    (out / "p1" / "p1_cal.tif").write_bytes(b"not what we wrote")
    scan2 = m.parent / "scans" / "p2.tif"
    v, _ = phantoms.casting((8, 16, 16), seed=7)
    io.write_volume(v, scan2)
    os.utime(scan2, ns=(1, 1))
    assert "p0_seg.tif is missing" in done_reason(out / "p0", _sha(m), _params(scan=str(m.parent / "scans/p0.tif")))
    assert statuses(run_batch(m, pattern, out_dir=out, resume=True)) == ["ok"] * 3
    assert statuses(run_batch(m, pattern, out_dir=out, resume=True)) == ["skipped"] * 3


def test_an_edited_macro_reruns_every_scan(batch):
    m, pattern, out = batch
    run_batch(m, pattern, out_dir=out)
    m.write_text(BODY.replace('"air", "metal"', '"air", "steel"'))
    assert statuses(run_batch(m, pattern, out_dir=out, resume=True)) == ["ok"] * 3
    assert io.read_labels(out / "p0" / "p0_seg.tif").class_names == ["air", "steel"]
    assert statuses(run_batch(m, pattern, out_dir=out, resume=True, overrides={})) == ["skipped"] * 3


def test_a_rerun_invalidates_the_old_record_before_it_writes_anything(batch):
    m, pattern, out = batch
    run_batch(m, pattern, out_dir=out)
    m.write_text(BODY.replace('"air", "metal"', '"air", "steel"'))
    seen = []

    def on_statement(st, i, n):
        seen.append(read_record(out / "p0")["status"])

    scan = str(m.parent / "scans" / "p0.tif")
    rep = Reporter(interval=0)
    rep.callback = lambda ev: rep.cancel() if ev.message == "Calibrating" else None
    r = run_file(m, {"scan": scan}, out / "p0", reporter=rep, on_statement=on_statement)
    assert seen[0] == "running" and r.status == "cancelled"
    # the old p0_cal.tif / p0_seg.tif are still there, from the old macro: the scan is not done
    assert (out / "p0" / "p0_seg.tif").exists()
    res = run_batch(m, pattern, out_dir=out, resume=True)
    assert statuses(res) == ["ok", "ok", "ok"]


def test_resume_with_no_overwrite_finishes_an_interrupted_scan(batch):
    m, pattern, out = batch
    scan = str(m.parent / "scans" / "p0.tif")
    rep = Reporter(interval=0)
    rep.callback = lambda ev: rep.cancel() if ev.message.startswith("Thresholding") or "hreshold" in ev.message \
        else None
    r = run_file(m, {"scan": scan}, out / "p0", reporter=rep)
    assert r.status == "cancelled" and (out / "p0" / "p0_cal.tif").exists()
    res = run_batch(m, pattern, out_dir=out, resume=True, overwrite=False)
    assert statuses(res) == ["ok"] * 3, [r.error for r in res]
    # but a finished scan's outputs are not replaced by a plain --no-overwrite run
    res = run_batch(m, pattern, out_dir=out, overwrite=False)
    assert statuses(res) == ["failed"] * 3 and "overwriting is off" in res[0].error


def test_two_runs_into_one_folder_the_second_gets_a_clear_error(batch):
    m, pattern, out = batch
    (out / "p0").mkdir(parents=True)
    with FolderLock(out / "p0"):
        with pytest.raises(DamselflyError, match="another Damselfly run is writing into this folder .pid"):
            run_file(m, {"scan": str(m.parent / "scans" / "p0.tif")}, out / "p0")
        res = run_batch(m, pattern, out_dir=out)
        assert statuses(res) == ["failed", "ok", "ok"] and "another Damselfly run" in res[0].error
    with FolderLock(out):
        with pytest.raises(DamselflyError, match="another Damselfly run"):
            run_batch(m, pattern, out_dir=out)
    assert run_file(m, {"scan": str(m.parent / "scans" / "p0.tif")}, out / "p0").status == "ok"


def test_stale_temporaries_are_removed_and_user_files_kept(batch):
    m, pattern, out = batch
    d = out / "p0"
    (d / "sub").mkdir(parents=True)
    stale = [d / ".p0_orbit.mp4.k2j4h5g6.partial.mp4", d / "sub" / ".x.tif.abcd_123.partial.tif"]
    for p in stale:
        p.write_bytes(b"half")
    (d / ".p0_slices.q1w2e3r4.partial").mkdir()
    keep = [d / ".hidden_notes", d / "notes.partial.txt", d / "sub" / "mine.tif"]
    for p in keep:
        p.write_text("mine")
    assert run_file(m, {"scan": str(m.parent / "scans" / "p0.tif")}, d).status == "ok"
    assert not any(p.exists() for p in stale) and not (d / ".p0_slices.q1w2e3r4.partial").exists()
    assert all(p.read_text() == "mine" for p in keep)


def _sha(m):
    import hashlib

    return hashlib.sha256(m.read_text().encode()).hexdigest()


def _params(**kw):
    return json.loads(json.dumps(kw))


def test_ctrl_c_in_a_serial_batch_writes_the_summary_and_stops(batch):
    m, pattern, out = batch
    def interrupt(ev):  # Ctrl-C while the second scan saves its first output
        if "p1_cal.tif" in ev.message:
            raise KeyboardInterrupt

    rep = Reporter(interval=0)
    rep.callback = interrupt
    with pytest.raises(KeyboardInterrupt):
        run_batch(m, pattern, out_dir=out, reporter=rep)
    summary = json.loads((out / "batch.json").read_text())
    assert summary["interrupted"] and [i["status"] for i in summary["items"]] == ["ok", "cancelled", "cancelled"]
    assert read_record(out / "p1")["status"] == "cancelled" and not (out / "p2").exists()
    assert [r.status for r in run_batch(m, pattern, out_dir=out, resume=True)] == ["skipped", "ok", "ok"]
