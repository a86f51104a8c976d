"""Batches: one macro over many scans, each into ``OUT/<file stem>/``.

What a batch promises (tested in ``tests/macros/test_batch_safety.py`` and ``benchmarks/bench_crash.py``):

- The macro is checked once up front; a scan that fails is reported and the others still run; the
  summary ``batch.json`` is written however the batch ends (but for a SIGKILL of the main process).
- ``jobs > 1`` runs each scan in a worker process of its own. A worker that dies (the out-of-memory
  killer, ``kill -9``) fails only its scan: the scan is reported failed, its record says so, and what
  its interrupted writes left is removed. Workers die with the main process (Linux: the kernel's
  parent-death signal; elsewhere a watchdog thread notices the parent is gone).
- Ctrl-C (SIGINT) or SIGTERM stops the batch: running scans are cancelled (they record it and leave
  no partial file), nothing new starts, the summary is written, and the interrupt goes on to the caller
  (the command line exits 130).
- ``resume`` skips only scans that :func:`macros.runrecord.done_reason` finds done.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from damselfly.engine import io
from damselfly.engine.errors import DamselflyError
from damselfly.engine.progress import Reporter

from .checker import check
from .diagnostics import Diagnostic, MacroError
from .parser import parse_file
from .runner import RunFailed, check_device, check_threads, prepare_out_dir, run_file
from .runrecord import FolderLock, done_reason, macro_sha256, read_record, write_record

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


def batch_items(pattern: str) -> list[str]:
    """Files (or slice folders) matching a glob, sorted; ``**`` recurses."""
    return sorted(str(Path(p).resolve()) for p in _glob.glob(os.path.expanduser(pattern), recursive=True)
                  if not Path(p).name.startswith("."))


def item_dirs(items: list[str], out_dir: Path) -> list[Path]:
    """``out_dir/<stem>`` per item, numbered where stems repeat."""
    dirs, used = [], set()
    for s in (io.stem(i) for i in items):
        name, k = s, 2
        while name in used:
            name, k = f"{s}_{k}", k + 1
        used.add(name)
        dirs.append(out_dir / name)
    return dirs


def run_batch(macro_path: str | os.PathLike, pattern: str | list[str], param: str = "scan",
              overrides: dict | None = None, out_dir: str | os.PathLike = "out", jobs: int = 1,
              device: str = "auto", threads: int | None = None, overwrite: bool = True, resume: bool = False,
              on_item=None, reporter: Reporter | None = None, allow_outside: bool = False,
              base_dir: str | os.PathLike | None = None, on_warning=None, cluster: str | None = None) -> list[ItemResult]:
    """Run a macro once per file matching ``pattern`` (a glob, or a list of files as chosen in the
    app), each into ``out_dir/<file stem>/`` (see the module docstring for what is promised).

    Parameters
    ----------
    on_item : callable, optional
        Called with each :class:`ItemResult` as it completes.
    reporter : Reporter, optional
        Progress of each scan's run (``jobs=1``) and the Stop button: running scans are cancelled
        and the scans after them do not start.
    base_dir : path, optional
        Where the macro's relative input paths resolve (default: the macro file's folder); the app
        passes the folder of the macro being edited when it runs an unsaved copy.
    on_warning : callable, optional
        Called with each checker warning (e.g. training every scan on labels painted on one scan).
    cluster : str, optional
        Run the scans as tasks on a Dask cluster: a scheduler's address or ``local:N``
        (:mod:`damselfly.macros.cluster`); ``jobs`` is then ignored.

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C or SIGTERM, once the summary is written.
    """
    overrides = dict(overrides or {})
    macro = parse_file(macro_path)
    if param not in {p.name for p in macro.params()}:
        raise MacroError([Diagnostic(str(macro_path), 0, 0, f"--batch sets param '{param}', which the macro "
                                                            f"does not declare (add: param {param} = \"...\")")])
    items = batch_items(pattern) if isinstance(pattern, str) else [str(Path(p).resolve()) for p in pattern]
    if not items:
        raise DamselflyError(f"--batch {pattern!r} matches no files")
    check_threads(threads)
    check_device(device)
    out_root = prepare_out_dir(out_dir)
    dirs = item_dirs(items, out_root)
    res = check(macro, overrides={**overrides, param: items[0]}, base_dir=base_dir, check_files=False,
                out_dir=dirs[0], allow_outside=allow_outside, protected=(str(Path(macro_path).resolve()),),
                batch_param=param)
    if not res.ok:
        raise MacroError(res.diagnostics)
    for d in res.diagnostics:
        if on_warning is not None:
            on_warning(d)
    sha = macro_sha256(macro.source)
    results: list[ItemResult] = []

    def done(r: ItemResult):
        results.append(r)
        if on_item:
            on_item(r)

    with FolderLock(out_root):
        todo = []
        for item, d in zip(items, dirs):
            if resume:
                params = check(macro, overrides={**overrides, param: item}, check_files=False, out_dir=d).params
                if done_reason(d, sha, params) is None:
                    done(ItemResult(item, str(d), "skipped", 0.0))
                    continue
            todo.append(BatchJob(str(macro_path), item, param, overrides, str(d), device, threads, overwrite,
                                 allow_outside, str(base_dir) if base_dir is not None else None))
        interrupted = None
        try:
            if cluster:
                from .cluster import run_on_cluster

                run_on_cluster(todo, cluster, done, reporter, device)
            elif jobs <= 1:
                _run_here(todo, done, reporter)
            else:
                _run_in_workers(todo, jobs, done, reporter)
        except KeyboardInterrupt as e:
            interrupted = e
        ran = {r.item for r in results}
        for job in todo:
            if job.item not in ran:
                done(ItemResult(job.item, job.out_dir, "cancelled" if interrupted else "not run", 0.0,
                                "the batch was stopped before this scan started"))
        order = {i: k for k, i in enumerate(items)}
        results.sort(key=lambda r: order[r.item])
        summary = {"macro": str(macro_path), "pattern": pattern, "param": param, "jobs": jobs, "cluster": cluster,
                   "interrupted": interrupted is not None or bool(reporter and reporter.cancelled),
                   "items": [asdict(r) for r in results]}
        io.write_text(out_root / "batch.json", json.dumps(summary, indent=2) + "\n")
    if interrupted is not None:
        raise interrupted
    return results


def _run_here(todo: list[BatchJob], done, reporter: Reporter | None) -> None:
    for job in todo:
        if reporter is not None and reporter.cancelled:
            return
        t0 = time.perf_counter()
        try:
            done(job.run(reporter))
        except KeyboardInterrupt:  # the run recorded its cancellation; report it, then stop the batch
            done(ItemResult(job.item, job.out_dir, "cancelled", time.perf_counter() - t0, "interrupted"))
            raise


# ----------------------------------------------------------------------------------------------
# worker processes
# ----------------------------------------------------------------------------------------------
@dataclass
class _Worker:
    job: BatchJob
    proc: subprocess.Popen
    result_file: Path
    log_file: Path
    t0: float


def _start(job: BatchJob, tmp: Path, k: int) -> _Worker:
    result_file, log_file = tmp / f"{k}.json", tmp / f"{k}.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "damselfly.macros.batch", json.dumps(asdict(job)), str(result_file),
                                 str(os.getpid())], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    return _Worker(job, proc, result_file, log_file, time.perf_counter())


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


def _run_in_workers(todo: list[BatchJob], jobs: int, done, reporter: Reporter | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="damselfly-batch-"))
    pending, running, k = list(todo), [], 0
    try:
        while pending or running:
            if reporter is not None and reporter.cancelled:
                _stop(running, done)
                return
            while pending and len(running) < jobs:
                running.append(_start(pending.pop(0), tmp, k))
                k += 1
            for w in [w for w in running if w.proc.poll() is not None]:
                running.remove(w)
                done(_collect(w))
            time.sleep(0.05)
    except KeyboardInterrupt:
        _stop(running, done)
        raise
    finally:
        for w in running:  # only on an unexpected error: never leave workers behind
            w.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(running: list[_Worker], done) -> None:
    """Cancel running workers: SIGTERM (each records 'cancelled'), then SIGKILL after the grace time."""
    for w in running:
        if w.proc.poll() is None:
            w.proc.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for w in running:
        try:
            w.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
        r = _collect(w)
        if r.status == "failed" and "died" in (r.error or ""):
            r.status, r.error = "cancelled", "stopped with the batch"
        done(r)
    running.clear()


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
