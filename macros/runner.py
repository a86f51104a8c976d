"""Running macro files: one run with its run record, and batches over many scans."""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import glob as _glob
import hashlib
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import engine
from engine import io
from engine.errors import DamselflyError
from engine.progress import Reporter
from engine.session import Session, Settings

from . import ast
from .checker import check
from .diagnostics import Diagnostic, MacroError
from .interpreter import execute
from .parser import parse_file, parse_value

RUN_RECORD = "run.json"


def parse_overrides(pairs: list[str]) -> dict:
    """``["k=v", ...]`` to a dict; ``v`` is read as a macro literal if it is one, else as a string."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise MacroError([Diagnostic("--set", 0, 0, f"expected NAME=VALUE, got {pair!r}")])
        k, v = pair.split("=", 1)
        parsed = parse_value(v)
        if parsed is None:
            out[k.strip()] = v
        else:
            from .checker import const_value

            out[k.strip()] = const_value(parsed)
    return out


def versions() -> dict:
    """Versions of Python, Damselfly and the libraries that are loaded."""
    out = {"python": platform.python_version(), "damselfly": engine.__version__, "platform": platform.platform()}
    for mod in ("numpy", "scipy", "skimage", "tifffile", "lark", "torch", "nrrd", "nibabel"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


def check_device(device: str) -> None:
    """Fail early when ``cuda`` is asked for and there is none."""
    if device == "cuda":
        try:
            import torch
        except ImportError:
            raise DamselflyError("--device cuda: PyTorch is not installed") from None
        if not torch.cuda.is_available():
            raise DamselflyError("--device cuda: no CUDA GPU is available here (use --device auto or cpu)")


@dataclass
class RunResult:
    out_dir: Path
    status: str                      # "ok", "failed", "cancelled", "checked" (dry run)
    error: str | None = None
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    record: dict = field(default_factory=dict)


def _write_record(out_dir: Path, record: dict) -> None:
    io._write_text(out_dir / RUN_RECORD, json.dumps(record, indent=2, default=str) + "\n")


def run_file(macro_path: str | os.PathLike, overrides: dict | None = None, out_dir: str | os.PathLike = "out",
             device: str = "auto", threads: int | None = None, overwrite: bool = True, dry_run: bool = False,
             reporter: Reporter | None = None, on_statement=None) -> RunResult:
    """Check and run one macro file; write the run record ``run.json`` into ``out_dir``.

    Raises
    ------
    MacroError
        The macro does not check (nothing ran, nothing was written), or a statement failed (the run
        record, with status ``failed``, says which).
    """
    macro = parse_file(macro_path)
    return run_macro(macro, overrides, out_dir, device, threads, overwrite, dry_run, reporter, on_statement)


def run_macro(macro: ast.Macro, overrides: dict | None = None, out_dir: str | os.PathLike = "out",
              device: str = "auto", threads: int | None = None, overwrite: bool = True,
              dry_run: bool = False, reporter: Reporter | None = None, on_statement=None,
              base_dir: str | os.PathLike | None = None) -> RunResult:
    """Like :func:`run_file`, for a parsed macro."""
    res = check(macro, overrides=overrides, base_dir=base_dir)
    if not res.ok:
        raise MacroError(res.diagnostics)
    out = Path(out_dir).resolve()
    if dry_run:
        return RunResult(out, "checked", record={"params": res.params, "inputs": res.inputs})
    check_device(device)
    if base_dir is None:
        base_dir = Path(macro.path).resolve().parent if macro.path and not macro.path.startswith("<") else Path.cwd()
    settings = Settings(device=device, threads=threads, base_dir=base_dir, out_dir=out, overwrite=overwrite)
    session = Session(settings, reporter)
    outputs: list[str] = []
    inputs: dict[str, str] = {}

    def on_event(ev):
        spec = engine.get_action(ev.action)
        for k, v in ev.resolved.items():
            kind = spec.param(k).path_kind
            for one in v if isinstance(v, list) else [v]:
                (outputs.append(one) if kind == "output" else inputs.setdefault(one, ""))

    session.subscribe(on_event)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "macro": macro.path, "macro_sha256": hashlib.sha256(macro.source.encode()).hexdigest(),
        "macro_text": macro.source, "params": res.params,
        "seeds": {k: v for k, v in res.params.items() if "seed" in k.lower()},
        "settings": {"device": device, "threads": threads, "overwrite": overwrite, "base_dir": str(base_dir),
                     "out_dir": str(out)},
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "status": "running",
    }
    t0 = time.perf_counter()
    status, error, timings = "ok", None, []
    interrupted = None
    try:
        execute(macro, session, res.params, on_statement, timings)
    except engine.Cancelled as e:
        status, error = "cancelled", str(e)
    except MacroError as e:
        status, error = "failed", str(e)
    except KeyboardInterrupt as e:  # Ctrl-C: record it, then let it stop the program
        status, error, interrupted = "cancelled", "interrupted (Ctrl-C)", e
    seconds = time.perf_counter() - t0
    record.update({
        "status": status, "error": error, "seconds": round(seconds, 3),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "statements": [{"line": t.line, "action": t.action, "target": t.target, "seconds": round(t.seconds, 3)}
                       for t in timings],
        "inputs": {p: (io.file_sha256(p) if Path(p).exists() else None) for p in inputs},
        "outputs": outputs, "versions": versions(),
    })
    _write_record(out, record)
    if interrupted is not None:
        raise interrupted
    result = RunResult(out, status, error, outputs, seconds, record)
    if status == "failed":
        raise RunFailed(result)
    return result


class RunFailed(DamselflyError):
    """A run that started and failed; carries its :class:`RunResult` (the run record is written)."""

    def __init__(self, result: RunResult):
        self.result = result
        super().__init__(result.error)


# ----------------------------------------------------------------------------------------------
# batches
# ----------------------------------------------------------------------------------------------
@dataclass
class ItemResult:
    item: str
    out_dir: str
    status: str           # ok, failed, cancelled, skipped (--resume)
    seconds: float
    error: str | None = None


def batch_items(pattern: str) -> list[str]:
    """Files (or slice folders) matching a glob, sorted; ``**`` recurses."""
    return sorted(str(Path(p).resolve()) for p in _glob.glob(os.path.expanduser(pattern), recursive=True)
                  if not Path(p).name.startswith("."))


def _item_dirs(items: list[str], out_dir: Path) -> list[Path]:
    stems = [Path(i).name.split(".")[0] for i in items]
    dirs, used = [], set()
    for s in stems:
        name, k = s, 2
        while name in used:
            name, k = f"{s}_{k}", k + 1
        used.add(name)
        dirs.append(out_dir / name)
    return dirs


def _run_item(macro_path: str, item: str, param: str, overrides: dict, out: str, device: str,
              threads: int | None, overwrite: bool, reporter: Reporter | None = None) -> ItemResult:
    t0 = time.perf_counter()
    try:
        run_file(macro_path, {**overrides, param: item}, out, device, threads, overwrite, reporter=reporter)
        return ItemResult(item, out, "ok", time.perf_counter() - t0)
    except RunFailed as e:
        return ItemResult(item, out, e.result.status, time.perf_counter() - t0, e.result.error)
    except DamselflyError as e:
        return ItemResult(item, out, "failed", time.perf_counter() - t0, str(e))
    except Exception as e:  # never let one scan stop the batch
        return ItemResult(item, out, "failed", time.perf_counter() - t0,
                          f"internal error: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")


def run_batch(macro_path: str | os.PathLike, pattern: str | list[str], param: str = "scan",
              overrides: dict | None = None, out_dir: str | os.PathLike = "out", jobs: int = 1,
              device: str = "auto", threads: int | None = None, overwrite: bool = True, resume: bool = False,
              on_item=None, reporter: Reporter | None = None) -> list[ItemResult]:
    """Run a macro once per file matching ``pattern`` (a glob, or a list of files as chosen in the
    app), each into ``out_dir/<file stem>/``.

    The macro is checked once up front (with the first file); a scan that fails is reported and the
    others still run. With ``resume``, items whose run record says ``ok`` are skipped.

    Parameters
    ----------
    on_item : callable, optional
        Called with each :class:`ItemResult` as it completes.
    reporter : Reporter, optional
        Progress of each scan's run and the Stop button (``jobs=1``): a stopped scan is reported
        ``cancelled`` and the scans after it do not start.
    """
    overrides = dict(overrides or {})
    macro = parse_file(macro_path)
    if param not in {p.name for p in macro.params()}:
        raise MacroError([Diagnostic(str(macro_path), 0, 0, f"--batch sets param '{param}', which the macro "
                                                            f"does not declare (add: param {param} = \"...\")")])
    items = batch_items(pattern) if isinstance(pattern, str) else [str(Path(p).resolve()) for p in pattern]
    if not items:
        raise DamselflyError(f"--batch {pattern!r} matches no files")
    res = check(macro, overrides={**overrides, param: items[0]}, check_files=False)
    if not res.ok:
        raise MacroError(res.diagnostics)
    check_device(device)
    out_root = Path(out_dir).resolve()
    dirs = _item_dirs(items, out_root)
    results: list[ItemResult] = []
    todo = []
    for item, d in zip(items, dirs):
        rec = d / RUN_RECORD
        if resume and rec.exists():
            try:
                if json.loads(rec.read_text()).get("status") == "ok":
                    r = ItemResult(item, str(d), "skipped", 0.0)
                    results.append(r)
                    if on_item:
                        on_item(r)
                    continue
            except ValueError:
                pass
        todo.append((item, d))
    args = [(str(macro_path), item, param, overrides, str(d), device, threads, overwrite) for item, d in todo]
    if jobs <= 1:
        for a in args:
            if reporter is not None and reporter.cancelled:
                break
            r = _run_item(*a, reporter=reporter)
            results.append(r)
            if on_item:
                on_item(r)
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(_run_item, *a) for a in args]
            for f in concurrent.futures.as_completed(futs):
                r = f.result()
                results.append(r)
                if on_item:
                    on_item(r)
    order = {i: k for k, i in enumerate(items)}
    results.sort(key=lambda r: order[r.item])
    summary = {"macro": str(macro_path), "pattern": pattern, "param": param,
               "items": [r.__dict__ for r in results]}
    out_root.mkdir(parents=True, exist_ok=True)
    io._write_text(out_root / "batch.json", json.dumps(summary, indent=2) + "\n")
    return results
