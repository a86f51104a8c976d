"""Batches on a Dask LocalCluster of 2 worker processes (issue 19): the same outputs as a serial run, a
bad scan reported, a killed worker's scan retried elsewhere, Ctrl-C then --resume. Linux (reads /proc)."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from damselfly.engine import DamselflyError, ParameterError
from damselfly.macros.batch import run_batch

from .kit import batch_of, final_files, processes_with, temporaries, wait_for

pytestmark = [pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc"),
              pytest.mark.slow]


@pytest.fixture
def scans(tmp_path):
    return batch_of(tmp_path, 6)


def test_a_cluster_batch_equals_the_serial_run_and_reports_the_bad_scan(scans, tmp_path, monkeypatch):
    m, folder = scans
    (tmp_path / "worker-tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "worker-tmp"))  # the spawned workers' temporary folder
    (folder / "p3.tif").write_bytes(b"II*\x00 truncated")  # a corrupt scan
    res = run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "out", cluster="local:2", device="cpu")
    assert [r.status for r in res] == ["ok", "ok", "ok", "failed", "ok", "ok"]
    assert "p3.tif" in res[3].error
    summary = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert summary["cluster"] == "local:2" and [i["status"] for i in summary["items"]][3] == "failed"
    with open(tmp_path / "out" / "summary.csv", newline="") as f:  # errors span lines: read it as CSV
        assert [r["status"] for r in csv.DictReader(f)] == ["ok", "ok", "ok", "failed", "ok", "ok"]
    serial = run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "serial", device="cpu")
    assert [r.status for r in serial] == [r.status for r in res]
    assert final_files(tmp_path / "out") == final_files(tmp_path / "serial")
    assert not temporaries(tmp_path / "out")
    assert not list((tmp_path / "worker-tmp").glob("damselfly-task-*"))  # each scan's child files removed


def test_a_killed_worker_has_its_scan_run_again_elsewhere(scans, tmp_path):
    m, folder = scans
    out = tmp_path / "out"

    def killer():  # kill -9 the Dask worker whose child runs p1, mid-scan
        child = wait_for(lambda: processes_with(f"{folder / 'p1.tif'}"), timeout=120)[0]
        wait_for(lambda: (out / "p1" / "run.json").exists(), timeout=120)
        time.sleep(0.3)
        parent = int(Path(f"/proc/{child}/stat").read_text().split(") ")[1].split()[1])
        os.kill(parent, signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    res = run_batch(m, str(folder / "*.tif"), out_dir=out, cluster="local:2", device="cpu")
    t.join()
    assert [r.status for r in res] == ["ok"] * 6
    assert not temporaries(out)
    run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "clean", device="cpu")
    assert final_files(out) == final_files(tmp_path / "clean")


def test_ctrl_c_cancels_then_resume_finishes_the_rest(scans, tmp_path):
    m, folder = scans
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "damselfly.macros.cli", "run", str(m), "--batch", str(folder / "*.tif"),
           "--out", str(out), "--cluster", "local:2", "--device", "cpu"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "p0" / "run.json").exists(), timeout=120)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    summary = json.loads((out / "batch.json").read_text())
    assert summary["interrupted"] and {i["status"] for i in summary["items"]} <= {"ok", "cancelled"}
    assert "cancelled" in {i["status"] for i in summary["items"]}
    assert not temporaries(out)
    wait_for(lambda: not processes_with(str(folder)), timeout=60)
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "clean", device="cpu")
    assert final_files(out) == final_files(tmp_path / "clean")


def test_ctrl_c_in_a_terminal_reaches_the_workers_too_and_still_ends_cleanly(scans, tmp_path):
    """issue 31: SIGINT to the whole process group (Ctrl-C in a terminal) printed Dask tracebacks and once
    exited 1 without batch.json; it ends as --jobs does: exit 130, the summary written, no traceback."""
    import os

    m, folder = scans
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "damselfly.macros.cli", "run", str(m), "--batch", str(folder / "*.tif"),
           "--out", str(out), "--cluster", "local:2", "--device", "cpu"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: (out / "p0" / "run.json").exists(), timeout=120)
    time.sleep(0.3)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    assert json.loads((out / "batch.json").read_text())["interrupted"]
    wait_for(lambda: not processes_with(str(folder)), timeout=60)


def test_bad_cluster_addresses_are_clear_errors(scans, tmp_path):
    m, folder = scans
    with pytest.raises(ParameterError, match="local:N"):
        run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "o", cluster="local:zero")
    with pytest.raises(DamselflyError, match="no Dask scheduler answers"):
        run_batch(m, str(folder / "*.tif"), out_dir=tmp_path / "o2", cluster="tcp://127.0.0.1:9")


def test_the_slurm_example_submits_the_job_script_it_documents():
    pytest.importorskip("dask_jobqueue")
    from damselfly.macros.cluster import jobqueue_cluster

    example = Path(__file__).resolve().parents[2] / "examples" / "slurm.yaml"
    cluster, jobs = jobqueue_cluster(example)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert jobs == 4
    for line in ("#SBATCH -p gpu", "#SBATCH -A my_project", "#SBATCH --gres=gpu:1", "#SBATCH -t 04:00:00",
                 "source $HOME/damselfly/.venv/bin/activate"):
        assert line in script, line
    assert "--resources GPU=1" in script and "distributed.cli.dask_worker" in script


def test_only_scans_that_run_networks_ask_for_a_gpu():
    from damselfly.macros.cluster import uses_gpu, wants_gpu
    from damselfly.macros.parser import parse

    class Client:  # the scheduler's view of the workers, as distributed reports it
        def __init__(self, gpus):
            self.gpus = gpus

        def scheduler_info(self):
            return {"workers": {"w": {"resources": {"GPU": self.gpus} if self.gpus else {}}}}

    seg = parse('version 1\nraw = load("a.tif")\nmodel = load_model("m.dfmodel")\nseg = infer(model, raw)\n')
    measure = parse('version 1\nraw = load("a.tif")\nseg = threshold(raw)\nsave(seg, "s.tif")\n')
    assert uses_gpu(seg) and not uses_gpu(measure)
    assert wants_gpu(Client(1), "auto", seg) and wants_gpu(Client(2), "cuda", seg)
    assert not wants_gpu(Client(1), "cpu", seg)  # --device cpu
    assert not wants_gpu(Client(0), "auto", seg)  # no worker has a GPU: asking would wait forever
    assert not wants_gpu(Client(1), "auto", measure)


# -- one scan, its blocks spread over the workers ---------------------------------------------------
@pytest.fixture(scope="module")
def workers():
    """A block runner over a LocalCluster of 2 worker processes."""
    from damselfly.macros.cluster import DaskBlocks, close, connect

    client, cluster = connect("local:2")
    yield DaskBlocks(client, "local:2")
    close(client, cluster)


def test_local_workers_keep_dask_housekeeping_quiet_as_the_example_file_says(workers):
    import dask
    import yaml

    from damselfly.macros.cluster import QUIET

    example = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "dask.yaml").read_text())
    assert {key: dask.config.get(key, config=example) for key in QUIET} == QUIET
    seen = workers.client.run(lambda: {key: dask.config.get(key) for key in QUIET})
    assert len(seen) == 2 and all(v == QUIET for v in seen.values())
    assert dask.config.get("distributed.worker.profile.enabled") is True  # the client's own config is untouched


class Where:
    """A block runner that also records which worker ran each block."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def __str__(self):
        return str(self.inner)

    def __call__(self, fn, items, shared=None):
        def run(shared, item):  # pickled by value (cloudpickle) to the workers
            from distributed import get_worker

            fn(shared, item)
            return get_worker().address

        for i, address in self.inner(run, items, shared):
            self.seen.append(address)
            yield i, address


@pytest.mark.parametrize("sparse_share, centres", [(0.0, False), (1.0, False), (1.0, True)])
def test_block_wise_thickness_across_two_workers_equals_the_in_memory_result(workers, tmp_path, sparse_share,
                                                                             centres, monkeypatch):
    """Final offsets in dense files or as phase records; blocks grown by the halo, or passing the ball
    centres between them (named scratch files the workers share)."""
    import numpy as np
    import zarr
    from scipy import ndimage as ndi

    from damselfly.engine.actions.measure import PhaseReader
    from damselfly.engine.thickness._blocks import blockwise_thickness
    from damselfly.engine.thickness._exact import local_thickness

    a = ndi.gaussian_filter(np.random.default_rng(7).random((30, 34, 38)), 2.0)
    mask = a > np.median(a)
    scan = zarr.create_array(store=str(tmp_path / "m.zarr"), shape=mask.shape, chunks=(8, 8, 8), dtype=np.uint8)
    scan[:] = mask
    out = zarr.create_array(store=str(tmp_path / "t.zarr"), shape=mask.shape, chunks=(8, 8, 8), dtype=np.float32)
    where = Where(workers)
    monkeypatch.setattr("damselfly.engine.thickness._blocks.SPARSE_SHARE", sparse_share)
    if centres:
        for name, value in [("BLOCK", 8), ("GROWN_VOXELS", 8 ** 3), ("CENTRES_WHEN", 0.0), ("CENTRE_BLOCK", 8)]:
            monkeypatch.setattr(f"damselfly.engine.thickness._blocks.{name}", value)
    blockwise_thickness(PhaseReader(scan, None), mask.shape, (1.0, 0.5, 0.5), out, block=None if centres else 8,
                        runner=where)
    np.testing.assert_array_equal(out[:], local_thickness(mask, (1.0, 0.5, 0.5)))
    blocks = 4 * 5 * 5 * (2 if centres else 1)  # (the ridge, then the fill, per block)
    assert len(where.seen) == blocks and len(set(where.seen)) == 2  # every block, on both workers


CLUSTER_MACRO = ('version 1\nparam scan = "scan.ome.zarr"\nimg = load(scan)\nmodel = load_model("m.dfmodel")\n'
                 'seg = infer(model, img)\nsave(seg, "seg.tif")\n'
                 'cal = calibrate(img)\nmetal = threshold(cal, names=["air", "metal"])\n'
                 'thick = local_thickness(metal, class="metal")\nsave(thick, "thick.tif")\n')


@pytest.fixture(scope="module")
def zarr_scan(tmp_path_factory, casting_small):
    """A casting phantom as OME-Zarr, a small network trained on it, and the macro that segments and
    measures it."""
    from damselfly.engine.actions.segmentation import sparse_labels, train
    from damselfly.engine.core.context import RunContext
    from damselfly.engine.io import _files as io
    from damselfly.engine.segmentation import _model as model_io

    folder = tmp_path_factory.mktemp("zarr_scan")
    vol, truth = casting_small
    io.write_volume(vol, folder / "scan.ome.zarr")
    model = train(vol, sparse_labels(truth, slices=[8, 20, 31]), arch="unet", epochs=2, steps=3, batch=4, patch=32, seed=5,
                  ctx=RunContext(device="cpu"))
    model_io.save_model(model, folder / "m.dfmodel")
    (folder / "m.dfm").write_text(CLUSTER_MACRO)
    return folder / "m.dfm"


def test_one_scan_block_wise_across_two_workers_equals_the_single_process_run(workers, zarr_scan, tmp_path,
                                                                              monkeypatch):
    """infer (slabs of 8 slices, in groups of whole output chunks), calibrate, threshold and
    local_thickness (cores of 16) of a Zarr scan, their blocks on 2 workers: the same files, bit for bit,
    as the run in one process."""
    import damselfly.engine.thickness._blocks as tb
    from damselfly.engine.segmentation import _inference as inference
    from damselfly.macros.runner import run_file

    monkeypatch.setattr(inference, "slab_size", lambda pred, shape: 8)
    monkeypatch.setattr(tb, "BLOCK", 16)
    monkeypatch.setattr(tb, "CENTRES_WHEN", float("inf"))  # cores grown by the halo (centres: the test above)
    where = Where(workers)
    spread = run_file(zarr_scan, out_dir=tmp_path / "spread", device="cpu", blocks=where)
    here = run_file(zarr_scan, out_dir=tmp_path / "here", device="cpu")
    assert spread.status == here.status == "ok"
    assert final_files(tmp_path / "spread") == final_files(tmp_path / "here")
    assert len(where.seen) == 4 * 3 and len(set(where.seen)) == 2  # 40 slices: 3 blocks of 16 for each action
    record = json.loads((tmp_path / "spread" / "run.json").read_text())
    assert record["settings"]["blocks"] == "dask cluster local:2"


def test_the_command_line_spreads_one_scans_blocks_with_cluster(zarr_scan, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "run", str(zarr_scan), "--out", str(out),
                        "--cluster", "local:2", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["settings"]["blocks"] == "dask cluster local:2"
    subprocess.run([sys.executable, "-m", "damselfly.macros.cli", "run", str(zarr_scan), "--out",
                    str(tmp_path / "here"), "--device", "cpu"], check=True, capture_output=True, timeout=300)
    assert final_files(out) == final_files(tmp_path / "here")


def test_stop_cancels_the_blocks_not_yet_run(workers, tmp_path):
    from damselfly.engine import Cancelled
    from damselfly.engine.core import progress
    from damselfly.engine.core._blocks import run_blocks

    reporter = progress.Reporter()
    finished = []

    def on_block(shared, item):  # every block leaves a mark; Stop comes with the first result
        time.sleep(0.3)
        (shared / f"{item}").write_text("ran")
        return item

    def stop_after_first(fn, items, shared):
        for r in workers(fn, items, shared):
            finished.append(r[1])
            reporter.cancel()
            yield r

    with progress.reporting(reporter), pytest.raises(Cancelled):
        run_blocks(stop_after_first, on_block, list(range(40)), tmp_path, "Blocks")
    time.sleep(1.5)  # what was running ends; nothing queued starts
    assert len(finished) == 1 and len(list(tmp_path.iterdir())) < 10
