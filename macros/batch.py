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

One scan's job and worker process are in :mod:`damselfly.macros.workers`; ``cluster=`` hands the scans
to a Dask cluster instead (:mod:`damselfly.macros.cluster`), with the same promises.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from damselfly.engine.core.errors import DamselflyError
from damselfly.engine.core.progress import Reporter
from damselfly.engine.io import _files as io

from .checker import check
from .diagnostics import Diagnostic, MacroError
from .parser import parse_file
from .runner import check_device, check_threads, prepare_out_dir
from .runrecord import FolderLock, done_reason, macro_sha256
from .workers import STOP_GRACE, BatchJob, ItemResult, _collect, _start, _Worker, least_busy, visible_gpus


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


def _macro_and_items(macro_path, pattern, param: str):
    """The parsed macro and the batch's files; clear errors when the macro has no such param or nothing
    matches."""
    macro = parse_file(macro_path)
    if param not in {p.name for p in macro.params()}:
        raise MacroError([Diagnostic(str(macro_path), 0, 0, f"--batch sets param '{param}', which the macro "
                                                            f"does not declare (add: param {param} = \"...\")")])
    items = batch_items(pattern) if isinstance(pattern, str) else [str(Path(p).resolve()) for p in pattern]
    if not items:
        raise DamselflyError(f"--batch {pattern!r} matches no files")
    return macro, items


def check_batch(macro_path: str | os.PathLike, pattern: str | list[str], param: str = "scan",
                overrides: dict | None = None, out_dir: str | os.PathLike = "out", allow_outside: bool = False,
                base_dir: str | os.PathLike | None = None) -> list[ItemResult]:
    """What ``--batch ... --dry-run`` does: check the macro once per matching file (its inputs, outputs
    and types, as a run of that scan would see them) and compute nothing; nothing is written, not even
    the output folder. Each item's status is ``"checked"``, or ``"failed"`` with the checker's errors.
    """
    macro, items = _macro_and_items(macro_path, pattern, param)
    out = []
    for item, d in zip(items, item_dirs(items, Path(out_dir).absolute())):
        t0 = time.perf_counter()
        res = check(macro, overrides={**(overrides or {}), param: item}, base_dir=base_dir, out_dir=d,
                    allow_outside=allow_outside, protected=(str(Path(macro_path).resolve()),), batch_param=param)
        errors = "\n".join(x.format() for x in res.diagnostics if x.severity == "error") if not res.ok else None
        out.append(ItemResult(item, str(d), "checked" if res.ok else "failed", time.perf_counter() - t0, errors))
    return out


def run_batch(macro_path: str | os.PathLike, pattern: str | list[str], param: str = "scan",
              overrides: dict | None = None, out_dir: str | os.PathLike = "out", jobs: int = 1,
              device: str = "auto", threads: int | None = None, overwrite: bool = True, resume: bool = False,
              on_item=None, reporter: Reporter | None = None, allow_outside: bool = False,
              base_dir: str | os.PathLike | None = None, on_warning=None, cluster: str | None = None) -> list[ItemResult]:
    """Run a macro once per file matching ``pattern`` (a glob, or a list of files as chosen in the
    app), each into ``out_dir/<file stem>/`` (see the module docstring for what is promised).

    Parameters
    ----------
    threads : int, optional
        PyTorch threads per scan. Default: the library's (all cores) for one scan at a time; with
        ``jobs`` N, the cores shared out (``cores // N``, at least 1), since N scans run at once; on a
        cluster, what the worker gives (Dask caps its workers at one thread each).
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
    macro, items = _macro_and_items(macro_path, pattern, param)
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

    if threads is None and jobs > 1 and not cluster:  # N scans at once share the cores
        threads = max(1, (os.cpu_count() or 1) // jobs)
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

                run_on_cluster(todo, cluster, done, reporter, device, macro)
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
        _write_summary(out_root)
    if interrupted is not None:
        raise interrupted
    return results


def _write_summary(out_root: Path) -> None:
    """summary.csv and summary.html next to batch.json; a failure there is a warning, never a lost batch."""
    import sys

    from .summary import write_summary

    try:
        write_summary(out_root)
    except Exception as e:  # batch.json and every scan's folder are written already
        print(f"warning: the batch summary could not be written ({type(e).__name__}: {e}); "
              f"`damselfly report {out_root}` tries again", file=sys.stderr)


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


def _run_in_workers(todo: list[BatchJob], jobs: int, done, reporter: Reporter | None) -> None:
    """Each scan in a worker process of its own, ``jobs`` at a time; with ``--device cuda`` on a machine
    with several GPUs, each worker sees one GPU, the least busy (round-robin as scans start)."""
    tmp = Path(tempfile.mkdtemp(prefix="damselfly-batch-"))
    pending, running, k = list(todo), [], 0
    gpus = visible_gpus(todo[0].device) if todo else []
    gpus = gpus if len(gpus) > 1 else []  # one GPU: nothing to spread
    try:
        while pending or running:
            if reporter is not None and reporter.cancelled:
                _stop(running, done)
                return
            while pending and len(running) < jobs:
                running.append(_start(pending.pop(0), tmp, k, least_busy(gpus, running)))
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
