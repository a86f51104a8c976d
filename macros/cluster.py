"""Batches on a Dask cluster: one macro per scan as a Dask task (``damselfly run --batch --cluster``);
and one scan's blocks spread over the workers (``damselfly run --cluster`` without ``--batch``:
:class:`DaskBlocks`).

``--cluster`` takes the address of a running Dask scheduler (``tcp://host:8786``, started by hand or on
Kubernetes), ``local:N`` (a LocalCluster of N worker processes on this machine) or ``slurm:FILE`` (batch
jobs submitted through dask-jobqueue, described by a YAML file such as ``examples/slurm.yaml``). Everything the one-machine batch promises (:mod:`damselfly.macros.batch`) holds:

- Each task runs its scan in a child process of the Dask worker (the same worker program as
  ``--jobs``), so a crash of one scan never takes a worker down, and Stop can reach a running scan.
- A worker that dies mid-scan (``kill -9``) takes its child with it (parent-death signal); the child
  records the cancellation and leaves no partial file, and the scheduler runs the task again on
  another worker (Dask's ``allowed-failures``). The new run waits for the dead one's folder lock.
- Ctrl-C (or the app's Stop) sets a Dask ``Event`` that every task polls: running scans are stopped
  (recorded as cancelled, no partial file), queued ones are cancelled, the summary is written.
- GPUs are Dask resources: workers started with ``--resources GPU=1`` run GPU scans one per GPU.
  When the macro runs a network (:data:`GPU_ACTIONS`), any worker declares ``GPU`` and the run's
  device is ``auto`` or ``cuda``, every scan asks for one; otherwise (``--device cpu``, a macro of
  thresholds and measurements) scans run on any worker.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from damselfly.engine.core.errors import DamselflyError, ParameterError
from damselfly.engine.core.progress import Reporter

#: Seconds a retried scan waits for the folder lock a dead run may still hold.
LOCK_WAIT = 30.0
#: Seconds between two looks at the batch's stop event while a scan runs.
STOP_POLL = 0.5
#: Dask settings for the LocalCluster ``local:N`` starts: its housekeeping ran 20-100 times a second
#: (the workers' stack profiler every 10 ms, the event-loop tick every 20 ms, memory and system
#: monitors): an idle 2-worker cluster used 4 % of a core, taken from the scans on a small machine.
#: Our tasks are whole scans or blocks of seconds, so this checks a few times a second at most (1 %).
#: Workers started by hand take the same settings from ``examples/dask.yaml``.
QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def jobqueue_cluster(config: str | Path):
    """A dask-jobqueue cluster from a YAML file (``examples/slurm.yaml``): ``kind`` (slurm, pbs, lsf,
    sge; default slurm), ``jobs`` (how many batch jobs to submit) and ``cluster`` (the keyword arguments
    of e.g. ``dask_jobqueue.SLURMCluster``). Returns ``(cluster, jobs)``; nothing is submitted yet."""
    import yaml

    try:
        import dask_jobqueue
    except ImportError:
        raise DamselflyError("--cluster slurm:... needs dask-jobqueue: pip install 'damselfly[jobqueue]'") from None
    try:
        doc = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise DamselflyError(f"{config}: cannot read the cluster file: {e}") from None
    kinds = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster", "sge": "SGECluster"}
    kind = doc.get("kind", "slurm")
    if kind not in kinds or not isinstance(doc.get("cluster", {}), dict):
        raise ParameterError(f"{config}: 'kind' must be one of {', '.join(kinds)} and 'cluster' a mapping")
    jobs = doc.get("jobs", 1)
    if not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"{config}: 'jobs' must be a whole number >= 1, got {jobs!r}")
    return getattr(dask_jobqueue, kinds[kind])(**doc.get("cluster", {})), jobs


def connect(address: str):
    """``(client, cluster)`` for ``address``: a scheduler's address (cluster None); ``local:N`` starts a
    LocalCluster of N processes; ``slurm:FILE`` submits the batch jobs :func:`jobqueue_cluster`
    describes (:func:`close` closes both). Raises :class:`ParameterError` for a bad address,
    :class:`DamselflyError` when no scheduler answers."""
    import dask
    from distributed import Client, LocalCluster

    if address.startswith("slurm:"):
        cluster, jobs = jobqueue_cluster(address.split(":", 1)[1])
        cluster.scale(jobs=jobs)
        return Client(cluster), cluster

    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            n = 0
        if not 1 <= n <= 1024:  # as --jobs: each worker is a process of this machine
            raise ParameterError(f"--cluster local:N takes 1..1024 workers (processes on this machine), "
                                 f"got {address!r}")
        with dask.config.set(QUIET), _workers_ignore_ctrl_c():
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=40)
        return Client(cluster), cluster
    try:
        return Client(address, timeout="10s"), None
    except (OSError, TimeoutError) as e:
        raise DamselflyError(f"--cluster {address}: no Dask scheduler answers there ({e})") from None


def close(client, cluster) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


class DaskBlocks:
    """A block runner (:mod:`damselfly.engine.core._blocks`) over a Dask client: one scan's blocks spread over
    the cluster's workers (``damselfly run MACRO --cluster ADDRESS`` without ``--batch``).

    ``shared`` goes to every worker once (scattered); each block is one task, yielded as it finishes. A
    block that fails raises here with its own error; closing the generator (Stop, an error) cancels the
    blocks not yet run. A worker that dies mid-block has its block run again elsewhere: a block writes
    only its own chunks, so running it twice gives the same result.
    """

    def __init__(self, client, address: str = ""):
        self.client, self.address = client, address

    def __str__(self) -> str:
        return f"dask cluster {self.address}".strip()

    def __call__(self, fn, items, shared=None):
        from distributed import as_completed

        [common] = self.client.scatter([shared], broadcast=True, hash=False)
        futures = self.client.map(fn, [common] * len(items), list(items), pure=False,
                                  key=[f"damselfly-block-{uuid.uuid4().hex}" for _ in items])
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                yield index[fut.key], fut.result()
        finally:
            self.client.cancel(futures + [common])


#: Actions that run networks: a scan calling one asks for a GPU where the cluster has them.
GPU_ACTIONS = frozenset({"train", "infer", "infer_probabilities", "compare_methods", "train_denoiser",
                         "train_restoration", "enhance"})


def uses_gpu(macro) -> bool:
    """Whether a parsed macro calls an action that runs a network (:data:`GPU_ACTIONS`)."""
    return any(st.call.action in GPU_ACTIONS for st in macro.calls())


def wants_gpu(client, device: str, macro) -> bool:
    """Whether scans should ask for a ``GPU`` resource: the macro runs a network, the device may be
    CUDA, and some worker has a GPU."""
    if device == "cpu" or not uses_gpu(macro):
        return False
    workers = client.scheduler_info().get("workers", {}).values()
    return any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers)


def scan_task(job: dict, stop_event: str) -> dict:
    """Run one scan of a batch on a Dask worker, in a child process; stop it when ``stop_event`` is set.
    Returns the :class:`~damselfly.macros.workers.ItemResult` as a dict."""
    from distributed import Event

    from .workers import BatchJob

    stop = Event(stop_event)
    bj = BatchJob(**job)
    tmp = Path(tempfile.mkdtemp(prefix="damselfly-task-"))
    try:
        r = _run_child(bj, tmp, stop)
    finally:  # the child's result and log files: read, so gone (one folder a scan would pile up on a worker)
        shutil.rmtree(tmp, ignore_errors=True)
    if stop.is_set() and r.status != "ok":
        r.status, r.error = "cancelled", "stopped with the batch"
    return asdict(r)


def _run_child(bj, tmp: Path, stop):
    """Run the scan ``bj`` in a child process (its files in ``tmp``) until it ends or ``stop`` is set;
    again while its output folder is still held by a dead run's child. Returns the ItemResult."""
    from .workers import _collect, _start

    t_lock = time.monotonic()
    while True:
        w = _start(bj, tmp, 0)
        while True:  # the scan's end is seen at once; the stop event (a scheduler call) every STOP_POLL
            try:
                w.proc.wait(timeout=STOP_POLL)
                break
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    w.proc.terminate()
                    w.proc.wait()
                    break
        r = _collect(w)
        locked = r.status == "failed" and "another Damselfly run is writing" in (r.error or "")
        if not locked or time.monotonic() - t_lock > LOCK_WAIT or stop.is_set():
            return r
        time.sleep(0.5)  # a dead run's child is still letting go of the folder


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """Worker processes started inside the block ignore SIGINT (an ignored signal stays ignored in a child,
    and Python then installs no KeyboardInterrupt handler): Ctrl-C in a terminal reaches the whole process
    group, and the workers must not die printing tracebacks mid-scan; the main process stops them through
    the batch's stop event instead, as it does for --jobs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def run_on_cluster(todo: list, address: str, done, reporter: Reporter | None, device: str, macro) -> None:
    """Run the batch jobs ``todo`` as Dask tasks; ``done`` gets each ItemResult as it finishes."""
    from distributed import Event, as_completed

    from .workers import ItemResult

    client, cluster = connect(address)
    stop_name = f"damselfly-stop-{uuid.uuid4().hex}"
    stop = Event(stop_name, client=client)
    resources = {"GPU": 1} if wants_gpu(client, device, macro) else None
    futures = {client.submit(scan_task, asdict(job), stop_name, key=f"damselfly-scan-{uuid.uuid4().hex}",
                             pure=False, resources=resources): job for job in todo}
    pending = set(futures)
    try:
        ac = as_completed(futures)
        while pending:
            if reporter is not None and reporter.cancelled:
                raise KeyboardInterrupt
            try:
                fut = next(ac)
            except StopIteration:
                break
            pending.discard(fut)
            job = futures[fut]
            try:
                done(ItemResult(**fut.result()))
            except Exception as e:  # the task itself failed (e.g. every worker it ran on died)
                done(ItemResult(job.item, job.out_dir, "failed", 0.0, f"the cluster could not run this scan: {e}"))
    except KeyboardInterrupt:
        stop.set()
        _drain(client, futures, pending, done)
        raise
    finally:
        close(client, cluster)


def _drain(client, futures: dict, pending: set, done) -> None:
    """After Stop: report the scans that were running (they stop and record it) and cancel the rest."""
    from distributed import wait

    from .workers import STOP_GRACE, ItemResult

    queued = [f for f in pending if f.status == "pending" and not _started(client, f)]
    client.cancel(queued)
    running = [f for f in pending if f not in queued]
    try:
        wait(running, timeout=STOP_GRACE + 5)
    except Exception:  # noqa: BLE001 - timed out, or workers already gone: those scans are cancelled
        pass
    for f in running:
        job = futures[f]
        if f.status == "finished":
            done(ItemResult(**f.result()))
        else:
            done(ItemResult(job.item, job.out_dir, "cancelled", 0.0, "stopped with the batch"))


def _started(client, fut) -> bool:
    """Whether the scheduler has the task running on a worker."""
    try:
        return client.run_on_scheduler(lambda dask_scheduler, key=fut.key: dask_scheduler.tasks[key].state
                                       if key in dask_scheduler.tasks else "gone") == "processing"
    except Exception:  # noqa: BLE001 - the scheduler is going away: treat it as running (waited for)
        return True



if __name__ == "__main__":  # print the job script a cluster file would submit
    import sys

    print(jobqueue_cluster(sys.argv[1])[0].job_script())
