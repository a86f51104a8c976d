"""Running macro files: one run with its run record, and batches over many scans."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from damselfly import engine
from damselfly.engine.core._provenance import versions
from damselfly.engine.core.errors import DamselflyError
from damselfly.engine.core.progress import Reporter
from damselfly.engine.io import _files as io
from damselfly.engine.session import Session, Settings

from . import ast
from .checker import check
from .diagnostics import Diagnostic, MacroError
from .interpreter import execute
from .parser import parse_file, parse_value
from .runrecord import (
    FolderLock,
    input_record,
    macro_sha256,
    now,
    output_info,
    record_params,
    same_input,
    statement_times,
    unfinished_outputs,
    write_record,
)


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


def check_device(device: str) -> None:
    """Fail early when ``cuda`` is asked for and there is none."""
    if device == "cuda":
        try:
            import torch
        except ImportError:
            raise DamselflyError("--device cuda: PyTorch is not installed") from None
        if not torch.cuda.is_available():
            raise DamselflyError("--device cuda: no CUDA GPU is available here (use --device auto or cpu)")


#: The most CPU threads ``--threads`` accepts.
MAX_THREADS = 1024


def check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise DamselflyError(f"--threads must be 1..{MAX_THREADS}, got {threads}")


def prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    """Make the output folder (and its parents); a clear error if a file is in the way."""
    out = Path(out_dir).absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DamselflyError(f"output folder {out}: a file of that name (or of a folder above it) is in "
                             "the way; choose another --out") from None
    except OSError as e:
        raise DamselflyError(f"output folder {out}: cannot be made ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise DamselflyError(f"output folder {out}: not writable (read-only, or not yours); choose another "
                             "--out or make it writable") from None
    return out.resolve()


@dataclass
class RunResult:
    out_dir: Path
    status: str                      # "ok", "failed", "cancelled", "checked" (dry run)
    error: str | None = None
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    record: dict = field(default_factory=dict)


def run_file(macro_path: str | os.PathLike, overrides: dict | None = None, out_dir: str | os.PathLike = "out",
             device: str = "auto", threads: int | None = None, overwrite: bool = True, dry_run: bool = False,
             reporter: Reporter | None = None, on_statement=None, allow_outside: bool = False,
             base_dir: str | os.PathLike | None = None, blocks=None) -> RunResult:
    """Check and run one macro file; write the run record ``run.json`` into ``out_dir``. Relative input
    paths resolve against ``base_dir`` (default: the macro's folder). ``blocks`` is where block-wise
    actions run their blocks (a block runner, :mod:`damselfly.engine.core._blocks`; default here).

    Raises
    ------
    MacroError
        The macro does not check (nothing ran, nothing was written), or a statement failed (the run
        record, with status ``failed``, says which).
    """
    macro = parse_file(macro_path)
    return run_macro(macro, overrides, out_dir, device, threads, overwrite, dry_run, reporter, on_statement,
                     base_dir=base_dir, allow_outside=allow_outside, blocks=blocks)


def run_macro(macro: ast.Macro, overrides: dict | None = None, out_dir: str | os.PathLike = "out",
              device: str = "auto", threads: int | None = None, overwrite: bool = True,
              dry_run: bool = False, reporter: Reporter | None = None, on_statement=None,
              base_dir: str | os.PathLike | None = None, allow_outside: bool = False, blocks=None) -> RunResult:
    """Like :func:`run_file`, for a parsed macro. The run follows :mod:`macros.runrecord`: it locks
    ``out_dir``, clears what interrupted writes left, and keeps the run record current."""
    check_threads(threads)
    own = (str(Path(macro.path).resolve()),) if macro.path and not macro.path.startswith("<") else ()
    res = check(macro, overrides=overrides, base_dir=base_dir, out_dir=Path(out_dir).absolute(),
                allow_outside=allow_outside, protected=own)
    if not res.ok:
        raise MacroError(res.diagnostics)
    if dry_run:
        return RunResult(Path(out_dir).absolute(), "checked", record={"params": res.params, "inputs": res.inputs})
    check_device(device)
    out = prepare_out_dir(out_dir)
    if base_dir is None:
        base_dir = Path(macro.path).resolve().parent if own else Path.cwd()
    with FolderLock(out):
        io.remove_stale_temporaries(out)
        settings = Settings(device=device, threads=threads, base_dir=base_dir, out_dir=out, overwrite=overwrite,
                            allow_outside=allow_outside, protected=own + tuple(res.inputs),
                            replaceable=unfinished_outputs(out), blocks=blocks)
        return _execute(macro, res.params, Session(settings, reporter), on_statement)


def _execute(macro: ast.Macro, params: dict, session: Session, on_statement) -> RunResult:
    """Run a checked macro in ``session`` (whose output folder is locked), keeping the run record."""
    st = session.settings
    out = st.out_dir
    outputs: dict[str, str | None] = {}
    inputs: list[str] = []
    record = {
        "macro": macro.path, "macro_sha256": macro_sha256(macro.source),
        "macro_text": macro.source, "params": record_params(params),
        "seeds": {k: v for k, v in params.items() if "seed" in k.lower()},
        "settings": {"device": st.device, "threads": st.threads, "overwrite": st.overwrite,
                     "allow_outside": st.allow_outside, "base_dir": str(st.base_dir), "out_dir": str(out),
                     "blocks": None if st.blocks is None else str(st.blocks),
                     "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")},
        "started": now(), "status": "running", "pid": os.getpid(), "outputs": [], "pending": [],
        "inputs": {}, "output_info": {}, "statements": [], "versions": versions(),
    }
    write_record(out, record)  # replaces any old record before anything else is written

    def paths_of(spec, values: dict, kind: str) -> list[str]:
        found = []
        for k, v in values.items():
            if spec.param(k).path_kind == kind:
                found += [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]
        return found

    def before(spec, resolved):
        record["pending"] = paths_of(spec, resolved, "output")
        if record["pending"]:
            write_record(out, record)

    def on_event(ev):
        spec = session.registry.get(ev.action)
        for one in paths_of(spec, ev.resolved, "input") + list(getattr(ev.result, "metadata", {}).get("files", [])):
            if one not in inputs:
                inputs.append(one)
                record["inputs"][one] = input_record(one)  # hashed once, as it is first read
        for one in paths_of(spec, ev.resolved, "output"):
            outputs[one] = io.file_sha256(one) if Path(one).exists() else None
            record["output_info"][one] = output_info(ev)
        record.update(outputs=list(outputs), output_sha256={k: v for k, v in outputs.items() if v}, pending=[],
                      statements=statement_times(timings))
        write_record(out, record)

    timings: list = []
    session.before_each(before)
    session.subscribe(on_event)
    t0 = time.perf_counter()
    status, error = "ok", None
    interrupted = None
    try:
        execute(macro, session, params, on_statement, timings)
    except engine.Cancelled as e:
        status, error = "cancelled", str(e)
    except MacroError as e:
        status, error = "failed", str(e)
    except KeyboardInterrupt as e:  # Ctrl-C (or SIGTERM in a batch worker): record it, then stop
        status, error, interrupted = "cancelled", "interrupted", e
    seconds = time.perf_counter() - t0
    record.update({
        "status": status, "error": error, "seconds": round(seconds, 3), "finished": now(),
        "statements": statement_times(timings),
        "inputs": {p: same_input(p, record["inputs"].get(p)) for p in inputs},
    })
    write_record(out, record)
    if interrupted is not None:
        raise interrupted
    result = RunResult(out, status, error, list(outputs), seconds, record)
    if status == "failed":
        raise RunFailed(result)
    return result


class RunFailed(DamselflyError):
    """A run that started and failed; carries its :class:`RunResult` (the run record is written)."""

    def __init__(self, result: RunResult):
        self.result = result
        super().__init__(result.error)
