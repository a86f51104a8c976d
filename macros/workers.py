"""Running one scan of a batch: the job, its result, and the worker process that runs it (for
``--jobs`` and for each task of ``--cluster``). A worker dies with its parent; a dead worker's scan is
reported failed, its record says so and its interrupted writes are removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from damselfly.engine.core.errors import DamselflyError
from damselfly.engine.core.progress import Reporter
from damselfly.engine.io import _files as io

from .runner import RunFailed, run_file
from .runrecord import FolderLock, read_record, write_record

#: Seconds a cancelled worker gets to record its cancellation before it is killed.
STOP_GRACE = 20.0


@dataclass
class ItemResult:
    item: str
    out_dir: str
    status: str           # ok, failed, cancelled, skipped (--resume: done before), not run (batch stopped)
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class BatchJob:
    """One scan of a batch: everything a worker process needs to run it."""

    macro_path: str
    item: str
    param: str
    overrides: dict
    out_dir: str
    device: str = "auto"
    threads: int | None = None
    overwrite: bool = True
    allow_outside: bool = False
    base_dir: str | None = None

    def run(self, reporter: Reporter | None = None) -> ItemResult:
        """Run this scan here; every error becomes a failed :class:`ItemResult` (never raised)."""
        t0 = time.perf_counter()
        try:
            run_file(self.macro_path, {**self.overrides, self.param: self.item}, self.out_dir, self.device,
                     self.threads, self.overwrite, reporter=reporter, allow_outside=self.allow_outside,
                     base_dir=self.base_dir)
            return ItemResult(self.item, self.out_dir, "ok", time.perf_counter() - t0)
        except RunFailed as e:
            return ItemResult(self.item, self.out_dir, e.result.status, time.perf_counter() - t0, e.result.error)
        except DamselflyError as e:
            return ItemResult(self.item, self.out_dir, "failed", time.perf_counter() - t0, str(e))
        except Exception as e:  # never let one scan stop the batch
            return ItemResult(self.item, self.out_dir, "failed", time.perf_counter() - t0,
                              f"internal error: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")


@dataclass
class _Worker:
    job: BatchJob
    proc: subprocess.Popen
    result_file: Path
    log_file: Path
    t0: float
    gpu: str | None = None  # the one GPU the worker sees (CUDA_VISIBLE_DEVICES), where scans share GPUs


def _start(job: BatchJob, tmp: Path, k: int, gpu: str | None = None) -> _Worker:
    """Start a worker process for ``job``; with ``gpu``, it sees that GPU alone (as ``cuda``)."""
    result_file, log_file = tmp / f"{k}.json", tmp / f"{k}.log"
    env = None if gpu is None else {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "damselfly.macros.workers", json.dumps(asdict(job)), str(result_file),
                                 str(os.getpid())], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent, env=env)
    return _Worker(job, proc, result_file, log_file, time.perf_counter(), gpu)


def visible_gpus(device: str) -> list[str]:
    """The GPUs scans run in worker processes may be spread over: for ``device="cuda"``, those this
    process sees (``CUDA_VISIBLE_DEVICES`` if set, else every one PyTorch counts); none otherwise."""
    if device != "cuda":
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def least_busy(gpus: list[str], running: list[_Worker]) -> str | None:
    """The GPU with the fewest running workers (the first of equals): scans go round-robin over the GPUs
    and a GPU freed early gets the next one.

    Examples
    --------
    >>> least_busy(["0", "1"], []), least_busy([], [])
    ('0', None)
    """
    if not gpus:
        return None
    load = {g: 0 for g in gpus}
    for w in running:
        if w.gpu in load:
            load[w.gpu] += 1
    return min(gpus, key=lambda g: load[g])


def _collect(w: _Worker) -> ItemResult:
    """The result a finished worker wrote, or a failed result saying how it died."""
    seconds = time.perf_counter() - w.t0
    try:
        return ItemResult(**json.loads(w.result_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        pass
    rc = w.proc.returncode
    if rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else f"signal {-rc}"
        why = f"killed by {name}" + ("; out of memory?" if -rc == signal.SIGKILL else "")
    else:
        why = f"exited with status {rc}"
    log = w.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    error = f"the worker process running this scan died ({why}); the scan is not done" + \
        ("\n" + "\n".join(log) if log else "")
    _mark_dead(Path(w.job.out_dir), error)
    return ItemResult(w.job.item, w.job.out_dir, "failed", seconds, error)


def _mark_dead(out_dir: Path, error: str) -> None:
    """After a worker died: its record says failed and its interrupted writes are removed."""
    try:
        with FolderLock(out_dir):
            io.remove_stale_temporaries(out_dir)
            rec = read_record(out_dir)
            if rec is not None and rec.get("status") == "running":
                rec.update(status="failed", error=error)
                write_record(out_dir, rec)
    except (DamselflyError, OSError):
        pass  # the folder is gone or still held: the next run into it cleans up


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _watch_parent(parent: int) -> None:
    """Where there is no parent-death signal: stop this worker when its parent is gone."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _worker_main(argv: list[str]) -> int:
    job_json, result_file, parent = argv[0], Path(argv[1]), int(argv[2])
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if os.getppid() != parent:  # the parent died before we got here
        return 130
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    job = BatchJob(**json.loads(job_json))
    t0 = time.perf_counter()
    try:
        r = job.run()
        code = 0
    except KeyboardInterrupt:
        r, code = ItemResult(job.item, job.out_dir, "cancelled", time.perf_counter() - t0, "stopped"), 130
    io.write_text(result_file, json.dumps(asdict(r)))
    return code


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
